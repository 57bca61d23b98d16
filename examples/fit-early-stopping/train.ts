// fit() from a TypeScript program: trains ./task.mjs on two local worker processes, holds out the last
// quarter of its data for validation, stops once val_loss has not improved for 3 epochs, and keeps the
// best model. Prints the History; `--json` prints it (with the run summary) as one JSON line instead.
//   pnpm --filter @callosum/examples build && node examples/dist/fit-early-stopping/train.js [--out dir] [--json]
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { earlyStopping, fit, saveBestModel } from '@callosum/cli';

const { values: flags } = parseArgs({
  options: {
    out: { type: 'string', default: `runs/fit-early-stopping-${Date.now()}` },
    json: { type: 'boolean', default: false },
  },
});
// Compiled to dist/fit-early-stopping/train.js; the task module stays where it is written.
const task = fileURLToPath(new URL('../../fit-early-stopping/task.mjs', import.meta.url));

const { history, summary } = await fit(task, {
  outDir: flags.out,
  workers: 2,
  validationSplit: 0.25,
  callbacks: [
    earlyStopping({ monitor: 'val_loss', patience: 3 }),
    saveBestModel({ monitor: 'val_loss', dir: join(flags.out, 'best-model') }),
  ],
  log: () => {},
});

if (flags.json) {
  console.log(JSON.stringify({ history, summary }));
} else {
  for (const [index, epoch] of history.epoch.entries()) {
    const figures = Object.entries(history.history).map(
      ([name, values]) => `${name} ${values[index]?.toFixed(4)}`,
    );
    console.log(`epoch ${epoch + 1}: ${figures.join(', ')}`);
  }
  console.log(
    `stopped after ${history.epoch.length} of 100 epochs; best model in ${join(flags.out, 'best-model')}`,
  );
}
