// Module resolution hook (node:module register) used by check-task.mjs: an import of '@callosum/core'
// from anywhere but core-stub.mjs gets core-stub.mjs instead. Registered only while the real
// @callosum/core has no defineTask.
const STUB = new URL('./core-stub.mjs', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  if (specifier === '@callosum/core' && context.parentURL !== STUB) {
    return { url: STUB, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}
