import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { callosumError } from '../optim/test-support.js';
import { createMsgpackCodec } from './codec.js';
import { parseCoordinatorMessage, parsePeerMessage, parseWorkerMessage } from './parse.js';
import { samplesFromWire, samplesToWire } from './samples.js';
import { fromWireTensor, toWireTensor } from './tensor.js';
import { isTensorFrame, TENSOR_FRAME_MIN_BYTES } from './tensor-frame.js';
import { gradientMessage } from './test-support.js';
import { PROTOCOL_VERSION, protocolAtLeast } from './version.js';

const codec = createMsgpackCodec();
const hello = {
  type: 'hello',
  protocol: PROTOCOL_VERSION,
  workerName: 'w',
  backend: 'cpu',
  pid: 1,
  hostname: 'h',
};
const welcome = {
  type: 'welcome',
  protocol: PROTOCOL_VERSION,
  workerId: 'w1',
  runId: 'run',
  model: { name: 'cnn' },
  parameterCount: 693962,
  heartbeatIntervalMs: 1000,
};

describe('codec + validation', () => {
  it('round-trips a gradient message and reads the tensor back exactly', () => {
    const gradient = new Float32Array([0.1, -7.5, 1e-30, 3.4e38]);
    const decoded = parseWorkerMessage(codec.decode(codec.encode(gradientMessage(gradient))));
    expect(decoded.type).toBe('gradient');
    if (decoded.type !== 'gradient') return;
    expect(fromWireTensor(decoded.gradient, 'float32', [4])).toEqual(gradient);
  });

  it('copies tensor bytes that sit at an unaligned offset', () => {
    const bytes = new Uint8Array(13);
    new Uint8Array(new Float32Array([2.5, -1, 8]).buffer).forEach((b, i) => {
      bytes[i + 1] = b;
    });
    const values = fromWireTensor({ dtype: 'float32', shape: [3], bytes: bytes.subarray(1) }, 'float32');
    expect(Array.from(values)).toEqual([2.5, -1, 8]);
  });

  it('rejects frames that are not MessagePack, truncated, or carry trailing bytes', () => {
    const frame = codec.encode(gradientMessage());
    expect(() => codec.decode(frame.subarray(0, frame.length - 5))).toThrow(/not valid MessagePack/);
    expect(() => codec.decode(new Uint8Array([0xc1]))).toThrow(/tensor frame has no valid prelude/);
    const trailing = new Uint8Array(frame.length + 2);
    trailing.set(frame);
    expect(() => codec.decode(trailing)).toThrow(/end of buffer not reached/);
  });

  it('rejects extension types: Date, Set, RegExp, BigInt, typed arrays, Error', () => {
    const rich = new Packr({ moreTypes: true, structuredClone: true, useRecords: false });
    for (const value of [new Date(0), new Set([1]), /a+/g, 10n ** 30n, new Float64Array(2), new Error('x')]) {
      const frame = rich.pack({ type: 'heartbeat', phase: 'idle', step: value });
      expect(() => codec.decode(frame), String(value)).toThrow(/not allowed|MessagePack/);
    }
  });

  it('rejects __proto__ injection and nesting deeper than the limit', () => {
    const injected = codec.encode(
      JSON.parse('{"type":"heartbeat","phase":"idle","__proto__":{"polluted":1}}'),
    );
    expect(() => parseWorkerMessage(codec.decode(injected))).toThrow(
      /MALFORMED|Unrecognized|invalid message/,
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    let deep: unknown = 1;
    for (let i = 0; i < 40; i++) deep = [deep];
    expect(() => codec.decode(codec.encode({ type: 'heartbeat', deep }))).toThrow(/deeper than 16/);
  });

  it('names the bad field: wrong tensor length, NaN, unknown field, wrong type', () => {
    const message = gradientMessage();
    const lying = { ...message, gradient: { ...message.gradient, shape: [4] } };
    expect(() => parseWorkerMessage(codec.decode(codec.encode(lying)))).toThrow(/gradient: byte length/);
    expect(() => codec.decode(codec.encode({ ...message, lossSum: Number.NaN }))).toThrow(/lossSum: NaN/);
    expect(() => parseWorkerMessage({ ...message, extra: 1 })).toThrow(/extra|Unrecognized/);
    expect(() => parseWorkerMessage({ ...message, step: -1 })).toThrow(/step/);
    expect(() => parseWorkerMessage({ type: 'bogus' })).toThrow(/invalid message from worker/);
    expect(() => fromWireTensor(message.gradient, 'int32')).toThrow(/expected dtype int32/);
    expect(() => fromWireTensor(message.gradient, 'float32', [2])).toThrow(/expected shape \[2\]/);
  });

  it("carries a metric's NaN and ±Infinity (a metric is reported whatever it is), and nothing else non-finite", () => {
    const metricSums = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0.5];
    const { gradient: _, ...totals } = gradientMessage(undefined, { metricSums });
    // A gradient large enough to go as a tensor frame, as every worker's does.
    const large = gradientMessage(new Float32Array(TENSOR_FRAME_MIN_BYTES / 4), { metricSums });
    expect(isTensorFrame(codec.encode(large, { tensorFrame: true }))).toBe(true);
    const replies = [
      large,
      { ...totals, type: 'computed' },
      { ...totals, step: undefined, type: 'evaluation', round: 2 },
    ];
    for (const reply of replies) {
      // Both framings: plain MessagePack, and a tensor frame (the gradient's), whose message is its trailer.
      for (const tensorFrame of [false, true]) {
        const decoded = parseWorkerMessage(codec.decode(codec.encode(reply, { tensorFrame })));
        expect(decoded, `${reply.type}, tensor frame ${tensorFrame}`).toMatchObject({ metricSums });
      }
    }
    // The loss, the accuracy count and every other number must still be finite.
    const message = gradientMessage();
    for (const [field, bad] of [
      ['correct', Number.POSITIVE_INFINITY],
      ['count', Number.NaN],
      ['timings', { decodeMs: 1, computeMs: Number.POSITIVE_INFINITY }],
      ['lossSum', Number.NEGATIVE_INFINITY],
    ] as const) {
      expect(() => codec.decode(codec.encode({ ...message, [field]: bad })), field).toThrow(
        /is not a finite number/,
      );
      expect(() => parseWorkerMessage({ ...message, [field]: bad }), field).toThrow(/invalid message/);
    }
    // Only a message's own metricSums: one deeper in it (a task fingerprint's, say) is refused.
    expect(() => codec.decode(codec.encode({ ...message, timings: { metricSums: [Number.NaN] } }))).toThrow(
      /timings\.metricSums\[0\]: NaN is not a finite number/,
    );
    expect(() => codec.decode(codec.encode({ ...message, metricSums: [[Number.NaN]] }))).toThrow(
      /metricSums\[0\]\[0\]: NaN is not a finite number/,
    );
    expect(() => parseWorkerMessage({ ...message, metricSums: ['NaN'] })).toThrow(/metricSums/);
  });

  it('validates coordinator messages too', () => {
    expect(parseCoordinatorMessage(codec.decode(codec.encode(welcome)))).toEqual(welcome);
    expect(() => parseCoordinatorMessage({ ...welcome, heartbeatIntervalMs: 0 })).toThrow(
      /heartbeatIntervalMs/,
    );
  });

  it('carries the micro-batch size once, in the welcome (1.3), and no longer in compute requests', () => {
    const microBatched = { ...welcome, microBatchSize: 16 };
    expect(PROTOCOL_VERSION).toEqual({ major: 1, minor: 12 });
    expect(parseCoordinatorMessage(codec.decode(codec.encode(microBatched)))).toEqual(microBatched);
    for (const bad of [0, 2.5, -1]) {
      expect(() => parseCoordinatorMessage({ ...welcome, microBatchSize: bad })).toThrow(/microBatchSize/);
    }
    const compute = {
      type: 'compute',
      step: 0,
      shard: 0,
      weightsVersion: 0,
      features: toWireTensor(new Uint8Array(4), [1, 2, 2]),
      labels: toWireTensor(new Uint8Array(1), [1]),
      keys: toWireTensor(new Int32Array(1), [1]),
    };
    expect(parseCoordinatorMessage(compute)).toEqual(compute);
    expect(() => parseCoordinatorMessage({ ...compute, microBatchSize: 16 })).toThrow(
      /microBatchSize|Unrecognized/,
    );
  });

  it('carries the ring topology (1.5): reduce plans, peer addresses, scatter rows and mean chunks', () => {
    const reduce = {
      type: 'reduce',
      step: 3,
      attempt: 1,
      rank: 1,
      samples: 10,
      shards: [
        { start: 0, end: 6, holder: 0 },
        { start: 6, end: 10, holder: 1 },
      ],
      peers: [
        { workerId: 'w1', address: '10.0.0.7:7071' },
        { workerId: 'w2', address: '[fd00::7]:7071' },
      ],
      digest: true,
    };
    expect(parseCoordinatorMessage(codec.decode(codec.encode(reduce)))).toEqual(reduce);
    expect(() => parseCoordinatorMessage({ ...reduce, rank: 2 })).toThrow(/rank outside the peers/);
    expect(() => parseCoordinatorMessage({ ...reduce, shards: [{ start: 0, end: 10, holder: 5 }] })).toThrow(
      /held by a rank outside/,
    );
    for (const address of ['10.0.0.7', 'host:port', 'a b:70', 'fd00::7:7071']) {
      expect(() => parseCoordinatorMessage({ ...reduce, peers: [{ workerId: 'w1', address }] })).toThrow(
        /expected host:port/,
      );
    }
    expect(parseWorkerMessage({ type: 'peer-listening', address: 'node-3.cluster.local:7071' })).toBeTruthy();
    const scatter = {
      type: 'scatter',
      step: 3,
      attempt: 1,
      from: 0,
      shards: [0],
      parts: toWireTensor(new Float32Array(6), [1, 6]),
    };
    const received = parsePeerMessage(codec.decode(codec.encode(scatter)));
    expect(received).toMatchObject({ type: 'scatter', step: 3, attempt: 1, from: 0, shards: [0] });
    expect(received.type === 'scatter' && fromWireTensor(received.parts, 'float32', [1, 6])).toEqual(
      new Float32Array(6),
    );
    expect(() => parsePeerMessage({ ...scatter, type: 'compute' })).toThrow(/invalid message from peer/);
    expect(() =>
      parseWorkerMessage({
        type: 'reduced',
        step: 3,
        attempt: 1,
        peerBytes: 10,
        reduceMs: 1,
        replicaDigest: 'not-a-digest',
      }),
    ).toThrow(/replicaDigest/);
  });

  it('carries synchronised BatchNormalization (1.7): passes, their results, and the statistics in compute', () => {
    const statistics = toWireTensor(Float32Array.of(0.5, -1, 2, 3), [4]);
    const shard = {
      shard: 1,
      weightsVersion: 7,
      features: toWireTensor(Float32Array.of(1, 2, 3, 4), [2, 2]),
      labels: toWireTensor(Float32Array.of(0, 1), [2]),
      keys: toWireTensor(Int32Array.of(9, 10), [2]),
    };
    const request = {
      type: 'batch-norm',
      step: 7,
      pass: 1,
      kind: 'adjoint',
      layer: 0,
      ...shard,
      statistics,
      adjoints: statistics,
      samples: 6,
    };
    const decoded = parseCoordinatorMessage(codec.decode(codec.encode(request)));
    expect(decoded).toMatchObject({
      type: 'batch-norm',
      step: 7,
      pass: 1,
      kind: 'adjoint',
      layer: 0,
      samples: 6,
    });
    expect(() => parseCoordinatorMessage({ ...request, kind: 'variance' })).toThrow(/kind/);
    expect(() => parseCoordinatorMessage({ ...request, adjoints: undefined })).toThrow(/adjoints/);
    const result = {
      type: 'batch-norm-result',
      step: 7,
      pass: 0,
      shard: 1,
      count: 2,
      elements: 2,
      values: statistics,
      timings: { decodeMs: 0.1, computeMs: 1 },
    };
    expect(parseWorkerMessage(codec.decode(codec.encode(result)))).toMatchObject({ pass: 0, elements: 2 });
    expect(() => parseWorkerMessage({ ...result, pass: -1 })).toThrow(/pass/);
    const compute = {
      type: 'compute',
      step: 7,
      ...shard,
      batchNorm: { statistics, adjoints: statistics, samples: 6 },
    };
    expect(parseCoordinatorMessage(codec.decode(codec.encode(compute)))).toMatchObject({
      batchNorm: { samples: 6 },
    });
    expect(() => parseCoordinatorMessage({ ...compute, batchNorm: { statistics, samples: 6 } })).toThrow(
      /adjoints/,
    );
    expect(
      parseWorkerMessage({
        type: 'failure',
        code: 'COMPUTE_FAILED',
        message: 'x',
        step: 7,
        pass: 2,
        shard: 1,
      }),
    ).toMatchObject({
      pass: 2,
    });
  });

  it('carries any task (1.4): typed features and labels, metric sums, the task in hello and welcome', () => {
    const compute = {
      type: 'compute',
      step: 3,
      shard: 1,
      weightsVersion: 3,
      features: toWireTensor(new Float32Array([0.5, -1, 2, 4, 8, 16]), [2, 3]),
      labels: toWireTensor(new Float32Array([1, 0]), [2]),
      keys: toWireTensor(new Int32Array([7, -9]), [2]),
    };
    expect(parseCoordinatorMessage(compute)).toEqual(compute);
    const decoded = parseCoordinatorMessage(codec.decode(codec.encode(compute)));
    if (decoded.type !== 'compute') throw new Error(`decoded a ${decoded.type}`);
    expect(decoded.features.shape).toEqual([2, 3]);
    expect(fromWireTensor(decoded.features, 'float32')).toEqual(new Float32Array([0.5, -1, 2, 4, 8, 16]));
    expect(fromWireTensor(decoded.keys, 'int32')).toEqual(new Int32Array([7, -9]));
    const { keys: _, ...evaluate } = { ...compute, type: 'evaluate', round: 0 };
    const { step: __, ...evaluateRequest } = evaluate;
    expect(parseCoordinatorMessage(evaluateRequest)).toEqual(evaluateRequest);
    // The old uint8 `images` field is gone.
    const { features, ...withoutFeatures } = compute;
    expect(() => parseCoordinatorMessage({ ...withoutFeatures, images: features })).toThrow(
      /features|images/,
    );

    const gradient = parseWorkerMessage(codec.decode(codec.encode(gradientMessage())));
    expect(gradient).toMatchObject({ metricSums: [0.75] });
    const { metricSums: ___, ...withoutMetrics } = gradientMessage();
    expect(() => parseWorkerMessage(withoutMetrics)).toThrow(/metricSums/);
    expect(() => parseWorkerMessage(gradientMessage(undefined, { metricSums: ['0.5'] }))).toThrow(
      /metricSums/,
    );
    expect(() =>
      parseWorkerMessage(gradientMessage(undefined, { metricSums: new Array(257).fill(0) })),
    ).toThrow(/metricSums/);

    const taskHello = {
      ...hello,
      task: { task: 'spam', layers: [{ class: 'Dense', config: { units: 1 } }], loss: 'binaryCrossentropy' },
    };
    expect(parseWorkerMessage(codec.decode(codec.encode(taskHello)))).toEqual(taskHello);
    const { model: ____, ...taskWelcome } = { ...welcome, task: { name: 'spam' } };
    expect(parseCoordinatorMessage(codec.decode(codec.encode(taskWelcome)))).toEqual(taskWelcome);
    for (const both of [
      { ...welcome, task: { name: 'spam' } },
      { ...taskWelcome, task: undefined },
    ]) {
      expect(() => parseCoordinatorMessage(both)).toThrow(/either a built-in model or a task/);
    }
  });

  it('announces TLS between ring peers in hello (1.8) only as true', () => {
    const withTls = { ...hello, peerTls: true };
    expect(parseWorkerMessage(codec.decode(codec.encode(withTls)))).toEqual(withTls);
    expect(parseWorkerMessage(hello)).toEqual(hello);
    for (const bad of [false, 'yes', 1]) {
      expect(() => parseWorkerMessage({ ...hello, peerTls: bad })).toThrow(/peerTls/);
    }
  });

  it("refuses a worker's name, backend or host name that holds a control character, line separator or bidi override", () => {
    // Names of any script, with spaces and punctuation, are fine; 256 characters at most.
    for (const workerName of ['pod-7 (gpu 0)', 'Überstunden:4', '作業者', 'a'.repeat(256)]) {
      expect(parseWorkerMessage({ ...hello, workerName })).toMatchObject({ workerName });
    }
    expect(() => parseWorkerMessage({ ...hello, workerName: 'a'.repeat(257) })).toThrow(
      /workerName: Too big/,
    );
    const cases: [string, string][] = [
      ['evil\ncoordinator: worker w9 (x) joined', '\\n'],
      ['a\rb', '\\r'],
      ['a\tb', '\\t'],
      ['a\u0000b', '\\u0000'],
      ['a\u001b[31mred', '\\u001b'],
      ['a\u007fb', '\\u007f'],
      ['a\u0085b', '\\u0085'],
      ['a\u2028b', '\\u2028'],
      ['a\u2029b', '\\u2029'],
      ['a\u202eb', '\\u202e'],
      ['a\u2066b', '\\u2066'],
    ];
    for (const [bad, found] of cases) {
      for (const field of ['workerName', 'backend', 'hostname']) {
        expect(() => parseWorkerMessage({ ...hello, [field]: bad })).toThrow(
          `${field}: must not contain control characters, line separators or bidi overrides (found ${found})`,
        );
      }
    }
  });

  it('escapes what the sender chose (an unknown key, a path) in the refusal of a message, which is logged', () => {
    const forged = { ...hello, 'x\ncoordinator: worker w9 (x) joined\u202e': 1 };
    let refusal: Error | undefined;
    try {
      parseWorkerMessage(forged);
    } catch (error) {
      refusal = error as Error;
    }
    expect(refusal).toEqual(callosumError('MALFORMED_MESSAGE', 'Unrecognized key'));
    expect(refusal?.message).not.toMatch(/[\n\u202e]/);
    expect(refusal?.message).toContain('x\\ncoordinator: worker w9 (x) joined\\u202e');
  });

  it("sends a shard's samples as typed tensors of [count, ...sample shape], in the set's own dtypes", () => {
    const set = {
      count: 3,
      features: { values: Uint8Array.from({ length: 12 }, (_, i) => i), sampleShape: [2, 2] },
      labels: { values: Float32Array.of(0.5, 1.5, 2.5, 3.5, 4.5, 5.5), sampleShape: [2] },
    };
    const raw = {
      count: 2,
      features: set.features.values.subarray(4, 12),
      labels: set.labels.values.subarray(2, 6),
    };
    const wire = samplesToWire(raw, set);
    expect(wire.features).toMatchObject({ dtype: 'uint8', shape: [2, 2, 2] });
    expect(wire.labels).toMatchObject({ dtype: 'float32', shape: [2, 2] });
    const back = samplesFromWire(wire);
    expect(back.count).toBe(2);
    expect(back.features).toEqual(raw.features);
    expect(back.labels).toEqual(raw.labels);
    expect(() => samplesFromWire({ ...wire, labels: toWireTensor(new Float32Array(6), [3, 2]) })).toThrow(
      callosumError(
        'MALFORMED_MESSAGE',
        'features of shape [2, 2, 2] and labels of shape [3, 2]',
        'sample count',
      ),
    );
  });

  it('compares protocol versions by major, then minor', () => {
    expect(protocolAtLeast({ major: 1, minor: 3 }, { major: 1, minor: 3 })).toBe(true);
    expect(protocolAtLeast({ major: 1, minor: 2 }, { major: 1, minor: 3 })).toBe(false);
    expect(protocolAtLeast({ major: 1, minor: 0 }, { major: 1, minor: 0 })).toBe(true);
    expect(protocolAtLeast({ major: 2, minor: 0 }, { major: 1, minor: 3 })).toBe(true);
    expect(protocolAtLeast({ major: 0, minor: 9 }, { major: 1, minor: 0 })).toBe(false);
  });
});
