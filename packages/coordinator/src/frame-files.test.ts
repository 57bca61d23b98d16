import { type FSWatcher, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AUTH_HEADER,
  computeGradients,
  createAuthHeader,
  createMsgpackCodec,
  FrameFileLink,
  fromWireTensor,
  gradientReply,
  instantiateTask,
  isFrameFileReference,
  loadMnist,
  type MnistDataset,
  mnistTask,
  parseCoordinatorMessage,
  probeMatches,
  samplesFromWire,
  toSampleBatch,
  writeFlatWeights,
} from '@callosum/core';
import { beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Coordinator, startCoordinator } from './coordinator.js';
import type { CoordinatorOptions } from './options.js';
import { emptyEvaluation, protocolHello } from './test-support/protocol-worker.js';
import { runDirectoryPerTest, runWithWorkerProcesses } from './test-support/worker-processes.js';
import { FrameFileDirectory } from './transport/frame-file-directory.js';

// 25,450 parameters: weights and gradient frames are over the 64 KiB from which frames go as files.
const model = { name: 'mlp', options: { hidden: [32] } };
const STEPS = 5;
const TOKEN = 'frame-files-test-token-0123456789';
const newRunDirectory = runDirectoryPerTest('callosum-frame-files-');
let dataset: MnistDataset;

beforeAll(async () => {
  dataset = await loadMnist();
});

/** This process's coordinators' frame directories in /dev/shm. */
function ownFrameDirectories(): string[] {
  return readdirSync('/dev/shm').filter((name) => name.startsWith(`callosum-frames-${process.pid}-`));
}

async function start(extra: Partial<CoordinatorOptions> = {}): Promise<Coordinator> {
  return startCoordinator({
    outDir: await newRunDirectory(),
    dataset,
    token: TOKEN,
    minWorkers: 2,
    training: { model, batchSize: 32, maxSteps: STEPS, seed: 5, maxShift: 0 },
    log: () => {},
    ...extra,
  });
}

describe('frame files between the coordinator and workers on its machine', () => {
  it('two worker processes: weights and gradients go as files in /dev/shm, the weights equal a run over the sockets to the bit, and the directory goes with the run', async () => {
    const before = new Set(ownFrameDirectories());
    const log: string[] = [];
    const coordinator = await start({ log: (line) => log.push(line) });
    const [created] = ownFrameDirectories().filter((name) => !before.has(name));
    if (created === undefined) throw new Error('the coordinator made no frame directory in /dev/shm');
    const dir = join('/dev/shm', created);
    // Every file made in it, by name: inotify reports each one, however short-lived.
    const files = new Set<string>();
    const watcher: FSWatcher = watch(dir, (_event, name) => name !== null && files.add(name));
    const { summary, exitCodes } = await runWithWorkerProcesses(coordinator, TOKEN, ['one', 'two']);
    watcher.close();
    expect(exitCodes).toEqual([0, 0]);
    expect(summary.steps).toBe(STEPS);
    expect(
      log.filter((line) => line.includes(`exchanges large frames through files in ${dir}`)),
    ).toHaveLength(2);
    for (const worker of ['w1', 'w2']) {
      expect(
        [...files].filter((name) => name.startsWith(`${worker}.to-worker.`)).length,
      ).toBeGreaterThanOrEqual(STEPS);
      expect([...files].filter((name) => name.startsWith(`${worker}.to-coordinator.`))).toHaveLength(STEPS);
    }
    // Each step's weights were written once and linked for the second worker.
    expect([...files].filter((name) => name.startsWith('shared.')).length).toBeGreaterThanOrEqual(STEPS);
    expect(ownFrameDirectories()).not.toContain(created);

    const overSockets = await start({ sharedMemory: false });
    expect(ownFrameDirectories().filter((name) => !before.has(name))).toEqual([]);
    const sockets = await runWithWorkerProcesses(overSockets, TOKEN, ['one', 'two']);
    expect(sockets.exitCodes).toEqual([0, 0]);
    const weights = (run: typeof summary) => readFileSync(join(run.modelDir, 'weights.bin'));
    expect(weights(sockets.summary).equals(weights(summary))).toBe(true);
    expect(sockets.summary.testLoss).toBe(summary.testLoss);
  });

  it('a worker written against the protocol: references once it read the probe, both ways; a skipped file drops it, naming the file', async () => {
    const log: string[] = [];
    const coordinator = await start({ minWorkers: 1, log: (line) => log.push(line) });
    const codec = createMsgpackCodec();
    const network = instantiateTask(mnistTask(model), 0);
    const socket = new WebSocket(coordinator.url, {
      perMessageDeflate: false,
      headers: { [AUTH_HEADER]: createAuthHeader(TOKEN, 'protocol-1.9') },
    });
    const frames: Buffer[] = [];
    let link: FrameFileLink | undefined;
    let weights: Float32Array | undefined;
    let gradientsSent = 0;
    socket.on('message', (frame: Buffer) => {
      frames.push(frame);
      const message = parseCoordinatorMessage(codec.decode(link?.incoming(frame) ?? frame));
      if (message.type === 'welcome') {
        const offer = message.frameFiles;
        if (offer === undefined || !probeMatches(offer)) throw new Error('no readable offer in the welcome');
        link = new FrameFileLink(offer, 'to-coordinator', 1 << 20);
        socket.send(codec.encode({ type: 'frame-files' }));
      } else if (message.type === 'weights') {
        weights = fromWireTensor(message.weights, 'float32').slice();
      } else if (message.type === 'compute') {
        writeFlatWeights(network.model, weights as Float32Array, network.layout);
        const result = computeGradients(network, toSampleBatch(samplesFromWire(message), network.conversion));
        const frame = codec.encode(gradientReply(message, result, { decodeMs: 0, computeMs: 0 }), {
          tensorFrame: true,
        });
        gradientsSent += 1;
        // The third gradient names a file after the one the coordinator expects.
        const reference = Buffer.from((link as FrameFileLink).outgoing(frame));
        if (gradientsSent === 3) reference.writeUInt32LE(7, 4);
        socket.send(reference);
      } else if (message.type === 'evaluate') {
        socket.send(codec.encode(emptyEvaluation(message)));
      }
    });
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(codec.encode(protocolHello(9)));
    const [code, reason] = (await new Promise((resolve) =>
      socket.once('close', (...closed) => resolve(closed)),
    )) as [number, Buffer];
    expect([code, reason.toString()]).toEqual([1008, 'MALFORMED_MESSAGE']);
    expect(gradientsSent).toBe(3);
    expect(log.join('\n')).toMatch(
      /MALFORMED_MESSAGE: frame file reference to file 7 where file 2 comes next/,
    );
    // The welcome came on the socket; the weights after the answer as 8-byte references (0xC1 0x46).
    const references = frames.filter(isFrameFileReference);
    expect(references.length).toBeGreaterThanOrEqual(2);
    for (const reference of references) expect(reference.byteLength).toBe(8);
    await coordinator.stop('test over');
    await coordinator.result.catch(() => {});
  });
});

describe('FrameFileDirectory', () => {
  it("removes a closed connection's probe and unread files, and no other connection's", () => {
    const root = mkdtempSync(join(tmpdir(), 'callosum-frame-root-'));
    try {
      const directory = FrameFileDirectory.open(root);
      if (directory === undefined) throw new Error('no frame directory');
      const frame = new Uint8Array(1 << 17).fill(7);
      for (const channel of ['w1', 'w2', 'w3']) expect(directory.offer(channel)?.channel).toBe(channel);
      for (const channel of ['w1', 'w2']) directory.accept(channel, 1 << 20)?.outgoing(frame);
      expect(directory.accept('w4', 1 << 20)).toBeUndefined(); // never offered
      expect(directory.accept('w1', 1 << 20)).toBeUndefined(); // answered already
      expect(readdirSync(directory.path).sort()).toEqual(
        ['shared.0', 'w1.to-worker.0', 'w2.to-worker.0', 'w3.probe'].sort(),
      );
      directory.release('w1');
      directory.release('w3');
      expect(readdirSync(directory.path).sort()).toEqual(['shared.0', 'w2.to-worker.0']);
      expect(readFileSync(join(directory.path, 'w2.to-worker.0')).equals(Buffer.from(frame))).toBe(true);
      directory.close();
      expect(readdirSync(root)).toEqual([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('removes the directories of coordinators that no longer run, and keeps those of running ones', () => {
    const root = mkdtempSync(join(tmpdir(), 'callosum-frame-root-'));
    try {
      // pid 2^22 + 1 is above Linux's largest pid: no process has it.
      const abandoned = join(root, `callosum-frames-${2 ** 22 + 1}-abc123`);
      const running = join(root, `callosum-frames-${process.pid}-def456`);
      const other = join(root, 'someone-else');
      for (const path of [abandoned, running, other]) mkdirSync(path);
      const directory = FrameFileDirectory.open(root);
      expect(directory).toBeDefined();
      const left = readdirSync(root);
      expect(left).not.toContain(`callosum-frames-${2 ** 22 + 1}-abc123`);
      expect(left).toEqual(expect.arrayContaining([`callosum-frames-${process.pid}-def456`, 'someone-else']));
      directory?.close();
      expect(readdirSync(root).sort()).toEqual(
        [`callosum-frames-${process.pid}-def456`, 'someone-else'].sort(),
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
