/**
 * One GPU per local worker process: which GPUs `callosum train` shares out (the --gpus list, or those
 * nvidia-smi lists), and the CUDA_VISIBLE_DEVICES each worker gets. Worker i gets GPU i mod the count,
 * so more workers than GPUs share them round-robin.
 */
import { CallosumError, counted, ErrorCodes, shownWithType } from '@callosum/core';
import { InvalidArgumentError, type Option } from 'commander';
import { envOption } from './env-options.js';
import { type NvidiaSmiAnswer, queryNvidiaSmi } from './gpu-detection.js';

/** The word for "assign no GPUs"; an empty list means the same. */
const NO_GPUS = 'none';

/** A GPU as CUDA_VISIBLE_DEVICES names it: an index, or a UUID (whole or abbreviated) as nvidia-smi prints it. */
const GPU_INDEX = /^(0|[1-9]\d*)$/;
const GPU_UUID = /^GPU-[0-9a-f]+(-[0-9a-f]+)*$/i;

/** What is wrong with a list of GPUs, naming the entry at fault; undefined when it is a valid list. */
function gpuListProblem(gpus: readonly string[]): string | undefined {
  const seen = new Set<string>();
  for (const gpu of gpus) {
    if (!GPU_INDEX.test(gpu) && !GPU_UUID.test(gpu)) {
      return `${JSON.stringify(gpu)} is not a GPU index (0, 1, …) or UUID (GPU-…)`;
    }
    // UUIDs are hexadecimal: GPU-AB12 and gpu-ab12 name the same device.
    const key = gpu.toLowerCase();
    if (seen.has(key)) return `GPU ${gpu} is listed twice`;
    seen.add(key);
  }
  return undefined;
}

/** The --gpus value as a list: comma-separated GPUs, or `none` (or nothing) for no assignment. */
export function parseGpuList(raw: string): string[] {
  const text = raw.trim();
  if (text === '' || text.toLowerCase() === NO_GPUS) return [];
  const gpus = text.split(',').map((entry) => entry.trim());
  const problem = gpuListProblem(gpus);
  if (problem !== undefined) {
    throw new InvalidArgumentError(`${problem}; expected e.g. 0,1,2,3 or ${NO_GPUS}, got "${raw}"`);
  }
  return gpus;
}

/** --gpus: `callosum train`'s; a standalone worker is one process, with the GPUs its environment shows it. */
export function gpusOption(): Option {
  return envOption(
    '--gpus <list>',
    'GPUs for the worker processes, one each as CUDA_VISIBLE_DEVICES: indices or UUIDs, e.g. 0,1,2,3; ' +
      'worker i gets GPU i mod the count, so more workers than GPUs share them round-robin; ' +
      `"${NO_GPUS}" assigns none (default: the GPUs nvidia-smi lists, unless CUDA_VISIBLE_DEVICES is set)`,
  ).argParser(parseGpuList);
}

/** The GPUs a run's local workers get, and what to say about it. */
export interface GpuAssignment {
  /** The extra environment of worker `index` (counting from 0): its CUDA_VISIBLE_DEVICES, if it gets one. */
  environmentOf(index: number): Record<string, string>;
  /** One line for the run's log; undefined when there is nothing to say (no GPU, nothing set). */
  readonly summary: string | undefined;
}

export interface GpuAssignmentInputs {
  /** The workers' names, in the order they are started. */
  readonly workerNames: readonly string[];
  /** The GPUs to share out; [] assigns none; undefined: CUDA_VISIBLE_DEVICES as set, else nvidia-smi's. */
  readonly gpus: readonly string[] | undefined;
  /** This process's environment (default process.env): a CUDA_VISIBLE_DEVICES set there is the user's. */
  readonly environment?: NodeJS.ProcessEnv;
  /** Default: nvidia-smi on PATH. */
  readonly askNvidiaSmi?: () => Promise<NvidiaSmiAnswer>;
}

/**
 * Decides each worker's CUDA_VISIBLE_DEVICES. A given list wins; without one, a CUDA_VISIBLE_DEVICES the
 * user set passes to every worker unchanged (nvidia-smi lists every GPU of the host, also those the user
 * kept out), and otherwise the GPUs nvidia-smi lists are shared out. No GPU: nothing is set.
 */
export async function assignGpus({
  workerNames,
  gpus,
  environment = process.env,
  askNvidiaSmi = () => queryNvidiaSmi(),
}: GpuAssignmentInputs): Promise<GpuAssignment> {
  if (gpus !== undefined) {
    // A program's list (fit's `gpus`): a string would be taken apart character by character.
    if (!Array.isArray(gpus) || gpus.some((gpu: unknown) => typeof gpu !== 'string')) {
      throw new CallosumError(
        ErrorCodes.INVALID_ARGUMENT,
        `gpus must be a list of GPU indices or UUIDs as strings (e.g. ['0', '1']; [] assigns none), got ${shownWithType(gpus)}`,
      );
    }
    const problem = gpuListProblem(gpus);
    if (problem !== undefined) throw new CallosumError(ErrorCodes.INVALID_ARGUMENT, `gpus: ${problem}`);
    return roundRobin(workerNames, gpus, 'as given');
  }
  const own = environment.CUDA_VISIBLE_DEVICES;
  if (own !== undefined) {
    return unassigned(
      `every worker keeps CUDA_VISIBLE_DEVICES=${own} as set; --gpus gives each worker its own`,
    );
  }
  const answer = await askNvidiaSmi();
  switch (answer.kind) {
    case 'absent':
      return unassigned(undefined);
    case 'failed':
      return unassigned(`none assigned: ${answer.reason}; --gpus assigns them`);
    case 'listed': {
      const problem = gpuListProblem(answer.lines);
      return problem === undefined
        ? roundRobin(workerNames, answer.lines, 'from nvidia-smi')
        : unassigned(`none assigned: nvidia-smi listed no GPU indices (${problem}); --gpus assigns them`);
    }
  }
}

function roundRobin(workerNames: readonly string[], gpus: readonly string[], source: string): GpuAssignment {
  if (gpus.length === 0) return unassigned(undefined);
  const deviceOf = (index: number) => gpus[index % gpus.length] as string;
  const pairs = workerNames.map((name, index) => `${name}=${deviceOf(index)}`).join(' ');
  const shared =
    workerNames.length > gpus.length
      ? `; ${counted(workerNames.length, 'worker')} on ${counted(gpus.length, 'GPU')}, shared round-robin`
      : '';
  return {
    environmentOf: (index) => ({ CUDA_VISIBLE_DEVICES: deviceOf(index) }),
    summary: `GPUs (${source}): CUDA_VISIBLE_DEVICES ${pairs}${shared}`,
  };
}

function unassigned(note: string | undefined): GpuAssignment {
  return { environmentOf: () => ({}), summary: note === undefined ? undefined : `GPUs: ${note}` };
}
