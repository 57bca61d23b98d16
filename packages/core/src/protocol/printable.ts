/**
 * Text that a peer chose and that ends up in a log line: a worker's name, its backend, a failure's
 * message. A newline in it would start a line of its own that reads like the log's (a forged
 * "coordinator: worker … joined"), and a bidi override or a terminal escape would change how the line
 * reads. Names are refused if they hold such characters; free text is logged with them escaped.
 */

/**
 * The characters that must not reach a log line as they are: C0 and C1 control characters (with \n, \r,
 * \t and DEL), the Unicode line and paragraph separators, and the bidirectional marks, embeddings,
 * overrides and isolates (U+061C, U+200E–U+200F, U+202A–U+202E, U+2066–U+2069).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;
const UNPRINTABLE_ALL = new RegExp(UNPRINTABLE.source, 'g');

const SHORT_ESCAPES: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/** Why `text` cannot be a name shown in logs (its first unprintable character, escaped), or undefined. */
export function unprintableCharacter(text: string): string | undefined {
  const found = UNPRINTABLE.exec(text)?.[0];
  return found === undefined ? undefined : escaped(found);
}

/**
 * Why `text` cannot be a printable name (a worker's, its backend's, its host's: the protocol's
 * `printable name`), as the rest of a sentence that names it, or undefined: the one rule of messages.ts
 * and of a worker checking its own name before it sends it.
 */
export function unprintableNameProblem(text: string): string | undefined {
  const character = unprintableCharacter(text);
  return character === undefined
    ? undefined
    : `must not contain control characters, line separators or bidi overrides (found ${character})`;
}

/** A character as log lines and messages write it: \n, \r, \t, or \uXXXX (`\u001b`, `\u202e`). */
function escaped(character: string): string {
  return SHORT_ESCAPES[character] ?? `\\u${(character.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}`;
}

/**
 * `text` fit for one log line: each unprintable character written as an escape (`\n`, `\u001b`,
 * `\u202e`); printable text is unchanged.
 */
export function escapeUnprintable(text: string): string {
  return text.replace(UNPRINTABLE_ALL, escaped);
}
