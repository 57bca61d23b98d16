/** A PEM text holds at least one `-----BEGIN …-----` line. */
const PEM_BEGIN = /-----BEGIN [A-Z0-9 ]+-----/;

/**
 * Why `text` is no PEM text (a certificate, key or CA), as the rest of a sentence that names it ("<file>
 * is empty: expected a PEM file"), or undefined when it holds a PEM block. Node takes an empty
 * certificate, key or CA without a word (a server no client can handshake with; an empty CA is no CA,
 * so Node's public roots would verify), so every place that is given one checks it with this.
 * `expected` says what was expected where the text is empty.
 */
export function pemProblem(text: string, expected = 'a PEM text'): string | undefined {
  if (text.trim() === '') return `is empty: expected ${expected}`;
  return PEM_BEGIN.test(text) ? undefined : 'holds no PEM block (no "-----BEGIN" line)';
}
