import { describe, expect, it } from 'vitest';
import { pemProblem } from './pem.js';
import { escapeUnprintable, unprintableNameProblem } from './printable.js';

// The checks the CLI's TLS flags, the worker's options and the coordinator's server share.
describe('pemProblem', () => {
  it('takes a text with a PEM block, and names an empty one or one without a block', () => {
    expect(pemProblem('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n')).toBeUndefined();
    expect(pemProblem('')).toBe('is empty: expected a PEM text');
    expect(pemProblem(' \n', 'a PEM file')).toBe('is empty: expected a PEM file');
    expect(pemProblem('not a certificate')).toBe('holds no PEM block (no "-----BEGIN" line)');
  });
});

describe('unprintableNameProblem', () => {
  it('names the first unprintable character as the log escapes it', () => {
    expect(unprintableNameProblem('pod-7 (gpu 0)')).toBeUndefined();
    for (const [name, shown] of [
      ['a\u001b[31m', '\\u001b'],
      ['a\u202eb', '\\u202e'],
      ['a\nb', '\\n'],
    ]) {
      expect(unprintableNameProblem(name as string)).toBe(
        `must not contain control characters, line separators or bidi overrides (found ${shown})`,
      );
      // The same form as escaped text in a log line.
      expect(escapeUnprintable(name as string)).toContain(shown);
    }
  });
});
