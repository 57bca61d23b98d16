import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { isCallosumError } from '../errors.js';
import { createMsgpackCodec } from './codec.js';
import { parseWorkerMessage } from './parse.js';
import { toWireTensor } from './tensor.js';
import { encodeTensorFrame } from './tensor-frame.js';
import { PROTOCOL_VERSION } from './version.js';

const codec = createMsgpackCodec();

const validFrames = [
  codec.encode({
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    workerName: 'w',
    backend: 'wasm',
    pid: 3,
    hostname: 'h',
  }),
  codec.encode({
    type: 'gradient',
    step: 2,
    shard: 1,
    gradient: toWireTensor(new Float32Array([0.5, -1, 2, 4]), [4]),
    lossSum: 3.5,
    correct: 2,
    metricSums: [1.5, 0.25],
    count: 4,
    timings: { decodeMs: 1, computeMs: 2 },
  }),
  // A tensor frame with a payload small enough that random edits often hit the prelude and header.
  encodeTensorFrame(
    {
      type: 'gradient',
      step: 2,
      shard: 0,
      gradient: toWireTensor(new Float32Array([1, 2]), [2]),
      lossSum: 1,
      correct: 1,
      metricSums: [],
      count: 2,
      timings: { decodeMs: 1, computeMs: 2 },
    },
    'gradient',
    (header) => new Packr({ useRecords: false }).pack(header),
  ),
  codec.encode({
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    workerName: 'w',
    backend: 'cpu',
    pid: 4,
    hostname: 'h',
    task: {
      task: 'spam',
      layers: [{ class: 'Dense', config: { units: 1 }, inputs: [0] }],
      loss: 'binaryCrossentropy',
    },
  }),
  codec.encode({ type: 'heartbeat', phase: 'computing', step: 7 }),
  codec.encode({ type: 'failure', code: 'COMPUTE_FAILED', message: 'oops', step: 1, shard: 0 }),
];

/** What receiving a frame may do: yield a valid message, or throw MALFORMED_MESSAGE — nothing else. */
function receive(frame: Uint8Array): 'accepted' | 'rejected' {
  try {
    const message = parseWorkerMessage(codec.decode(frame));
    // Whatever passed must survive a second round trip unchanged: validation is not lossy.
    const again = codec.encode(parseWorkerMessage(codec.decode(codec.encode(message))));
    expect(Buffer.from(again).equals(Buffer.from(codec.encode(message)))).toBe(true);
    return 'accepted';
  } catch (error) {
    if (isCallosumError(error, 'MALFORMED_MESSAGE')) return 'rejected';
    throw error;
  }
}

const mutatedFrame = fc
  .tuple(
    fc.constantFrom(...validFrames),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
    fc.option(fc.nat(), { nil: undefined }),
  )
  .map(([frame, edits, cut]) => {
    const copy = Uint8Array.from(frame);
    for (const [position, value] of edits) copy[position % copy.length] = value;
    return cut === undefined ? copy : copy.subarray(0, cut % (copy.length + 1));
  });

describe('receiving hostile frames (property-based)', () => {
  it('starts from frames that are valid as they are', () => {
    for (const frame of validFrames) expect(receive(frame)).toBe('accepted');
  });

  it('random bytes are rejected cleanly, never crash the decoder', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        expect(['accepted', 'rejected']).toContain(receive(bytes));
      }),
      { numRuns: 2000 },
    );
  });

  it('mutated and truncated valid frames are either valid messages or rejected cleanly', () => {
    fc.assert(
      fc.property(mutatedFrame, (frame) => {
        expect(['accepted', 'rejected']).toContain(receive(frame));
      }),
      { numRuns: 3000 },
    );
  });

  it('arbitrary JSON-like values that decode are validated, never trusted', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        expect(['accepted', 'rejected']).toContain(receive(codec.encode(value)));
      }),
      { numRuns: 1000 },
    );
  });
});
