import { spawn } from 'node:child_process';

/**
 * How long nvidia-smi may take. It answers in well under a second on a healthy host, but a wedged driver
 * can make it hang: a run then starts without GPU assignment instead of waiting for it.
 */
const NVIDIA_SMI_TIMEOUT_MS = 5_000;

/** What nvidia-smi said about this host's GPUs. */
export type NvidiaSmiAnswer =
  /** The lines it printed: one GPU index each (not yet checked). */
  | { readonly kind: 'listed'; readonly lines: readonly string[] }
  /** No nvidia-smi on PATH: a host without NVIDIA's driver, the usual CPU machine. */
  | { readonly kind: 'absent' }
  /** It exists but gave no list: a non-zero exit, a signal, or no answer in time. */
  | { readonly kind: 'failed'; readonly reason: string };

/** Asks nvidia-smi (found on PATH) for the indices of this host's GPUs; never takes longer than `timeoutMs`. */
export function queryNvidiaSmi(timeoutMs = NVIDIA_SMI_TIMEOUT_MS): Promise<NvidiaSmiAnswer> {
  return new Promise((resolve) => {
    const child = spawn('nvidia-smi', ['--query-gpu=index', '--format=csv,noheader'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let output = '';
    let answered = false;
    const answer = (result: NvidiaSmiAnswer) => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      resolve(result);
    };
    // Our own timer, not spawn's `timeout`: that one kills nvidia-smi but then still waits for its output
    // to close, which a child process that inherited the pipe can hold open indefinitely.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      child.stdout.destroy();
      answer({ kind: 'failed', reason: `nvidia-smi did not answer within ${timeoutMs / 1000} s` });
    }, timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
    });
    child.once('error', (error: NodeJS.ErrnoException) =>
      answer(
        error.code === 'ENOENT'
          ? { kind: 'absent' }
          : { kind: 'failed', reason: `nvidia-smi could not be run (${error.code ?? error.message})` },
      ),
    );
    child.once('close', (code, signal) =>
      answer(
        code === 0
          ? {
              kind: 'listed',
              lines: output
                .split('\n')
                .map((line) => line.trim())
                .filter(Boolean),
            }
          : { kind: 'failed', reason: `nvidia-smi exited with ${code ?? signal}` },
      ),
    );
  });
}
