/** A tensor's shape as task errors show it: `[null, 4, 2]`, an unknown dimension (the batch's) as null. */
export function shapeText(shape: readonly (number | null)[]): string {
  return `[${shape.map((dim) => dim ?? 'null').join(', ')}]`;
}
