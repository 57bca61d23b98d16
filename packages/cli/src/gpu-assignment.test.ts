import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import { assignGpus, parseGpuList } from './gpu-assignment.js';
import type { NvidiaSmiAnswer } from './gpu-detection.js';

const UUID_A = 'GPU-8932f937-d72c-4106-c12f-20bd9faed9f6';
const UUID_B = 'GPU-5ab4c1d2-0000-1111-2222-333344445555';

describe('parseGpuList (--gpus, CALLOSUM_GPUS)', () => {
  it('takes indices and UUIDs, whole or abbreviated as CUDA allows, with spaces around the commas', () => {
    expect(parseGpuList('0,1,2,3')).toEqual(['0', '1', '2', '3']);
    expect(parseGpuList(` ${UUID_A} , ${UUID_B}`)).toEqual([UUID_A, UUID_B]);
    expect(parseGpuList('GPU-8932f937,3')).toEqual(['GPU-8932f937', '3']);
  });

  it('none, in any case, or nothing at all: no assignment', () => {
    expect(parseGpuList('none')).toEqual([]);
    expect(parseGpuList('NONE')).toEqual([]);
    expect(parseGpuList('')).toEqual([]);
    expect(parseGpuList('  ')).toEqual([]);
  });

  it.each([
    ['0,x', /"x" is not a GPU index \(0, 1, …\) or UUID \(GPU-…\).*got "0,x"/],
    ['-1', /"-1" is not a GPU index/],
    ['01', /"01" is not a GPU index/],
    ['1.5', /"1.5" is not a GPU index/],
    ['0,,1', /"" is not a GPU index/],
    ['GPU-', /"GPU-" is not a GPU index/],
    ['GPU-xyz', /"GPU-xyz" is not a GPU index/],
    ['MIG-8932f937', /"MIG-8932f937" is not a GPU index/],
    ['0,1,0', /GPU 0 is listed twice/],
    [`${UUID_A},${UUID_A.toUpperCase()}`, /is listed twice/],
  ])('refuses %j, naming the entry at fault', (raw, message) => {
    expect(() => parseGpuList(raw)).toThrow(InvalidArgumentError);
    expect(() => parseGpuList(raw)).toThrow(message);
  });
});

/** An nvidia-smi that answers `answer`, and counts how often it was asked. */
function fakeNvidiaSmi(answer: NvidiaSmiAnswer) {
  const asked = { times: 0 };
  return {
    asked,
    askNvidiaSmi: async () => {
      asked.times += 1;
      return answer;
    },
  };
}

const names = (count: number) => Array.from({ length: count }, (_, index) => `worker-${index + 1}`);
const devicesOf = (assignment: Awaited<ReturnType<typeof assignGpus>>, workers: number) =>
  names(workers).map((_, index) => assignment.environmentOf(index).CUDA_VISIBLE_DEVICES);

describe('assignGpus', () => {
  it('shares the GPUs nvidia-smi lists out one per worker, round-robin when workers outnumber them', async () => {
    const twoGpus = fakeNvidiaSmi({ kind: 'listed', lines: ['0', '1'] });
    const assignment = await assignGpus({
      workerNames: names(3),
      gpus: undefined,
      environment: {},
      ...twoGpus,
    });
    expect(devicesOf(assignment, 3)).toEqual(['0', '1', '0']);
    expect(assignment.summary).toBe(
      'GPUs (from nvidia-smi): CUDA_VISIBLE_DEVICES worker-1=0 worker-2=1 worker-3=0; 3 workers on 2 GPUs, shared round-robin',
    );
  });

  it('as many GPUs as workers or more: one each, and no word of sharing', async () => {
    const fourGpus = fakeNvidiaSmi({ kind: 'listed', lines: ['0', '1', '2', '3'] });
    const assignment = await assignGpus({
      workerNames: names(2),
      gpus: undefined,
      environment: {},
      ...fourGpus,
    });
    expect(devicesOf(assignment, 2)).toEqual(['0', '1']);
    expect(assignment.summary).toBe('GPUs (from nvidia-smi): CUDA_VISIBLE_DEVICES worker-1=0 worker-2=1');
  });

  it('a given list wins over nvidia-smi and over CUDA_VISIBLE_DEVICES, without asking nvidia-smi', async () => {
    const twoGpus = fakeNvidiaSmi({ kind: 'listed', lines: ['0', '1'] });
    const assignment = await assignGpus({
      workerNames: names(3),
      gpus: ['5', UUID_A],
      environment: { CUDA_VISIBLE_DEVICES: '2' },
      ...twoGpus,
    });
    expect(devicesOf(assignment, 3)).toEqual(['5', UUID_A, '5']);
    expect(assignment.summary).toMatch(/^GPUs \(as given\): CUDA_VISIBLE_DEVICES worker-1=5 /);
    expect(twoGpus.asked.times).toBe(0);
  });

  it('an empty list (--gpus none) assigns nothing and says nothing, even with GPUs on the host', async () => {
    const twoGpus = fakeNvidiaSmi({ kind: 'listed', lines: ['0', '1'] });
    const assignment = await assignGpus({ workerNames: names(2), gpus: [], environment: {}, ...twoGpus });
    expect(devicesOf(assignment, 2)).toEqual([undefined, undefined]);
    expect(assignment.summary).toBeUndefined();
    expect(twoGpus.asked.times).toBe(0);
  });

  it('a CUDA_VISIBLE_DEVICES the user set passes through unchanged: nvidia-smi would list GPUs it hides', async () => {
    const twoGpus = fakeNvidiaSmi({ kind: 'listed', lines: ['0', '1'] });
    const assignment = await assignGpus({
      workerNames: names(2),
      gpus: undefined,
      environment: { CUDA_VISIBLE_DEVICES: '1' },
      ...twoGpus,
    });
    expect(devicesOf(assignment, 2)).toEqual([undefined, undefined]);
    expect(assignment.summary).toBe(
      'GPUs: every worker keeps CUDA_VISIBLE_DEVICES=1 as set; --gpus gives each worker its own',
    );
    expect(twoGpus.asked.times).toBe(0);
  });

  it('no nvidia-smi: nothing assigned, nothing said (a CPU host)', async () => {
    const assignment = await assignGpus({
      workerNames: names(2),
      gpus: undefined,
      environment: {},
      ...fakeNvidiaSmi({ kind: 'absent' }),
    });
    expect(devicesOf(assignment, 2)).toEqual([undefined, undefined]);
    expect(assignment.summary).toBeUndefined();
  });

  it('an nvidia-smi that failed or listed something else: nothing assigned, and why', async () => {
    const failed = await assignGpus({
      workerNames: names(2),
      gpus: undefined,
      environment: {},
      ...fakeNvidiaSmi({ kind: 'failed', reason: 'nvidia-smi exited with 1' }),
    });
    expect(devicesOf(failed, 2)).toEqual([undefined, undefined]);
    expect(failed.summary).toBe('GPUs: none assigned: nvidia-smi exited with 1; --gpus assigns them');

    const garbled = await assignGpus({
      workerNames: names(2),
      gpus: undefined,
      environment: {},
      ...fakeNvidiaSmi({ kind: 'listed', lines: ['No devices were found'] }),
    });
    expect(devicesOf(garbled, 2)).toEqual([undefined, undefined]);
    expect(garbled.summary).toMatch(/^GPUs: none assigned: nvidia-smi listed no GPU indices \("No devices/);

    const none = await assignGpus({
      workerNames: names(2),
      gpus: undefined,
      environment: {},
      ...fakeNvidiaSmi({ kind: 'listed', lines: [] }),
    });
    expect(none.summary).toBeUndefined();
  });

  it('a bad list from a library caller is an INVALID_ARGUMENT naming the entry', async () => {
    await expect(
      assignGpus({ workerNames: names(2), gpus: ['0', 'zero'], environment: {} }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/gpus: "zero"/) });
  });
});
