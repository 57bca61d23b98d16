import {
  type FSWatcher,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  watch,
} from 'node:fs';
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
  readProbe,
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
      const gradients = [...files].filter((name) =>
        new RegExp(`^${worker}\\.to-coordinator\\.\\d+$`).test(name),
      );
      expect(gradients).toHaveLength(STEPS);
    }
    // Each step's weights were written once and linked for the second worker.
    expect([...files].filter((name) => /^shared\.\d+$/.test(name)).length).toBeGreaterThanOrEqual(STEPS);
    // Read files come back as spares to write the next ones into.
    expect(files).toContain('w1.to-coordinator.spare');
    expect(files).toContain('shared.spare');
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
    let gradientsSent = 0;
    const worker = await protocolWorker({
      onGradient: (reference) => {
        gradientsSent += 1;
        // The third gradient names a file after the one the coordinator expects.
        if (gradientsSent === 3) reference.writeUInt32LE(7, 4);
      },
    });
    expect(await worker.closed).toEqual([1008, 'MALFORMED_MESSAGE']);
    expect(gradientsSent).toBe(3);
    expect(worker.log.join('\n')).toMatch(
      /MALFORMED_MESSAGE: frame file reference to file 7 where file 2 comes next/,
    );
    // The welcome came on the socket; the weights after the answer as 8-byte references (0xC1 0x46).
    const references = worker.frames.filter(isFrameFileReference);
    expect(references.length).toBeGreaterThanOrEqual(2);
    for (const reference of references) expect(reference.byteLength).toBe(8);
    await worker.stop();
  });

  it('refuses a worker whose answer does not hold its probe: it proves nothing about where it runs', async () => {
    const worker = await protocolWorker({ probe: () => '0123456789abcdef0123456789abcdef' });
    expect(await worker.closed).toEqual([1008, 'UNEXPECTED_MESSAGE']);
    expect(worker.log.join('\n')).toMatch(/sent frame-files with another probe than its directory holds/);
    await worker.stop();
  });

  it('evicts a worker that takes frame files and leaves them unread, as one whose socket fills, and removes them', async () => {
    // It answers every shard with a zero gradient, never reading the weights it was sent: evicted once
    // three weights frames (about 100 kB each) wait unread, before the run ends.
    const worker = await protocolWorker({
      readsFiles: false,
      coordinator: {
        maxBufferedBytes: 250_000,
        training: { model, batchSize: 32, maxSteps: 20, seed: 5, maxShift: 0 },
      },
    });
    expect(await worker.closed).toEqual([1008, 'SLOW_READER']);
    expect(worker.log.join('\n')).toMatch(/not reading \(\d+ bytes queued\)/);
    expect(readdirSync(worker.dir).filter((name) => name.startsWith('w1.'))).toEqual([]);
    await worker.stop();
  });
});

/**
 * A worker written against the protocol (1.9) for one coordinator of its own: it reads the offered
 * probe (or answers `probe()` instead), computes real gradients from the weights files it is sent (or,
 * with `readsFiles: false`, answers zeros without reading them) and sends them as files.
 */
async function protocolWorker(options: {
  probe?: () => string;
  readsFiles?: boolean;
  onGradient?: (reference: Buffer) => void;
  coordinator?: Partial<CoordinatorOptions>;
}) {
  const log: string[] = [];
  const coordinator = await start({ minWorkers: 1, log: (line) => log.push(line), ...options.coordinator });
  const codec = createMsgpackCodec();
  const network = instantiateTask(mnistTask(model), 0);
  const socket = new WebSocket(coordinator.url, {
    perMessageDeflate: false,
    headers: { [AUTH_HEADER]: createAuthHeader(TOKEN, 'protocol-1.9') },
  });
  const frames: Buffer[] = [];
  let dir = '';
  let link: FrameFileLink | undefined;
  let weights: Float32Array | undefined;
  const readsFiles = options.readsFiles ?? true;
  socket.on('message', (frame: Buffer) => {
    frames.push(frame);
    if (isFrameFileReference(frame) && !readsFiles) return;
    const message = parseCoordinatorMessage(codec.decode(link?.incoming(frame) ?? frame));
    if (message.type === 'welcome') {
      const offer = message.frameFiles;
      const probe = offer === undefined ? undefined : (options.probe?.() ?? readProbe(offer));
      if (offer === undefined || probe === undefined) throw new Error('no readable offer in the welcome');
      dir = offer.dir;
      link = new FrameFileLink(offer, 'to-coordinator', { maxFrameBytes: 1 << 20 });
      socket.send(codec.encode({ type: 'frame-files', probe }));
    } else if (message.type === 'weights') {
      weights = fromWireTensor(message.weights, 'float32').slice();
    } else if (message.type === 'compute') {
      const count = message.labels.shape[0] as number;
      const result = readsFiles
        ? (() => {
            writeFlatWeights(network.model, weights as Float32Array, network.layout);
            return computeGradients(network, toSampleBatch(samplesFromWire(message), network.conversion));
          })()
        : {
            gradient: new Float32Array(network.layout.totalSize),
            lossSum: 0,
            correct: 0,
            metricSums: [],
            count,
          };
      const frame = codec.encode(gradientReply(message, result, { decodeMs: 0, computeMs: 0 }), {
        tensorFrame: true,
      });
      const reference = Buffer.from((link as FrameFileLink).outgoing(frame));
      options.onGradient?.(reference);
      socket.send(reference);
    } else if (message.type === 'evaluate') {
      socket.send(codec.encode(emptyEvaluation(message)));
    }
  });
  // Heartbeats, so that only what the test is about can end the connection.
  const heartbeat = setInterval(() => socket.send(codec.encode({ type: 'heartbeat', phase: 'idle' })), 200);
  await new Promise((resolve) => socket.once('open', resolve));
  socket.send(codec.encode(protocolHello(9)));
  const closed = new Promise<[number, string]>((resolve) =>
    socket.once('close', (code, reason) => resolve([code, reason.toString()])),
  );
  return {
    log,
    frames,
    closed,
    get dir() {
      return dir;
    },
    async stop() {
      clearInterval(heartbeat);
      await coordinator.stop('test over');
      await coordinator.result.catch(() => {});
    },
  };
}

/** The link of `channel` once its worker answered with the probe it read. */
function answered(directory: FrameFileDirectory, channel: string): FrameFileLink {
  const offer = directory.offer(channel);
  const probe = offer === undefined ? undefined : readProbe(offer);
  if (probe === undefined) throw new Error(`no probe for ${channel}`);
  const answer = directory.accept(channel, probe, 1 << 20);
  if ('refused' in answer) throw new Error(answer.refused);
  return answer.link;
}

describe('FrameFileDirectory', () => {
  it('writes each weights frame once for every worker, and reuses its file only once no worker can still read it', () => {
    const root = mkdtempSync(join(tmpdir(), 'callosum-frame-root-'));
    try {
      const directory = FrameFileDirectory.open(() => {}, root);
      if (directory === undefined) throw new Error('no frame directory');
      const dir = directory.path;
      const [toOne, toTwo] = ['w1', 'w2'].map((channel) => answered(directory, channel)) as [
        FrameFileLink,
        FrameFileLink,
      ];
      const [one, two] = ['w1', 'w2'].map(
        (channel) => new FrameFileLink({ dir, channel }, 'to-coordinator', { maxFrameBytes: 1 << 20 }),
      ) as [FrameFileLink, FrameFileLink];
      const frame = (fill: number, bytes: number) => Buffer.alloc(bytes, fill);
      const inode = (name: string) => statSync(join(dir, name)).ino;

      const a = frame(1, 1 << 17);
      const [a1, a2] = [toOne.outgoing(a, true), toTwo.outgoing(a, true)].map((reference) =>
        Buffer.from(reference),
      );
      expect(inode('w1.to-worker.0')).toBe(inode('shared.0'));
      expect(inode('w2.to-worker.0')).toBe(inode('shared.0'));
      const first = inode('shared.0');
      expect(one.incoming(a1 as Buffer).equals(a)).toBe(true);
      expect(two.incoming(a2 as Buffer).equals(a)).toBe(true);

      // Both read it: the next frame (shorter) is written into the same file.
      const b = frame(2, (1 << 17) - 8);
      const b1 = Buffer.from(toOne.outgoing(b, true));
      const b2 = Buffer.from(toTwo.outgoing(b, true));
      expect(inode('shared.1')).toBe(first);
      expect(one.incoming(b1).equals(b)).toBe(true);

      // The second worker has not read its copy yet: the next frame gets a new file, and its copy stays whole.
      const c = frame(3, 1 << 17);
      toOne.outgoing(c, true);
      expect(inode('shared.2')).not.toBe(first);
      // A frame for one worker alone is written for it, not shared.
      toOne.outgoing(frame(4, 1 << 17));
      expect(statSync(join(dir, 'w1.to-worker.3')).nlink).toBe(1);
      expect(two.incoming(b2).equals(b)).toBe(true);
      directory.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("removes a closed connection's probe and unread files, and no other connection's", () => {
    const root = mkdtempSync(join(tmpdir(), 'callosum-frame-root-'));
    try {
      const directory = FrameFileDirectory.open(() => {}, root);
      if (directory === undefined) throw new Error('no frame directory');
      const frame = new Uint8Array(1 << 17).fill(7);
      for (const channel of ['w1', 'w2']) answered(directory, channel).outgoing(frame, true);
      expect(directory.offer('w3')).toEqual({ dir: directory.path, channel: 'w3' });
      const probe = readProbe({ dir: directory.path, channel: 'w3' }) as string;
      expect(directory.accept('w4', probe, 1 << 20)).toEqual({
        refused: 'sent frame-files, but was offered none',
      });
      expect(directory.accept('w1', probe, 1 << 20)).toEqual({ refused: 'sent frame-files twice' });
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

  it('removes the directories of coordinators that no longer run, once untouched for a minute; keeps the rest', () => {
    const root = mkdtempSync(join(tmpdir(), 'callosum-frame-root-'));
    try {
      // pid 2^22 + 1 is above Linux's largest pid: no process here has it.
      const gone = `callosum-frames-${2 ** 22 + 1}`;
      const abandoned = join(root, `${gone}-abc123`);
      // A coordinator in another pid namespace sharing /dev/shm: not running here, but its directory is in use.
      const elsewhere = join(root, `${gone}-xyz789`);
      const running = join(root, `callosum-frames-${process.pid}-def456`);
      const other = join(root, 'someone-else');
      for (const path of [abandoned, elsewhere, running, other]) mkdirSync(path);
      const twoMinutesAgo = new Date(Date.now() - 2 * 60_000);
      for (const path of [abandoned, running, other]) utimesSync(path, twoMinutesAgo, twoMinutesAgo);
      const directory = FrameFileDirectory.open(() => {}, root);
      expect(directory).toBeDefined();
      directory?.close();
      expect(readdirSync(root).sort()).toEqual(
        [`${gone}-xyz789`, `callosum-frames-${process.pid}-def456`, 'someone-else'].sort(),
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
