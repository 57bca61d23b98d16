/**
 * A compute thread's entry point (started by ComputeThreads). It has its own module graph, so its own
 * tfjs engine, backend (loaded as the worker loads its own, with the project's wasm training kernels)
 * and model, built from the run's welcome: a GradientService in another thread. It computes the pieces
 * of a shard it is sent into shared buffers and answers with their totals, one request at a time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ErrorCodes, initBackend, isCallosumError, loadTaskModule } from '@callosum/core';
import { GradientService } from './gradient-service.js';
import type { ThreadReply, ThreadRequest, ThreadSetup } from './thread-messages.js';

const port = parentPort;
if (port === null) throw new Error('compute-thread.js runs as a worker thread, started by ComputeThreads');
const { backend, taskModule } = workerData as ThreadSetup;
let weights: Float32Array | undefined;

const reply = (message: ThreadReply) => port.postMessage(message);
// The thread loads the worker's task module itself: code never crosses threads, as it never crosses the wire.
const loaded = initBackend(backend).then(async (choice) => ({
  choice,
  service: new GradientService(taskModule === undefined ? undefined : await loadTaskModule(taskModule)),
}));
// A backend or task that cannot load here ends the thread, and so the worker, with the reason.
loaded.then(({ choice }) => reply({ type: 'ready', backend: choice.backend }));

port.on('message', (request: ThreadRequest) => {
  void loaded.then(({ service }) => {
    try {
      reply(handle(service, request));
    } catch (error) {
      reply({
        type: 'failed',
        id: request.id,
        code: isCallosumError(error) ? error.code : ErrorCodes.COMPUTE_FAILED,
        message: error instanceof Error ? error.message : String(error),
      });
    }
  });
});

function handle(service: GradientService, request: ThreadRequest): ThreadReply {
  if (request.type === 'configure') {
    service.configure(request.welcome);
    weights = new Float32Array(request.weights);
    return { type: 'done', id: request.id, totals: [] };
  }
  // Only read when the version differs from the one the model holds.
  service.receiveWeights(request.request.weightsVersion, weights ?? new Float32Array(0));
  const outputs = request.outputs.map((buffer) => new Float32Array(buffer));
  const { results } = service.computePieces(request.request, request.pieces, outputs);
  return {
    type: 'done',
    id: request.id,
    totals: results.map(({ lossSum, correct, metricSums, count }) => ({
      lossSum,
      correct,
      metricSums,
      count,
    })),
  };
}
