import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createMsgpackCodec } from './codec.js';
import {
  FRAME_FILE_MIN_BYTES,
  FrameFileLink,
  isFrameFileReference,
  readProbe,
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
    coordinator: new FrameFileLink({ dir, channel: name }, 'to-worker', { maxFrameBytes: MAX_FRAME_BYTES }),
    worker: new FrameFileLink({ dir, channel: name }, 'to-coordinator', { maxFrameBytes: MAX_FRAME_BYTES }),
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
  it('carry a large frame as a file both ways, byte for byte; the files to the coordinator are reused', () => {
    const { coordinator, worker } = channel();
    let spareInode: number | undefined;
    for (let round = 0; round < 3; round++) {
      const down = gradientFrame(round);
      const sentDown = Buffer.from(coordinator.outgoing(down));
      expect(sentDown.byteLength).toBe(8);
      expect(isFrameFileReference(sentDown)).toBe(true);
      expect(readdirSync(dir).filter((name) => !name.endsWith('.spare'))).toEqual([`w1.to-worker.${round}`]);
      expect(worker.incoming(sentDown).equals(down)).toBe(true);

      // Each gradient shorter than the last: a reused file must not keep the previous one's tail.
      const length = LARGE + 1000 - 100 * round;
      const up = gradientFrame(round + 10, length);
      const reference = Buffer.from(worker.outgoing(up));
      const written = statSync(join(dir, `w1.to-coordinator.${round}`)).ino;
      if (spareInode !== undefined) expect(written).toBe(spareInode);
      const received = coordinator.incoming(reference);
      expect(received.equals(up)).toBe(true);
      // The coordinator hands the file back as the worker's spare; nothing else is left.
      expect(readdirSync(dir)).toEqual(['w1.to-coordinator.spare']);
      spareInode = statSync(join(dir, 'w1.to-coordinator.spare')).ino;
      expect(spareInode).toBe(written);
      // What arrives decodes as the frame would have, its tensor 8-byte aligned for a Float32Array view.
      const message = parseWorkerMessage(codec.decode(received));
      if (message.type !== 'gradient') throw new Error(message.type);
      expect(fromWireTensor(message.gradient, 'float32', [length])[7]).toBe(
        Math.fround(Math.sin(7 + round + 10) * 1e3),
      );
    }
  });

  it('are read into the memory of frames their reader recycled, and never two frames into the same memory', () => {
    const { coordinator, worker } = channel();
    const receive = (seed: number, length = LARGE) => {
      const frame = gradientFrame(seed, length);
      const received = coordinator.incoming(Buffer.from(worker.outgoing(frame)));
      expect(received.equals(frame)).toBe(true);
      return received;
    };
    const first = receive(1);
    const second = receive(2);
    expect(second.buffer).not.toBe(first.buffer);

    // Recycled: the next frame, a few bytes longer (a longer trailer), is read into that memory.
    coordinator.recycle(first.buffer as ArrayBuffer);
    const third = receive(3, LARGE + 2);
    expect(third.buffer).toBe(first.buffer);
    expect(third.byteOffset).toBe(0);

    // Recycled twice (by mistake, or through two views of it) before it is used again: it still goes to
    // one frame only.
    coordinator.recycle(second.buffer as ArrayBuffer);
    coordinator.recycle(second.buffer as ArrayBuffer);
    const fourth = receive(4);
    const fifth = receive(5);
    expect(fourth.buffer).toBe(second.buffer);
    expect([third.buffer, fourth.buffer]).not.toContain(fifth.buffer);
    // Memory that did not come from a file (a socket's frame, which may hold more) is never taken.
    coordinator.recycle(new ArrayBuffer(4 * MAX_FRAME_BYTES));
    const sixth = receive(6);
    expect(sixth.buffer.byteLength).toBeLessThan(4 * MAX_FRAME_BYTES);
    // Memory much larger than a frame is kept for a frame of its size (a request that is never
    // recycled would use up the memory of the weights).
    const large = receive(7, 8 * LARGE);
    coordinator.recycle(large.buffer as ArrayBuffer);
    expect(receive(8).buffer).not.toBe(large.buffer);
    expect(receive(9, 8 * LARGE).buffer).toBe(large.buffer);
    // The frames read before are intact.
    expect(third.equals(gradientFrame(3, LARGE + 2))).toBe(true);
    expect(fourth.equals(gradientFrame(4))).toBe(true);
    expect(fifth.equals(gradientFrame(5))).toBe(true);
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
    const small = new FrameFileLink({ dir, channel: 'w2' }, 'to-coordinator', { maxFrameBytes: 1000 });
    writeFileSync(join(dir, 'w2.to-worker.0'), Buffer.alloc(1001));
    expect(() => small.incoming(reference(0))).toThrow(/holds 1001 bytes, more than a frame may \(1000\)/);
    // A FIFO would block the reader until someone writes to it: refused at once instead.
    execFileSync('mkfifo', [join(dir, 'w3.to-worker.0')]);
    const fifo = new FrameFileLink({ dir, channel: 'w3' }, 'to-coordinator', { maxFrameBytes: 1000 });
    expect(() => fifo.incoming(reference(0))).toThrow(/w3\.to-worker\.0 is not a regular file/);
    expect(() => worker.incoming(Buffer.concat([reference(0), Buffer.from([0])]))).toThrow(
      /reference of 9 bytes \(expected 8\)/,
    );
  });

  it('send the frame on the socket when its file cannot be written, and from then on, saying why once', () => {
    const reasons: string[] = [];
    const coordinator = new FrameFileLink({ dir, channel: 'w1' }, 'to-worker', {
      maxFrameBytes: MAX_FRAME_BYTES,
      onFilesFailed: (reason) => reasons.push(reason),
    });
    rmSync(dir, { recursive: true });
    const frame = gradientFrame(1);
    expect(coordinator.outgoing(frame)).toBe(frame);
    mkdirSync(dir); // a directory again: the link does not go back to files
    expect(coordinator.outgoing(frame)).toBe(frame);
    expect(reasons).toEqual([
      `cannot write ${join(dir, 'w1.to-worker.0')} (ENOENT); large frames go on the socket from now on`,
    ]);
  });

  it('count the bytes of the files sent that the receiver has not read yet', () => {
    const { coordinator, worker } = channel();
    const frames = [gradientFrame(1), gradientFrame(2), gradientFrame(3)];
    const references = frames.map((frame) => Buffer.from(coordinator.outgoing(frame)));
    const total = (count: number) =>
      frames.slice(3 - count).reduce((sum, frame) => sum + frame.byteLength, 0);
    expect(coordinator.unreadBytes()).toBe(total(3));
    worker.incoming(references[0] as Buffer);
    expect(coordinator.unreadBytes()).toBe(total(2));
    for (const reference of references.slice(1)) worker.incoming(reference);
    expect(coordinator.unreadBytes()).toBe(0);
  });

  it('are refused by a codec on a connection that did not agree to them', () => {
    expect(() => codec.decode(reference(0))).toThrow(
      /frame file reference on a connection that did not agree to frame files/,
    );
  });

  it('write a probe only a process seeing the same directory reads', () => {
    const probe = writeProbe(dir, 'w3');
    expect(probe).toMatch(/^[0-9a-f]{32}$/);
    expect(readProbe({ dir, channel: 'w3' })).toBe(probe);
    expect(writeProbe(dir, 'w4')).not.toBe(probe);
    expect(readProbe({ dir: join(dir, 'elsewhere'), channel: 'w3' })).toBeUndefined();
    writeFileSync(join(dir, 'w5.probe'), 'not hex digits, and too long to be a probe');
    expect(readProbe({ dir, channel: 'w5' })).toBeUndefined();
    expect(() => writeProbe(dir, 'w3')).toThrow(/EEXIST/);
  });
});
