import { describe, expect, it } from 'vitest';
import { createMsgpackCodec } from './codec.js';
import { parseWorkerMessage } from './parse.js';
import { fromWireTensor, toWireTensor } from './tensor.js';
import { TENSOR_FRAME_MAGIC, TENSOR_FRAME_MIN_BYTES } from './tensor-frame.js';

const codec = createMsgpackCodec();
const LARGE = TENSOR_FRAME_MIN_BYTES / 4 + 3; // float32 elements, a little over the threshold

function gradientMessage(values: Float32Array, step = 4) {
  return {
    type: 'gradient',
    step,
    shard: 1,
    gradient: toWireTensor(values, [values.length]),
    lossSum: 1.25,
    correct: 3,
    count: 5,
    timings: { decodeMs: 1, computeMs: 20 },
  };
}

function ramp(length: number): Float32Array {
  return Float32Array.from({ length }, (_, i) => (i % 1000) * 0.25 - 100);
}

/** A copy of `frame` whose first byte sits at an odd address, as a frame may inside a larger buffer. */
function atOddOffset(frame: Uint8Array): Uint8Array {
  const buffer = new Uint8Array(frame.byteLength + 1);
  buffer.set(frame, 1);
  return buffer.subarray(1);
}

describe('tensor frames (protocol 1.1)', () => {
  it('carry the largest tensor after the header and read it back in place, exactly', () => {
    const values = ramp(LARGE);
    const frame = codec.encode(gradientMessage(values), { tensorFrame: true });
    expect(Array.from(frame.subarray(0, 4))).toEqual(Array.from(TENSOR_FRAME_MAGIC));
    // Payload last, 8-aligned within the frame; the header is small.
    const payloadStart = frame.byteLength - values.byteLength;
    expect(payloadStart % 8).toBe(0);
    expect(payloadStart).toBeLessThan(256);
    const message = parseWorkerMessage(codec.decode(frame));
    if (message.type !== 'gradient') throw new Error(`decoded a ${message.type}`);
    const read = fromWireTensor(message.gradient, 'float32', [LARGE]);
    expect(read).toEqual(values);
    // A view of the frame, not a copy.
    expect(read.buffer).toBe(frame.buffer);
    expect(message).toMatchObject({ step: 4, shard: 1, lossSum: 1.25, correct: 3, count: 5 });
  });

  it('still decode when the frame itself starts at an unaligned address (the tensor is then copied)', () => {
    const values = ramp(LARGE);
    const frame = atOddOffset(codec.encode(gradientMessage(values), { tensorFrame: true }));
    const message = parseWorkerMessage(codec.decode(frame));
    if (message.type !== 'gradient') throw new Error(`decoded a ${message.type}`);
    const read = fromWireTensor(message.gradient, 'float32', [LARGE]);
    expect(read).toEqual(values);
    expect(read.buffer).not.toBe(frame.buffer);
  });

  it('are used only when asked for, and only for tensors of at least the threshold', () => {
    const large = gradientMessage(ramp(LARGE));
    expect(codec.encode(large)[0]).not.toBe(TENSOR_FRAME_MAGIC[0]);
    const small = gradientMessage(ramp(16));
    const frame = codec.encode(small, { tensorFrame: true });
    expect(frame[0]).not.toBe(TENSOR_FRAME_MAGIC[0]);
    expect(parseWorkerMessage(codec.decode(frame))).toMatchObject({ type: 'gradient', step: 4 });
  });

  it('reject a broken prelude, header or padding with a reason', () => {
    const frame = codec.encode(gradientMessage(ramp(LARGE)), { tensorFrame: true });
    const headerLength = new DataView(frame.buffer, frame.byteOffset).getUint32(4, true);
    const edited = (edit: (copy: Uint8Array) => void) => {
      const copy = Uint8Array.from(frame);
      edit(copy);
      return copy;
    };
    expect(() => codec.decode(frame.subarray(0, 6))).toThrow(/tensor frame has no valid prelude/);
    expect(() => codec.decode(edited((copy) => copy.set([0xff], 2)))).toThrow(/no valid prelude/);
    expect(() =>
      codec.decode(edited((copy) => new DataView(copy.buffer).setUint32(4, frame.byteLength, true))),
    ).toThrow(/does not fit/);
    const paddingAt = 8 + headerLength;
    expect(paddingAt % 8, 'this header needs padding').not.toBe(0);
    expect(() => codec.decode(edited((copy) => copy.set([1], paddingAt)))).toThrow(/padding/);
    // A header naming a field that is not an empty tensor.
    const header = createMsgpackCodec().encode(['lossSum', { type: 'gradient', lossSum: 1 }]);
    const forged = new Uint8Array(8 + Math.ceil(header.byteLength / 8) * 8 + 16);
    forged.set(TENSOR_FRAME_MAGIC);
    new DataView(forged.buffer).setUint32(4, header.byteLength, true);
    forged.set(header, 8);
    expect(() => codec.decode(forged)).toThrow(/"lossSum" is not a tensor with empty bytes/);
  });

  it('leave the payload length to validation: a short payload is refused', () => {
    const frame = codec.encode(gradientMessage(ramp(LARGE)), { tensorFrame: true });
    expect(() => parseWorkerMessage(codec.decode(frame.subarray(0, frame.byteLength - 4)))).toThrow(
      /bytes|length/,
    );
  });
});
