/**
 * How many cores this worker may use: the machine's (`os.availableParallelism()`), capped by the CPU
 * quota of the cgroups the process runs in (a container's `--cpus`, a Kubernetes CPU limit), which
 * Node does not look at. A worker's default thread count shares them among the workers on the host.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

/** Where the cgroup files are: the mounted hierarchy, and the file naming this process's cgroups. */
export interface CgroupFiles {
  readonly root: string;
  readonly membership: string;
}

const SYSTEM_CGROUPS: CgroupFiles = { root: '/sys/fs/cgroup', membership: '/proc/self/cgroup' };

/** v2's hierarchy is the root itself, or `unified` next to v1's (hybrid); v1 mounts cpu under one of the others. */
const V2_MOUNTS = ['.', 'unified'];
const V1_CPU_MOUNTS = ['cpu', 'cpu,cpuacct', 'cpuacct,cpu'];

/**
 * The CPUs (possibly fractional) the quotas of this process's cgroup and its ancestors allow, the
 * smallest of them; undefined when none sets a quota (or there are no cgroup files, e.g. not Linux).
 */
export function cgroupCpuLimit(files: CgroupFiles = SYSTEM_CGROUPS): number | undefined {
  const limits: number[] = [];
  for (const line of readText(files.membership)?.split('\n') ?? []) {
    // "hierarchy-id:controllers:path"; cgroup v2's single hierarchy lists no controllers.
    const [, controllers, ...rest] = line.split(':');
    const cgroup = rest.join(':');
    if (controllers === undefined || cgroup === '') continue;
    if (controllers === '') {
      for (const mount of V2_MOUNTS) {
        for (const dir of ancestors(path.join(files.root, mount), cgroup)) {
          pushDefined(limits, cpuMaxLimit(readText(path.join(dir, 'cpu.max'))));
        }
      }
    } else if (controllers.split(',').includes('cpu')) {
      for (const mount of V1_CPU_MOUNTS) {
        for (const dir of ancestors(path.join(files.root, mount), cgroup)) {
          pushDefined(
            limits,
            cfsQuotaLimit(
              readText(path.join(dir, 'cpu.cfs_quota_us')),
              readText(path.join(dir, 'cpu.cfs_period_us')),
            ),
          );
        }
      }
    }
  }
  return limits.length === 0 ? undefined : Math.min(...limits);
}

/** cgroup v2 `cpu.max`: "max 100000" (no quota) or "<quota µs> <period µs>". */
export function cpuMaxLimit(text: string | undefined): number | undefined {
  const [quota, period] = text?.split(/\s+/) ?? [];
  return quota === 'max' ? undefined : ratio(quota, period);
}

/** cgroup v1 `cpu.cfs_quota_us` (-1: no quota) over `cpu.cfs_period_us`. */
export function cfsQuotaLimit(quota: string | undefined, period: string | undefined): number | undefined {
  return ratio(quota, period);
}

/** The cores this process may use: the machine's, capped by the cgroup quota; at least 1. */
export function usableCores(files: CgroupFiles = SYSTEM_CGROUPS): number {
  const quota = cgroupCpuLimit(files);
  return Math.max(1, Math.min(availableParallelism(), quota ?? Number.POSITIVE_INFINITY));
}

/** A worker's default threads: the usable cores shared by `localWorkers` workers on this host, floored, at least 1. */
export function defaultThreads(localWorkers = 1, files: CgroupFiles = SYSTEM_CGROUPS): number {
  return Math.max(1, Math.floor(usableCores(files) / localWorkers));
}

function ratio(quota: string | undefined, period: string | undefined): number | undefined {
  const q = Number(quota);
  const p = Number(period);
  return Number.isFinite(q) && Number.isFinite(p) && q > 0 && p > 0 ? q / p : undefined;
}

/** `cgroup`'s directory under `root` and each of its parents up to `root` itself. */
function ancestors(mount: string, cgroup: string): string[] {
  const root = path.resolve(mount);
  const dirs: string[] = [];
  for (let dir = path.resolve(root, `.${cgroup}`); dir.startsWith(root); dir = path.dirname(dir)) {
    dirs.push(dir);
    if (dir === root) break;
  }
  return dirs;
}

function readText(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

function pushDefined(values: number[], value: number | undefined): void {
  if (value !== undefined) values.push(value);
}
