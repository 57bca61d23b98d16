import { describe, expect, it } from 'vitest';
import { createMsgpackCodec } from './codec.js';
import { parseWorkerMessage } from './parse.js';
import { fromWireTensor } from './tensor.js';
import { TENSOR_FRAME_MAGIC, TENSOR_FRAME_MIN_BYTES } from './tensor-frame.js';
import { gradientMessage } from './test-support.js';

const codec = createMsgpackCodec();
const LARGE = TENSOR_FRAME_MIN_BYTES / 4 + 3; // float32 elements, a little over the threshold

function ramp(length: number): Float32Array {
  return Float32Array.from({ length }, (_, i) => (i % 1000) * 0.25 - 100);
}

function decodeGradient(frame: Uint8Array, length = LARGE): Float32Array {
  const message = parseWorkerMessage(codec.decode(frame));
  if (message.type !== 'gradient') throw new Error(`decoded a ${message.type}`);
  return fromWireTensor(message.gradient, 'float32', [length]);
}

/** A copy of `frame` whose first byte sits at an odd address, as a frame may inside a larger buffer. */
function atOddOffset(frame: Uint8Array): Uint8Array {
  const buffer = new Uint8Array(frame.byteLength + 1);
  buffer.set(frame, 1);
  return buffer.subarray(1);
}

function edited(frame: Uint8Array, edit: (copy: Uint8Array, view: DataView) => void): Uint8Array {
  const copy = Uint8Array.from(frame);
  edit(copy, new DataView(copy.buffer));
  return copy;
}

describe('tensor frames (protocol 1.1)', () => {
  it('carry the largest tensor at offset 8 and read it back in place, exactly', () => {
    const values = ramp(LARGE);
    const frame = codec.encode(gradientMessage(values), { tensorFrame: true });
    expect(Array.from(frame.subarray(0, 4))).toEqual(Array.from(TENSOR_FRAME_MAGIC));
    expect(Buffer.from(frame.subarray(8, 8 + values.byteLength)).equals(Buffer.from(values.buffer))).toBe(
      true,
    );
    const trailerLength = new DataView(frame.buffer, frame.byteOffset).getUint32(4, true);
    expect(frame.byteLength).toBe(8 + values.byteLength + trailerLength);
    expect(trailerLength).toBeLessThan(256);
    const read = decodeGradient(frame);
    expect(read).toEqual(values);
    expect(read.buffer).toBe(frame.buffer); // a view of the frame, not a copy
    expect(parseWorkerMessage(codec.decode(frame))).toMatchObject({
      step: 4,
      shard: 1,
      lossSum: 1.25,
      count: 5,
    });
  });

  it('let the sender write the payload in place before it knows the rest of the message', () => {
    const values = ramp(LARGE);
    const writer = codec.startTensorFrame(values.byteLength);
    expect(writer.payload.byteOffset % 8).toBe(0);
    new Float32Array(writer.payload.buffer, writer.payload.byteOffset, LARGE).set(values);
    const frame = writer.finish(
      { ...gradientMessage(new Float32Array(0)), gradient: { dtype: 'float32', shape: [LARGE] } },
      'gradient',
    );
    expect(decodeGradient(frame)).toEqual(values);
    // A trailer longer than the room kept for it still makes a correct frame.
    const long = startAndFinish(values, { timings: { decodeMs: 1, computeMs: 2, note: 'x'.repeat(5000) } });
    expect(() => decodeGradient(long)).toThrow(/note/); // the schema refuses the extra field, after decoding
    expect(new DataView(long.buffer, long.byteOffset).getUint32(4, true)).toBeGreaterThan(5000);
  });

  it('still decode when the frame itself starts at an unaligned address (the tensor is then copied)', () => {
    const values = ramp(LARGE);
    const frame = atOddOffset(codec.encode(gradientMessage(values), { tensorFrame: true }));
    const read = decodeGradient(frame);
    expect(read).toEqual(values);
    expect(read.buffer).not.toBe(frame.buffer);
  });

  it('are used only when asked for, and only for tensors of at least the threshold', () => {
    expect(codec.encode(gradientMessage(ramp(LARGE)))[0]).not.toBe(TENSOR_FRAME_MAGIC[0]);
    const frame = codec.encode(gradientMessage(ramp(16)), { tensorFrame: true });
    expect(frame[0]).not.toBe(TENSOR_FRAME_MAGIC[0]);
    expect(parseWorkerMessage(codec.decode(frame))).toMatchObject({ type: 'gradient', step: 4 });
  });

  it('reject a broken prelude or trailer with a reason', () => {
    const frame = codec.encode(gradientMessage(ramp(LARGE)), { tensorFrame: true });
    expect(() => codec.decode(frame.subarray(0, 6))).toThrow(/tensor frame has no valid prelude/);
    expect(() => codec.decode(edited(frame, (copy) => copy.set([0xff], 2)))).toThrow(/no valid prelude/);
    expect(() => codec.decode(edited(frame, (_, view) => view.setUint32(4, frame.byteLength, true)))).toThrow(
      /does not fit/,
    );
    // The trailer boundary moved by one byte: no longer one MessagePack value.
    expect(() =>
      codec.decode(edited(frame, (_, view) => view.setUint32(4, view.getUint32(4, true) + 1, true))),
    ).toThrow(/MessagePack|not allowed|trailer/);
    // A trailer naming a field that is not an empty tensor.
    const trailer = codec.encode(['lossSum', { type: 'gradient', lossSum: 1 }]);
    const forged = new Uint8Array(8 + 16 + trailer.byteLength);
    forged.set(TENSOR_FRAME_MAGIC);
    new DataView(forged.buffer).setUint32(4, trailer.byteLength, true);
    forged.set(trailer, 8 + 16);
    expect(() => codec.decode(forged)).toThrow(/"lossSum" is not a tensor with empty bytes/);
  });

  it('leave the payload length to validation: a payload shorter than the shape says is refused', () => {
    const values = ramp(LARGE);
    const writer = codec.startTensorFrame(values.byteLength - 4);
    const frame = writer.finish(gradientMessage(values), 'gradient');
    expect(() => parseWorkerMessage(codec.decode(frame))).toThrow(/bytes|length/);
  });
});

function startAndFinish(values: Float32Array, extra: Record<string, unknown>): Uint8Array {
  const writer = codec.startTensorFrame(values.byteLength);
  writer.payload.set(new Uint8Array(values.buffer));
  return writer.finish(gradientMessage(values, extra), 'gradient');
}
