import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  createMsgpackCodec,
  INSTANCE_HEADER,
  instantiateTask,
  isWorkerInstance,
  mnistTask,
  PROTOCOL_VERSION,
  parseWorkerMessage,
  toWireTensor,
  type WorkerMessage,
  writeProbe,
} from '@callosum/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type WebSocket, WebSocketServer } from 'ws';
import { runWorker } from './worker.js';

afterEach(() => {
  vi.restoreAllMocks();
});

const codec = createMsgpackCodec();
const model = { name: 'mlp', options: { hidden: [8] } };

/**
 * A coordinator that is a script: a real WebSocket server on loopback that hands each message a worker
 * sends to `answer`, with the socket, which connection it came on (from 1) and its upgrade request.
 */
async function scriptedCoordinator(
  answer: (message: WorkerMessage, socket: WebSocket, connection: number, request: IncomingMessage) => void,
): Promise<{ url: string; port: number; close(): Promise<void> }> {
  const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((resolve) => server.once('listening', resolve));
  let connections = 0;
  server.on('connection', (socket, request) => {
    connections += 1;
    const connection = connections;
    socket.on('message', (frame: Buffer) =>
      answer(parseWorkerMessage(codec.decode(frame)), socket, connection, request),
    );
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}`,
    port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A welcome to a run of `model`, with `extra` fields. */
function welcome(extra: Record<string, unknown>): Record<string, unknown> {
  return {
    type: 'welcome',
    protocol: PROTOCOL_VERSION,
    workerId: 'w1',
    runId: 'run',
    model,
    parameterCount: instantiateTask(mnistTask(model), 0).layout.totalSize,
    heartbeatIntervalMs: 60_000,
    ...extra,
  };
}

describe('reconnecting', () => {
  it('gives up when giveUpAfterMs is up, not after a whole backoff delay more', async () => {
    // No jitter: the waits would be 2,500 then 5,000 ms, the second ending 4.5 s past the deadline.
    vi.spyOn(Math, 'random').mockReturnValue(0.999_999);
    const waits: number[] = [];
    const started = performance.now();
    const result = await runWorker({
      url: 'ws://127.0.0.1:1', // nothing listens on port 1: every attempt is refused at once
      backend: 'cpu',
      threads: 1,
      // A second to spare after the first wait, so that its timer may fire late on a busy machine.
      giveUpAfterMs: 3_500,
      reconnectDelayMs: 2_500,
      maxReconnectDelayMs: 10_000,
      log: (line) => {
        const wait = /retrying in (\d+) ms/.exec(line)?.[1];
        if (wait !== undefined) waits.push(Number(wait));
      },
    });
    const elapsed = performance.now() - started;
    expect(result.exitCode).toBe(1);
    expect(result.reason).toMatch(/no coordinator at ws:\/\/127\.0\.0\.1:1 for 3500 ms/);
    // The first wait is whole; the second is cut to what is left of the 3.5 s.
    expect(waits).toHaveLength(2);
    expect(waits[0]).toBe(2_500);
    expect(waits[1]).toBeLessThan(1_000);
    expect((waits[0] as number) + (waits[1] as number)).toBeLessThanOrEqual(3_500);
    // Loading the backend comes first; even so, short of the 7.5 s the uncut waits would take.
    expect(elapsed).toBeGreaterThanOrEqual(3_500);
    expect(elapsed).toBeLessThan(7_000);
  }, 30_000);
});

describe('refused for now', () => {
  it.each([
    [
      'EVICTION_COOLDOWN',
      'evicted once for its results (last: 3 shards in a row failed); taken back in 30 s',
    ],
    ['RUN_FULL', 'the run has its maximum of 2 workers'],
  ])(
    'a coordinator that cannot take it now (%s): it tries again with its backoff, as one process, then gives up naming why',
    async (code, reason) => {
      let hellos = 0;
      const instances: unknown[] = [];
      const coordinator = await scriptedCoordinator((message, socket, _connection, request) => {
        if (message.type !== 'hello') return;
        instances.push(request.headers[INSTANCE_HEADER]);
        hellos += 1;
        socket.send(codec.encode({ type: 'shutdown', code, reason }));
        socket.close(1013, code);
      });
      try {
        const { url, port } = coordinator;
        const result = await runWorker({
          url,
          backend: 'cpu',
          threads: 1,
          giveUpAfterMs: 1_500,
          reconnectDelayMs: 100,
          maxReconnectDelayMs: 400,
          log: () => {},
        });
        expect(result.exitCode).toBe(1);
        expect(result.reason).toBe(
          `the coordinator at ws://127.0.0.1:${port} kept refusing this worker for 1500 ms (${code}: ${reason})`,
        );
        // Refused for now, not failed: it asked again and again (a fatal refusal, such as TASK_MISMATCH,
        // asks once).
        expect(hellos).toBeGreaterThanOrEqual(3);
        // As the same process every time: that is what the coordinator holds an eviction against.
        expect(isWorkerInstance(instances[0])).toBe(true);
        expect(new Set(instances)).toEqual(new Set([instances[0]]));
      } finally {
        await coordinator.close();
      }
    },
    30_000,
  );
});

describe('TLS', () => {
  it('wss:// to a coordinator that does not serve TLS stops at once, saying to use ws://', async () => {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const started = performance.now();
      const result = await runWorker({
        url: `wss://127.0.0.1:${port}`,
        backend: 'cpu',
        threads: 1,
        giveUpAfterMs: 20_000,
        log: () => {},
      });
      expect(result).toMatchObject({
        exitCode: 1,
        reason: `TLS: the coordinator at wss://127.0.0.1:${port} does not serve TLS: connect with ws:// instead, or start it with --tls-cert and --tls-key`,
      });
      // Not after retrying for the whole 20 s.
      expect(performance.now() - started).toBeLessThan(15_000);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  }, 30_000);
});

describe('frame files', () => {
  it('a frame file it cannot read (removed with its dropped connection, say) makes it reconnect, not exit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'callosum-worker-frames-'));
    const seen: string[] = [];
    const coordinator = await scriptedCoordinator((message, socket, connection) => {
      seen.push(`${connection}:${message.type}`);
      if (message.type === 'hello' && connection === 1) {
        const channel = `w${connection}`;
        const probe = writeProbe(dir, channel);
        socket.send(codec.encode(welcome({ workerId: channel, frameFiles: { dir, channel } })));
        expect(probe).toMatch(/^[0-9a-f]{32}$/);
      } else if (message.type === 'frame-files') {
        // The answer carries the probe's bytes; then a reference to a file that is not there.
        expect(message.probe).toMatch(/^[0-9a-f]{32}$/);
        socket.send(Buffer.from([0xc1, 0x46, 0x46, 0x31, 0, 0, 0, 0]));
      } else if (message.type === 'hello') {
        socket.send(codec.encode({ type: 'shutdown', code: 'RUN_ENDED', reason: 'test over' }));
      }
    });
    const lines: string[] = [];
    try {
      const exit = await runWorker({
        url: coordinator.url,
        backend: 'cpu',
        threads: 1,
        reconnectDelayMs: 10,
        log: (line) => lines.push(line),
      });
      expect(exit.exitCode).toBe(0);
      expect(seen).toEqual(['1:hello', '1:frame-files', '2:hello']);
      expect(lines.join('\n')).toMatch(
        new RegExp(`frame file ${join(dir, 'w1.to-worker.0')} cannot be opened \\(ENOENT\\); reconnecting`),
      );
    } finally {
      await coordinator.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('ring failures', () => {
  it.each([
    [PROTOCOL_VERSION, { attempt: 3 }],
    [{ major: 1, minor: 10 }, {}],
  ])(
    "name their reduction's attempt only to a coordinator that reads it (protocol %o)",
    async (protocol, named) => {
      const failures: WorkerMessage[] = [];
      const coordinator = await scriptedCoordinator((message, socket) => {
        if (message.type === 'hello') {
          socket.send(codec.encode(welcome({ protocol, topology: 'ring' })));
        } else if (message.type === 'peer-listening') {
          // A reduction this worker cannot start: it holds no replica yet.
          const reduce = {
            type: 'reduce',
            step: 5,
            attempt: 3,
            rank: 0,
            samples: 4,
            shards: [{ start: 0, end: 4, holder: 0 }],
            peers: [{ workerId: 'w1', address: message.address }],
          };
          socket.send(codec.encode(reduce));
        } else if (message.type === 'failure') {
          failures.push(message);
          socket.send(codec.encode({ type: 'shutdown', code: 'RUN_ENDED', reason: 'test over' }));
        }
      });
      try {
        const exit = await runWorker({ url: coordinator.url, backend: 'cpu', threads: 1, log: () => {} });
        expect(exit.exitCode).toBe(0);
        expect(failures).toEqual([
          {
            type: 'failure',
            code: 'STALE_MESSAGE',
            message: expect.stringMatching(/holds none/),
            step: 5,
            ...named,
          },
        ]);
      } finally {
        await coordinator.close();
      }
    },
    30_000,
  );
});

describe('--advertise-host', () => {
  it('not an address of this machine: the worker stops at once, naming the option (it listens there)', async () => {
    const failures: WorkerMessage[] = [];
    const coordinator = await scriptedCoordinator((message, socket) => {
      if (message.type === 'hello') socket.send(codec.encode(welcome({ topology: 'ring' })));
      else if (message.type === 'failure') failures.push(message);
    });
    try {
      const exit = await runWorker({
        url: coordinator.url,
        backend: 'cpu',
        threads: 1,
        // 192.0.2.1: TEST-NET-1, documentation only, never an address of this machine.
        advertiseHost: '192.0.2.1',
        token: '0123456789abcdef0123',
        giveUpAfterMs: 60_000,
        log: () => {},
      });
      expect(exit).toMatchObject({
        exitCode: 1,
        reason: expect.stringMatching(
          /^--advertise-host 192\.0\.2\.1 is not an address of this machine: the worker listens for its ring peers on the address it advertises/,
        ),
      });
      expect(failures).toEqual([expect.objectContaining({ type: 'failure', code: 'INVALID_ARGUMENT' })]);
    } finally {
      await coordinator.close();
    }
  }, 30_000);
});

describe('a task metric that comes out NaN', () => {
  const task = fileURLToPath(new URL('./test-fixtures/relative-error.mjs', import.meta.url));

  it.each([
    [PROTOCOL_VERSION, 'gradient'],
    [{ major: 1, minor: 11 }, 'failure'],
  ])(
    'is sent as it is to a coordinator that takes it, and fails the shard with an older one (protocol %o)',
    async (protocol, answerType) => {
      const answers: WorkerMessage[] = [];
      const coordinator = await scriptedCoordinator((message, socket) => {
        if (message.type === 'hello') {
          socket.send(
            codec.encode({
              ...welcome({ protocol, task: { name: 'relative-error' }, parameterCount: 3 }),
              model: undefined,
            }),
          );
          socket.send(
            codec.encode({ type: 'weights', version: 0, weights: toWireTensor(new Float32Array(3), [3]) }),
          );
          // Sample 0: label 0 and, with weights 0, prediction 0: relErr is 0 / 0.
          socket.send(
            codec.encode({
              type: 'compute',
              step: 0,
              shard: 0,
              weightsVersion: 0,
              features: toWireTensor(Float32Array.of(0, 0, 0, 1, 2, 3), [2, 3]),
              labels: toWireTensor(Float32Array.of(0, 1), [2, 1]),
              keys: toWireTensor(Int32Array.of(0, 1), [2]),
            }),
          );
        } else if (message.type === 'gradient' || message.type === 'failure') {
          answers.push(message);
          socket.send(codec.encode({ type: 'shutdown', code: 'RUN_ENDED', reason: 'test over' }));
        }
      });
      try {
        const exit = await runWorker({
          url: coordinator.url,
          backend: 'cpu',
          threads: 1,
          task,
          log: () => {},
        });
        expect(exit).toMatchObject({ exitCode: 0 });
        expect(answers.map((answer) => answer.type)).toEqual([answerType]);
        const [answer] = answers;
        if (answer?.type === 'gradient') {
          expect(answer.metricSums).toEqual([Number.NaN]);
          expect(Number.isFinite(answer.lossSum)).toBe(true);
        } else {
          expect(answer).toMatchObject({
            code: 'NON_FINITE',
            message: 'step 1: metric 0 is NaN',
            step: 0,
            shard: 0,
          });
        }
      } finally {
        await coordinator.close();
      }
    },
    30_000,
  );
});
