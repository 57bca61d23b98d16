import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCodes } from '../errors.js';
import { decodeIdx, encodeIdx, type IdxArray, readIdxFile } from './idx.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'callosum-idx-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeFixture(name: string, bytes: Uint8Array): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

const images: IdxArray = { dims: [2, 3, 4], data: Uint8Array.from({ length: 24 }, (_, i) => i * 10) };
const labels: IdxArray = { dims: [5], data: Uint8Array.of(0, 9, 3, 255, 7) };

/** Matches a DATASET_INVALID error whose message is `<path>: <problem>...`. */
function expectDatasetInvalid(path: string, problem: string) {
  return expect.objectContaining({
    code: ErrorCodes.DATASET_INVALID,
    message: expect.stringContaining(`${path}: ${problem}`),
  });
}

describe('IDX round trip', () => {
  it.each([
    ['idx3 plain', 'images-idx3-ubyte', images, false],
    ['idx1 plain', 'labels-idx1-ubyte', labels, false],
    ['idx3 gzip', 'images-idx3-ubyte.gz', images, true],
    ['idx1 gzip without a .gz name', 'labels-gzipped-idx1-ubyte', labels, true],
  ])('%s', async (_, name, array, gzip) => {
    const encoded = encodeIdx(array);
    const path = await writeFixture(name, gzip ? gzipSync(encoded) : encoded);
    const read = await readIdxFile(path, { ndims: array.dims.length });
    expect(read.dims).toEqual(array.dims);
    expect(read.data).toEqual(array.data);
    expect(Object.getPrototypeOf(read.data)).toBe(Uint8Array.prototype);
  });

  it('writes the documented header: 00 00 08 ndims, then big-endian dims', () => {
    expect(Array.from(encodeIdx(labels).subarray(0, 8))).toEqual([0, 0, 8, 1, 0, 0, 0, 5]);
  });

  it('decodes to a view of the input bytes, not a copy', () => {
    const bytes = encodeIdx(images);
    const decoded = decodeIdx(bytes, 'memory');
    expect(decoded.data.buffer).toBe(bytes.buffer);
    expect(decoded.data.byteOffset).toBe(16);
  });

  it('rejects data that does not match its dims when encoding', () => {
    expect(() => encodeIdx({ dims: [2, 2], data: new Uint8Array(3) })).toThrow(
      expect.objectContaining({ code: ErrorCodes.INVALID_ARGUMENT }),
    );
  });
});

describe('IDX errors name the file and the problem', () => {
  const valid = encodeIdx(images);

  it('missing file', async () => {
    const path = join(dir, 'does-not-exist-idx3-ubyte');
    await expect(readIdxFile(path)).rejects.toThrow(expectDatasetInvalid(path, 'file not found'));
  });

  it('a directory instead of a file', async () => {
    await expect(readIdxFile(dir)).rejects.toThrow(expectDatasetInvalid(dir, 'cannot read file: '));
  });

  it('wrong magic', async () => {
    const path = await writeFixture('png-idx3-ubyte', Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 1, 2, 3));
    await expect(readIdxFile(path)).rejects.toThrow(
      expectDatasetInvalid(path, 'bad magic: expected 00 00 <dtype> <ndims>, found 89 50 4e 47'),
    );
  });

  it('unsupported data type', async () => {
    const path = await writeFixture('float-idx1', Uint8Array.of(0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0));
    await expect(readIdxFile(path)).rejects.toThrow(
      expectDatasetInvalid(path, 'unsupported data type 0x0d (32-bit float)'),
    );
  });

  it('unknown data type', async () => {
    const path = await writeFixture('unknown-dtype', Uint8Array.of(0, 0, 0x42, 1, 0, 0, 0, 0));
    await expect(readIdxFile(path)).rejects.toThrow(
      expectDatasetInvalid(path, 'bad magic: unknown IDX data type byte 0x42'),
    );
  });

  it('wrong number of dimensions', async () => {
    const path = await writeFixture('labels-not-images', encodeIdx(labels));
    await expect(readIdxFile(path, { ndims: 3 })).rejects.toThrow(
      expectDatasetInvalid(path, 'expected 3 dimension(s) (idx3), header declares 1'),
    );
  });

  it('too short for the magic', async () => {
    const path = await writeFixture('two-bytes', Uint8Array.of(0, 0));
    await expect(readIdxFile(path)).rejects.toThrow(
      expectDatasetInvalid(path, 'truncated: 2 bytes, too short for the 4-byte IDX magic'),
    );
  });

  it('truncated inside the header', async () => {
    const path = await writeFixture('short-header', valid.subarray(0, 10));
    await expect(readIdxFile(path)).rejects.toThrow(
      expectDatasetInvalid(path, 'truncated: header of 3 dimension(s) needs 16 bytes, file has 10'),
    );
  });

  it('truncated data', async () => {
    const path = await writeFixture('short-data', valid.subarray(0, valid.length - 4));
    await expect(readIdxFile(path)).rejects.toThrow(
      expectDatasetInvalid(path, 'truncated: header says 2×3×4 = 24 bytes of data, file has 20'),
    );
  });

  it('trailing bytes', async () => {
    const path = await writeFixture('long-data', Uint8Array.of(...valid, 1, 2));
    await expect(readIdxFile(path)).rejects.toThrow(
      expectDatasetInvalid(
        path,
        'trailing bytes: header says 2×3×4 = 24 bytes of data, file has 26 (2 extra)',
      ),
    );
  });

  it('corrupt gzip', async () => {
    const compressed = gzipSync(valid);
    const path = await writeFixture('corrupt.gz', compressed.subarray(0, compressed.length - 10));
    await expect(readIdxFile(path)).rejects.toThrow(expectDatasetInvalid(path, 'corrupt gzip data: '));
  });

  it('valid gzip around invalid IDX still names the file', async () => {
    const path = await writeFixture('short-data.gz', gzipSync(valid.subarray(0, 20)));
    await expect(readIdxFile(path)).rejects.toThrow(
      expectDatasetInvalid(path, 'truncated: header says 2×3×4 = 24 bytes of data, file has 4'),
    );
  });
});
