import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Coordinator, type RunSummary, startCoordinator } from '@callosum/coordinator';
import {
  createMsgpackCodec,
  fingerprintOfTask,
  initBackend,
  instantiateTask,
  loadModel,
  loadTaskModule,
  type ParameterLayout,
  PROTOCOL_VERSION,
  parseCoordinatorMessage,
  readFlatWeights,
  type Task,
  toWireTensor,
  trainLocal,
} from '@callosum/core';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
// The built module, so that local workers start the built CLI entry point next to it.
import { spawnLocalWorker } from '../dist/local-workers.js';
import { lastJsonLine, maxRelativeDifference, runCli, temporaryDirectory } from './processes.js';

// A task module's run is the same computation in one process and on N workers, including what is not
// a plain gradient: BatchNormalization (statistics of the whole batch, or of each micro-batch; moving
// statistics combined in the reduction's fixed order) and Dropout (masks drawn per sample). The task: a
// functional model with both, regression with MSE.
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/tasks/${name}`, import.meta.url));
const TASK = fixture('regression-task.mjs');
const DROPOUT_ONLY = fixture('regression-dropout.mjs');
const STEPS = 5;
const MICRO_BATCH = 16;

let layout: ParameterLayout;
let initial: Float32Array;

beforeAll(async () => {
  await initBackend('wasm');
  const taskModel = instantiateTask(await loadTaskModule(TASK), 1);
  layout = taskModel.layout;
  initial = readFlatWeights(taskModel.model, layout);
  taskModel.model.dispose();
});

async function distributedWeights(
  workers: number,
  microBatchSize?: number,
  task = TASK,
  extra: string[] = [],
): Promise<Float32Array> {
  const out = await temporaryDirectory(`task-equivalence-${workers}`);
  const run = await runCli([
    'train',
    '--task',
    task,
    '--workers',
    String(workers),
    '--threads',
    '1',
    '--steps',
    String(STEPS),
    '--backend',
    'wasm',
    '--out',
    out,
    '--json',
    ...(microBatchSize === undefined ? [] : ['--micro-batch-size', String(microBatchSize)]),
    ...extra,
  ]);
  expect(run.code, run.stderr).toBe(0);
  expect(lastJsonLine(run)).toMatchObject({ steps: STEPS, workers });
  const model = await loadModel(join(out, 'model'));
  const weights = readFlatWeights(model);
  model.dispose();
  return weights;
}

async function localWeights(microBatchSize?: number, task = TASK): Promise<Float32Array> {
  const local = await trainLocal({
    task: await loadTaskModule(task),
    maxSteps: STEPS,
    microBatchSize,
    backend: 'wasm',
    evaluate: false,
  });
  local.model.dispose();
  return local.weights;
}

/** The largest relative difference over the entries of one role. */
function differenceIn(role: 'trainable' | 'statistic', a: Float32Array, b: Float32Array): number {
  return maxRelativeDifference(a, b, {
    ...layout,
    entries: layout.entries.filter((entry) => entry.role === role),
  });
}

describe('a task with BatchNormalization and Dropout trains the same on 1 and 3 workers as in one process', () => {
  it('has moving statistics that training moves (so that equal ones below mean something)', async () => {
    const local = await localWeights(MICRO_BATCH);
    expect(layout.entries.filter((entry) => entry.role === 'statistic')).toHaveLength(2);
    expect(differenceIn('statistic', local, initial)).toBeGreaterThan(1e-2);
    expect(differenceIn('trainable', local, initial)).toBeGreaterThan(1e-3);
  });

  it('gives bit-identical trainable and non-trainable weights with micro-batches', async () => {
    const local = await localWeights(MICRO_BATCH);
    for (const workers of [1, 3]) {
      const distributed = await distributedWeights(workers, MICRO_BATCH);
      expect(differenceIn('trainable', distributed, local), `${workers} workers`).toBe(0);
      expect(differenceIn('statistic', distributed, local), `${workers} workers`).toBe(0);
    }
  }, 240_000);

  // Without micro-batches, 1 worker is the same computation as one process (to the bit). On 3, with
  // every shard normalised with the whole batch's statistics (--batch-norm sync), it is the same to
  // float32 rounding; each shard normalised with its own (the default, local: DDP without
  // SyncBatchNorm) is a different computation, far from it.
  it('without micro-batches, gives bit-identical weights on 1 worker, within 1e-5 on 3 (synchronised, or Dropout alone), and local statistics do not', async () => {
    const local = await localWeights();
    expect(maxRelativeDifference(await distributedWeights(1), local, layout)).toBe(0);
    // Also with 2 threads, which must not normalise pieces of the shard each with its own statistics;
    // --batch-norm sync on one worker is the same computation (a step of one shard has nothing to sync).
    for (const extra of [
      ['--threads', '2'],
      ['--threads', '2', '--batch-norm', 'sync'],
    ]) {
      const threaded = await distributedWeights(1, undefined, TASK, extra);
      expect(maxRelativeDifference(threaded, local, layout), extra.join(' ')).toBe(0);
    }
    for (const topology of ['star', 'ring']) {
      const synchronised = await distributedWeights(3, undefined, TASK, [
        '--batch-norm',
        'sync',
        '--topology',
        topology,
      ]);
      expect(differenceIn('trainable', synchronised, local), topology).toBeLessThanOrEqual(1e-5);
      expect(differenceIn('statistic', synchronised, local), topology).toBeLessThanOrEqual(1e-5);
    }
    const perShard = await distributedWeights(3);
    expect(maxRelativeDifference(perShard, local, layout)).toBeGreaterThan(1e-3);
    // Without BatchNormalization the default path alone is one process's computation to float32
    // rounding on 3 workers: Dropout's masks are drawn per sample.
    const dropoutLocal = await localWeights(undefined, DROPOUT_ONLY);
    const dropoutDistributed = await distributedWeights(3, undefined, DROPOUT_ONLY);
    expect(dropoutLocal.length).toBeLessThan(layout.totalSize);
    const dropoutLayout = {
      entries: [
        {
          name: 'all',
          shape: [dropoutLocal.length],
          offset: 0,
          size: dropoutLocal.length,
          role: 'trainable' as const,
        },
      ],
      totalSize: dropoutLocal.length,
      trainableSize: dropoutLocal.length,
    };
    expect(maxRelativeDifference(dropoutDistributed, dropoutLocal, dropoutLayout)).toBeLessThanOrEqual(1e-5);
  }, 300_000);
});

/** An in-process coordinator of a --batch-norm sync run of the task, for 3 workers. */
async function synchronisedCoordinator(name: string, task: Task) {
  return startCoordinator({
    task,
    outDir: await temporaryDirectory(name),
    minWorkers: 3,
    training: { maxSteps: STEPS, batchNorm: 'sync' },
    log: () => {},
  });
}

/** Three local workers of the task, one thread each, for `coordinator`. */
function threeWorkers(name: string, coordinator: Coordinator) {
  const compute = { backend: 'wasm', threads: 1, taskModule: TASK };
  return [1, 2, 3].map((index) => spawnLocalWorker(`${name}-${index}`, coordinator.url, compute));
}

/** The run's saved weights are one process's, to float32 rounding. */
async function expectOneProcessWeights(summary: RunSummary): Promise<void> {
  const model = await loadModel(summary.modelDir);
  const weights = readFlatWeights(model);
  model.dispose();
  expect(maxRelativeDifference(weights, await localWeights(), layout)).toBeLessThanOrEqual(1e-5);
}

describe('a synchronised run stopped after step 2 and resumed without saying sync', () => {
  // The resumed run takes `batchNorm` from its checkpoint's config, as every setting that changes what
  // the run computes: steps 3 to 5 normalised shard by shard would leave one process's weights far behind.
  it('normalises with the whole batch to the end, within 1e-5 of trainLocal', async () => {
    const task = await loadTaskModule(TASK);
    const outDir = await temporaryDirectory('task-batch-norm-resume');
    let stopping: Promise<void> | undefined;
    const first: Coordinator = await startCoordinator({
      task,
      outDir,
      minWorkers: 3,
      training: { maxSteps: STEPS, batchNorm: 'sync' },
      log: () => {},
      onStep: (report) => {
        if (report.step === 2) stopping = first.stop('the test stops it after step 2');
      },
    });
    const firstWorkers = threeWorkers('bn-first', first);
    await expect(first.result).rejects.toThrow(/after step 2/);
    await stopping;
    for (const worker of firstWorkers) worker.process.kill('SIGKILL');

    const resumed = await startCoordinator({
      task,
      outDir,
      resume: true,
      minWorkers: 3,
      training: { maxSteps: STEPS },
      log: () => {},
    });
    threeWorkers('bn-resumed', resumed);
    const summary = await resumed.result;
    expect(summary.steps).toBe(STEPS);
    await expectOneProcessWeights(summary);
  }, 120_000);
});

describe('a synchronised BatchNormalization pass that loses its worker', () => {
  // Worker 2 stops itself (SIGSTOP, fault injection) on receiving step 2's first BatchNormalization
  // pass and is then SIGKILLed: the pass's shard is redone on the others, and the weights are still
  // those of one process.
  it('is redone on the survivors, and the run still ends within 1e-5 of trainLocal', async () => {
    const coordinator = await synchronisedCoordinator('task-batch-norm-loss', await loadTaskModule(TASK));
    const compute = { backend: 'wasm', threads: 1, taskModule: TASK };
    const [, victim] = [1, 2, 3].map((index) =>
      spawnLocalWorker(
        `bn-worker-${index}`,
        coordinator.url,
        compute,
        index === 2 ? { CALLOSUM_FAULT_STOP_IN_BATCH_NORM_AT: '2' } : {},
      ),
    );
    let stopped = false;
    const poll = setInterval(() => {
      if (stopped || !victim?.recentLog.some((line) => line.includes('FAULT INJECTION: stopped'))) return;
      stopped = true;
      victim.process.kill('SIGKILL');
    }, 20);
    const summary = await coordinator.result.finally(() => clearInterval(poll));
    expect(stopped).toBe(true);
    expect(await victim?.exited).toBe('SIGKILL');
    expect(summary.steps).toBe(STEPS);
    expect(summary.redoneShards).toBeGreaterThanOrEqual(1);
    await expectOneProcessWeights(summary);
  }, 120_000);

  // A worker written against the protocol answers its first pass with int32 values instead of float32,
  // then leaves: the result is rejected (not a crash of the coordinator), the shard is redone, and the
  // weights are still those of one process.
  it('rejects a malformed result, redoes its shard, and still ends within 1e-5 of trainLocal', async () => {
    const task = await loadTaskModule(TASK);
    const coordinator = await synchronisedCoordinator('task-batch-norm-malformed', task);
    const compute = { backend: 'wasm', threads: 1, taskModule: TASK };
    for (const index of [1, 2]) spawnLocalWorker(`bn-honest-${index}`, coordinator.url, compute);
    const codec = createMsgpackCodec();
    const rogue = new WebSocket(coordinator.url, { perMessageDeflate: false });
    let answered: string | undefined;
    rogue.on('message', (frame: Buffer) => {
      const message = parseCoordinatorMessage(codec.decode(frame));
      if (message.type !== 'batch-norm' || answered !== undefined) return;
      const values = new Int32Array(message.statistics.shape[0] as number);
      const { step, pass, shard } = message;
      const count = message.labels.shape[0] as number;
      const timings = { decodeMs: 0, computeMs: 0 };
      answered = `step ${step} pass ${pass}`;
      rogue.send(
        codec.encode({
          type: 'batch-norm-result',
          step,
          pass,
          shard,
          count,
          elements: count,
          values: toWireTensor(values, [values.length]),
          timings,
        }),
      );
      setTimeout(() => rogue.close(), 200);
    });
    await new Promise((resolve) => rogue.once('open', resolve));
    rogue.send(
      codec.encode({
        type: 'hello',
        protocol: PROTOCOL_VERSION,
        workerName: 'bn-rogue',
        backend: 'wasm',
        pid: 1,
        hostname: 'here',
        task: fingerprintOfTask(task),
      }),
    );
    const summary = await coordinator.result;
    expect(answered).toBe('step 0 pass 0');
    expect(summary.steps).toBe(STEPS);
    expect(summary.redoneShards).toBeGreaterThanOrEqual(1);
    // metrics.jsonl names the pass whose result was rejected.
    const rejections = (await readFile(summary.metricsFile, 'utf8'))
      .split('\n')
      .filter((line) => line.includes('"rejected-gradient"'))
      .map((line) => JSON.parse(line));
    expect(rejections).toEqual([
      expect.objectContaining({ step: 0, pass: 0, code: 'MALFORMED_MESSAGE', worker: expect.any(String) }),
    ]);
    await expectOneProcessWeights(summary);
  }, 120_000);
});
