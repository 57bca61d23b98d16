import { Worker } from 'node:worker_threads';
import { CallosumError, ErrorCodes } from '@callosum/core';
import type { ThreadReply, ThreadRequest, ThreadSetup } from './thread-messages.js';

/** The built compute-thread.js next to this file (a thread cannot run TypeScript sources). */
const COMPUTE_THREAD_ENTRY = new URL('./compute-thread.js', import.meta.url);

type Pending = { resolve: (reply: ThreadReply & { type: 'done' }) => void; reject: (error: Error) => void };

/** Omits the request's id: ComputeThreads numbers its requests itself. */
type Unnumbered<T> = T extends unknown ? Omit<T, 'id'> : never;

/**
 * The extra compute threads of one worker process, each running compute-thread.js. A thread that
 * crashes (an uncaught error, or its exit) fails every request it holds and every later one, with the
 * reason: the worker then reports the failure and stops, rather than waiting for an answer that will
 * not come or sending a gradient that misses a piece.
 */
export class ComputeThreads {
  private readonly threads: Worker[];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private crash: CallosumError | undefined;
  private closing = false;

  /**
   * Starts `count` threads on `backend`; resolves once each has loaded it. `entry` is the thread's
   * script (compute-thread.js unless a test gives another).
   */
  static async start(
    count: number,
    setup: ThreadSetup,
    entry: URL = COMPUTE_THREAD_ENTRY,
  ): Promise<ComputeThreads> {
    const threads = new ComputeThreads(count, setup, entry);
    try {
      await threads.ready;
      return threads;
    } catch (error) {
      await threads.close();
      throw error;
    }
  }

  private readonly ready: Promise<void>;

  private constructor(count: number, setup: ThreadSetup, entry: URL) {
    const readiness: Promise<void>[] = [];
    this.threads = Array.from({ length: count }, (_, index) => {
      // Numbered as the user counts them: the worker's own thread is thread 1 of --threads.
      const name = `compute thread ${index + 2} of ${count + 1}`;
      const thread = new Worker(entry, { workerData: setup, name, execArgv: threadExecArgv() });
      readiness.push(
        new Promise<void>((resolve, reject) => {
          thread.on('message', (reply: ThreadReply) => {
            if (reply.type === 'ready') resolve();
            else this.settle(reply, name);
          });
          thread.once('error', (error) => {
            this.fail(`${name} crashed: ${error.message}`);
            reject(this.crash);
          });
          thread.once('exit', (code) => {
            if (!this.closing) this.fail(`${name} exited with code ${code}`);
            reject(this.crash ?? new CallosumError(ErrorCodes.COMPUTE_FAILED, `${name} stopped`));
          });
        }),
      );
      return thread;
    });
    this.ready = Promise.all(readiness).then(() => undefined);
  }

  get count(): number {
    return this.threads.length;
  }

  /** Why the threads can no longer compute, once one of them has crashed. */
  get failure(): string | undefined {
    return this.crash?.message;
  }

  /** Sends a request to thread `index` and resolves with its answer; rejects if it fails or crashes. */
  request(index: number, request: Unnumbered<ThreadRequest>): Promise<ThreadReply & { type: 'done' }> {
    if (this.crash !== undefined) return Promise.reject(this.crash);
    const thread = this.threads[index];
    if (thread === undefined)
      throw new CallosumError(ErrorCodes.INTERNAL, `there is no compute thread ${index}`);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      thread.postMessage({ ...request, id });
    });
  }

  /** Sends the same request to every thread; resolves when all have answered. */
  async requestAll(request: Unnumbered<ThreadRequest>): Promise<void> {
    await Promise.all(this.threads.map((_, index) => this.request(index, request)));
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.threads.map((thread) => thread.terminate()));
  }

  private settle(reply: ThreadReply, name: string): void {
    if (reply.type === 'ready') return;
    const pending = this.pending.get(reply.id);
    if (pending === undefined) return;
    this.pending.delete(reply.id);
    if (reply.type === 'done') pending.resolve(reply);
    else pending.reject(new CallosumError(reply.code, `${name}: ${reply.message}`));
  }

  private fail(reason: string): void {
    this.crash ??= new CallosumError(ErrorCodes.COMPUTE_FAILED, reason);
    for (const pending of this.pending.values()) pending.reject(this.crash);
    this.pending.clear();
  }
}

/**
 * The process's Node options for a thread, less `--input-type`: a thread inherits them, and that one is
 * refused with a file entry (a worker started as `node --input-type=module -e …` could not start any).
 */
function threadExecArgv(): string[] {
  return process.execArgv.filter((option) => !option.startsWith('--input-type'));
}
