import { describe, expect, it } from 'vitest';
import { formatProgressLine } from './progress-line.js';

const fields = {
  step: 120,
  totalSteps: 938,
  epoch: '1',
  loss: '0.7607',
  acc: '83.8%',
  rate: '1875',
  workers: '4 workers',
  etaSeconds: 437,
};

describe('formatProgressLine', () => {
  it('fits every width on one line, keeping the step count, dropping fields in a fixed order with ETA last', () => {
    const wide = formatProgressLine(fields, 120);
    expect(wide).toMatch(
      /^epoch 1 \|█+░+\| step 120\/938 \| loss 0\.7607 \| acc 83\.8% \| 1875 samples\/s \| 4 workers \| eta 7m17s$/,
    );
    const at80 = formatProgressLine(fields, 80);
    expect(at80.length).toBeLessThan(80);
    expect(at80).toContain('eta 7m17s');
    expect(at80).not.toContain('workers');
    const at60 = formatProgressLine(fields, 60);
    expect(at60.length).toBeLessThan(60);
    expect(at60).toMatch(/step 120\/938.*eta 7m17s$/);
    expect(at60).not.toMatch(/samples\/s|workers/);
    for (let columns = 10; columns <= 200; columns++) {
      const line = formatProgressLine(fields, columns);
      expect(line.length, `at ${columns} columns`).toBeLessThan(columns);
      if (columns > 25) expect(line).toContain('step 120/938');
    }
  });

  it('shows no ETA before one can be estimated', () => {
    expect(formatProgressLine({ ...fields, etaSeconds: undefined }, 200)).not.toContain('eta');
  });
});
