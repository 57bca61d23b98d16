import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type CgroupFiles, cgroupCpuLimit, defaultThreads } from './cpu-budget.js';

const made: string[] = [];
afterAll(async () => {
  await Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A cgroup tree in a temporary directory: `membership` is /proc/self/cgroup's text, `files` the rest. */
async function cgroupTree(membership: string, files: Record<string, string>): Promise<CgroupFiles> {
  const dir = await mkdtemp(path.join(tmpdir(), 'callosum-cgroup-'));
  made.push(dir);
  const root = path.join(dir, 'sys-fs-cgroup');
  for (const [name, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), `${text}\n`);
  }
  await writeFile(path.join(dir, 'self-cgroup'), `${membership}\n`);
  return { root, membership: path.join(dir, 'self-cgroup') };
}

describe('cgroupCpuLimit', () => {
  it('reads a cgroup v2 quota in a container (the root of its namespace)', async () => {
    const files = await cgroupTree('0::/', { 'cpu.max': '150000 100000' });
    expect(cgroupCpuLimit(files)).toBe(1.5);
  });

  it('takes the smallest quota of the cgroup and its ancestors (v2), and "max" as none', async () => {
    const files = await cgroupTree('0::/kubepods/pod1/ctr', {
      'kubepods/cpu.max': '400000 100000',
      'kubepods/pod1/cpu.max': '200000 100000',
      'kubepods/pod1/ctr/cpu.max': 'max 100000',
    });
    expect(cgroupCpuLimit(files)).toBe(2);
  });

  it('reads a cgroup v1 quota, with -1 as none', async () => {
    const v1 = '4:memory:/x\n2:cpu,cpuacct:/docker/abc\n1:name=systemd:/';
    const limited = await cgroupTree(v1, {
      'cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '50000',
      'cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000',
      'cpu,cpuacct/cpu.cfs_quota_us': '-1',
      'cpu,cpuacct/cpu.cfs_period_us': '100000',
    });
    expect(cgroupCpuLimit(limited)).toBe(0.5);
    const unlimited = await cgroupTree('1:cpu:/', {
      'cpu/cpu.cfs_quota_us': '-1',
      'cpu/cpu.cfs_period_us': '100000',
    });
    expect(cgroupCpuLimit(unlimited)).toBeUndefined();
  });

  it('finds no quota without cgroup files', async () => {
    const files = await cgroupTree('0::/', {});
    expect(cgroupCpuLimit(files)).toBeUndefined();
    expect(cgroupCpuLimit({ root: '/nonexistent', membership: '/nonexistent/cgroup' })).toBeUndefined();
  });
});

describe('defaultThreads', () => {
  it('shares the cores the quota allows among the local workers, floored, at least one', async () => {
    const cores = availableParallelism();
    const noQuota = await cgroupTree('0::/', { 'cpu.max': 'max 100000' });
    expect(defaultThreads(1, noQuota)).toBe(cores);
    expect(defaultThreads(cores, noQuota)).toBe(1);
    expect(defaultThreads(cores * 4, noQuota)).toBe(1);
    const oneAndHalf = await cgroupTree('0::/', { 'cpu.max': '150000 100000' });
    expect(defaultThreads(1, oneAndHalf)).toBe(1);
    const many = await cgroupTree('0::/', { 'cpu.max': `${(cores + 8) * 100000} 100000` });
    expect(defaultThreads(1, many)).toBe(cores);
  });
});
