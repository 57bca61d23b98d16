/**
 * Names the step of 0-based index `index` (as messages and the protocol number steps) the way people
 * count them and progress lines show them: the first step is "step 1". Counts of steps done (a
 * checkpoint's or a replica's `step`) are already 1-based and need no label.
 */
export function stepLabel(index: number): string {
  return `step ${index + 1}`;
}
