/** `count` and a noun in the number it takes, for messages: "1 worker", "2 workers", "0 steps". */
export function counted(count: number, noun: string, plural = `${noun}s`): string {
  return `${count} ${count === 1 ? noun : plural}`;
}
