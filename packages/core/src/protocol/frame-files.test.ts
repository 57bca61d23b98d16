import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMsgpackCodec } from './codec.js';
import {
  FRAME_FILE_MIN_BYTES,
  FrameFileLink,
  isFrameFileReference,
  probeMatches,
  writeProbe,
} from './frame-files.js';
import { parseWorkerMessage } from './parse.js';
import { fromWireTensor } from './tensor.js';
import { gradientMessage } from './test-support.js';

const codec = createMsgpackCodec();
const MAX_FRAME_BYTES = 1 << 20;
const LARGE = FRAME_FILE_MIN_BYTES / 4 + 5; // float32 elements, a little over the threshold

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'callosum-frame-files-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Both ends of one channel, as a coordinator and its worker hold them. */
function channel(name = 'w1') {
  return {
    coordinator: new FrameFileLink({ dir, channel: name }, 'to-worker', MAX_FRAME_BYTES),
    worker: new FrameFileLink({ dir, channel: name }, 'to-coordinator', MAX_FRAME_BYTES),
  };
}

function gradientFrame(seed: number, length = LARGE): Buffer {
  const values = Float32Array.from({ length }, (_, i) => Math.sin(i + seed) * 1e3);
  return Buffer.from(codec.encode(gradientMessage(values), { tensorFrame: true }));
}

function reference(sequence: number): Buffer {
  const frame = Buffer.from([0xc1, 0x46, 0x46, 0x31, 0, 0, 0, 0]);
  frame.writeUInt32LE(sequence, 4);
  return frame;
}

describe('frame files (protocol 1.9)', () => {
  it('carry a large frame as a file both ways, byte for byte, and leave no file behind', () => {
    const { coordinator, worker } = channel();
    for (let round = 0; round < 3; round++) {
      const down = gradientFrame(round);
      const sentDown = Buffer.from(coordinator.outgoing(down));
      expect(sentDown.byteLength).toBe(8);
      expect(isFrameFileReference(sentDown)).toBe(true);
      expect(readdirSync(dir)).toEqual([`w1.to-worker.${round}`]);
      expect(worker.incoming(sentDown).equals(down)).toBe(true);

      const up = gradientFrame(round + 10);
      const received = coordinator.incoming(Buffer.from(worker.outgoing(up)));
      expect(received.equals(up)).toBe(true);
      expect(readdirSync(dir)).toEqual([]);
      // What arrives decodes as the frame would have, its tensor 8-byte aligned for a Float32Array view.
      const message = parseWorkerMessage(codec.decode(received));
      if (message.type !== 'gradient') throw new Error(message.type);
      expect(fromWireTensor(message.gradient, 'float32', [LARGE])[7]).toBe(
        Math.fround(Math.sin(7 + round + 10) * 1e3),
      );
    }
  });

  it('leave small frames on the socket, and take ordinary frames at any time', () => {
    const { coordinator, worker } = channel();
    const small = Buffer.from(codec.encode({ type: 'heartbeat', phase: 'idle' }));
    expect(coordinator.outgoing(small)).toBe(small);
    expect(worker.incoming(small)).toBe(small);
    const large = gradientFrame(1);
    expect(worker.incoming(large)).toBe(large);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuse a reference that skips or repeats a file, naming the file expected', () => {
    const { coordinator, worker } = channel();
    const first = Buffer.from(coordinator.outgoing(gradientFrame(1)));
    coordinator.outgoing(gradientFrame(2));
    expect(() => worker.incoming(reference(1))).toThrow(
      /frame file reference to file 1 where file 0 comes next/,
    );
    worker.incoming(first);
    expect(() => worker.incoming(first)).toThrow(/reference to file 0 where file 1 comes next/);
  });

  it('refuse a missing file, a link, an oversized file and a malformed reference, each by name', () => {
    const { worker } = channel();
    expect(() => worker.incoming(reference(0))).toThrow(
      new RegExp(`frame file ${join(dir, 'w1.to-worker.0')} cannot be opened \\(ENOENT\\)`),
    );
    // A symbolic link could point anywhere: never followed.
    writeFileSync(join(dir, 'elsewhere'), gradientFrame(1));
    symlinkSync(join(dir, 'elsewhere'), join(dir, 'w1.to-worker.0'));
    expect(() => worker.incoming(reference(0))).toThrow(/w1\.to-worker\.0 cannot be opened \(ELOOP\)/);
    const small = new FrameFileLink({ dir, channel: 'w2' }, 'to-coordinator', 1000);
    writeFileSync(join(dir, 'w2.to-worker.0'), Buffer.alloc(1001));
    expect(() => small.incoming(reference(0))).toThrow(/holds 1001 bytes, more than a frame may \(1000\)/);
    expect(() => worker.incoming(Buffer.concat([reference(0), Buffer.from([0])]))).toThrow(
      /reference of 9 bytes \(expected 8\)/,
    );
  });

  it('send the frame on the socket when its file cannot be written, and from then on', () => {
    const { coordinator } = channel();
    rmSync(dir, { recursive: true });
    const frame = gradientFrame(1);
    expect(coordinator.outgoing(frame)).toBe(frame);
    mkdirSync(dir); // a directory again: the link does not go back to files
    expect(coordinator.outgoing(frame)).toBe(frame);
  });

  it('are refused by a codec on a connection that did not agree to them', () => {
    expect(() => codec.decode(reference(0))).toThrow(
      /frame file reference on a connection that did not agree to frame files/,
    );
  });

  it('offer a probe only a process seeing the same directory reads back', () => {
    const offer = writeProbe(dir, 'w3');
    expect(offer.probe).toMatch(/^[0-9a-f]{32}$/);
    expect(probeMatches(offer)).toBe(true);
    expect(probeMatches({ ...offer, probe: offer.probe.replace(/^./, (c) => (c === '0' ? '1' : '0')) })).toBe(
      false,
    );
    expect(probeMatches({ ...offer, dir: join(dir, 'elsewhere') })).toBe(false);
    expect(() => writeProbe(dir, 'w3')).toThrow(/EEXIST/);
  });
});
