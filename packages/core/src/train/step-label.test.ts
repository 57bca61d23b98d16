import { describe, expect, it } from 'vitest';
import { stepLabel } from './step-label.js';

describe('stepLabel', () => {
  it('names a 0-based step index as people count steps', () => {
    expect(stepLabel(0)).toBe('step 1');
    expect(stepLabel(41)).toBe('step 42');
  });
});
