import { describe, expect, it } from 'vitest';
import { type CallosumError, isCallosumError } from '../errors.js';
import { createMsgpackCodec } from './codec.js';
import { parseCoordinatorMessage, parseWorkerMessage } from './parse.js';
import { gradientReply } from './replies.js';
import { samplesFromWire } from './samples.js';
import { toWireTensor } from './tensor.js';
import { PROTOCOL_VERSION, protocolAtLeast } from './version.js';
import { floatsFromWire, floatsToWire, protocolForWireDtype, wireOverflowHint } from './wire-dtype.js';

const codec = createMsgpackCodec();

/** The CallosumError `run` throws. */
function callosumError(run: () => unknown): CallosumError {
  try {
    run();
  } catch (error) {
    if (isCallosumError(error)) return error;
    throw error;
  }
  throw new Error('nothing was thrown');
}

describe('wire dtypes (protocol 1.6)', () => {
  it('float32 is the vector itself, as before 1.6: same bytes, no copy', () => {
    const values = new Float32Array([0.1, -7.5, 1e-30, 3.4e38]);
    const tensor = floatsToWire(values, 'float32', 'weights');
    expect(tensor).toEqual(toWireTensor(values, [4]));
    expect(tensor.bytes.buffer).toBe(values.buffer);
    expect(floatsFromWire(tensor, 'float32', [4])).toEqual(values);
  });

  it('16-bit dtypes travel in half the bytes and come back as the rounded float32 values', () => {
    const values = new Float32Array([1, 1 / 3, -65504, 2 ** -24, 0.1]);
    const float16 = floatsToWire(values, 'float16', 'gradient');
    expect(float16).toMatchObject({ dtype: 'float16', shape: [5] });
    expect(float16.bytes.byteLength).toBe(10);
    expect([...floatsFromWire(float16, 'float16', [5])]).toEqual([
      1,
      0.333251953125,
      -65504,
      2 ** -24,
      0.0999755859375,
    ]);
    const bfloat16 = floatsToWire(values, 'bfloat16', 'gradient');
    // bfloat16 keeps 8 significant bits: 1/3 → 0x3eab0000 = 0.333984375, 0.1 → 0x3dcd0000 = 0.10009765625.
    expect([...floatsFromWire(bfloat16, 'bfloat16', [5])]).toEqual([
      1,
      0.333984375,
      -65536,
      2 ** -24,
      0.10009765625,
    ]);
    // Rounded straight into a frame's payload: the tensor's bytes are that memory.
    const payload = new Uint8Array(16).subarray(4, 14);
    const inFrame = floatsToWire(values, 'float16', 'gradient', payload);
    expect(inFrame.bytes.buffer).toBe(payload.buffer);
    expect(inFrame.bytes.byteOffset).toBe(4);
    expect(Buffer.from(payload).equals(Buffer.from(float16.bytes))).toBe(true);
  });

  it('refuses to round a finite value to Infinity, naming the element, the dtype and what to use instead', () => {
    const values = new Float32Array([1, 7e4, 2]);
    const error = callosumError(() => floatsToWire(values, 'float16', 'step 3: gradient'));
    expect(error.code).toBe('NON_FINITE');
    expect(error.message).toBe(
      "step 3: gradient[1] = 70000 overflows float16, the run's wire dtype (largest finite value 65504): " +
        "use wire dtype bfloat16 (--wire-dtype bfloat16), which keeps float32's range, or float32",
    );
    // Infinity and NaN that were there before rounding pass as they are: the receiver rejects them.
    const nonFinite = floatsToWire(new Float32Array([Number.NaN, Number.NEGATIVE_INFINITY]), 'float16', 'g');
    expect([...floatsFromWire(nonFinite, 'float16')]).toEqual([Number.NaN, Number.NEGATIVE_INFINITY]);
    const infinite = new Float32Array([1, Number.NEGATIVE_INFINITY]);
    expect(wireOverflowHint('float16', infinite)).toMatch(
      /float16, whose largest value is 65504: an Infinity/,
    );
    expect(wireOverflowHint('float16', new Float32Array([Number.NaN]))).toBe('');
    expect(wireOverflowHint('bfloat16', infinite)).toBe('');
  });

  it('validates 16-bit tensors like the others: the dtype the run expects, 2 bytes per element', () => {
    const reply = gradientReply(
      { type: 'compute', step: 7, shard: 1, weightsVersion: 7 } as Parameters<typeof gradientReply>[0],
      {
        gradient: Float32Array.from({ length: 40_000 }, (_, i) => i / 1000),
        lossSum: 1,
        correct: 0,
        metricSums: [],
        count: 2,
      },
      { decodeMs: 0, computeMs: 1 },
      'float16',
    );
    // Large enough for a tensor frame (at least 64 KiB), and read back from one.
    const decoded = parseWorkerMessage(codec.decode(codec.encode(reply, { tensorFrame: true })));
    if (decoded.type !== 'gradient') throw new Error(decoded.type);
    expect(decoded.gradient.bytes.byteLength).toBe(80_000);
    expect(floatsFromWire(decoded.gradient, 'float16', [40_000])[1234]).toBe(1.234_375);
    expect(callosumError(() => floatsFromWire(decoded.gradient, 'float32')).message).toMatch(
      /expected dtype float32/,
    );
    expect(callosumError(() => floatsFromWire(decoded.gradient, 'bfloat16')).code).toBe('MALFORMED_MESSAGE');
    const short = { ...reply, gradient: { ...reply.gradient, bytes: reply.gradient.bytes.subarray(2) } };
    expect(() => parseWorkerMessage(short)).toThrow(/gradient: byte length/);
    expect(
      callosumError(() =>
        gradientReply(
          { type: 'compute', step: 7, shard: 1, weightsVersion: 7 } as Parameters<typeof gradientReply>[0],
          { gradient: new Float32Array([1e5]), lossSum: 1, correct: 0, metricSums: [], count: 2 },
          { decodeMs: 0, computeMs: 1 },
          'float16',
        ),
      ).message,
    ).toMatch(/^step 8: gradient\[0\] = 100000 overflows float16/); // step 7 is the eighth
  });

  it('names the dtype in the welcome, needs 1.6 for it, and carries no samples in 16 bits', () => {
    expect(protocolAtLeast(PROTOCOL_VERSION, { major: 1, minor: 6 })).toBe(true);
    const welcome = {
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      workerId: 'w1',
      runId: 'run',
      model: { name: 'cnn' },
      parameterCount: 10,
      heartbeatIntervalMs: 1000,
      wireDtype: 'bfloat16',
    };
    expect(parseCoordinatorMessage(codec.decode(codec.encode(welcome)))).toEqual(welcome);
    expect(() => parseCoordinatorMessage({ ...welcome, wireDtype: 'float8' })).toThrow(/wireDtype/);
    expect(protocolForWireDtype('float32')).toBeUndefined();
    expect(protocolForWireDtype('float16')).toEqual({
      version: { major: 1, minor: 6 },
      feature: 'float16 weights and gradients',
    });
    const halves = floatsToWire(new Float32Array(4), 'float16', 'features');
    const error = callosumError(() =>
      samplesFromWire({
        features: { ...halves, shape: [2, 2] },
        labels: toWireTensor(new Uint8Array(2), [2]),
      }),
    );
    expect(error.code).toBe('MALFORMED_MESSAGE');
    expect(error.message).toMatch(/features of dtype float16: samples are float32, int32 or uint8/);
  });
});
