// Trains the reference CNN on the real MNIST for one epoch in this one process, using only
// @callosum/core, and prints the test accuracy. Run from the repository root:
//   pnpm --filter @callosum/examples train-mnist
import { trainLocal } from '@callosum/core';

const result = await trainLocal({
  model: { name: 'cnn' },
  epochs: 1,
  outDir: 'runs/example-cnn',
  onStep: ({ step, totalSteps, loss, samplesPerSecond }) => {
    if (step % 50 === 0 || step === totalSteps) {
      console.log(
        `step ${step}/${totalSteps}  loss ${loss.toFixed(4)}  ${samplesPerSecond.toFixed(0)} samples/s`,
      );
    }
  },
});

console.log(`backend: ${result.backend.backend} (${result.backend.reason})`);
console.log(`test accuracy: ${(result.testAccuracy * 100).toFixed(2)}%  (model saved in runs/example-cnn)`);
