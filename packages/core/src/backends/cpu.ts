import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';

/**
 * tfjs-backend-cpu, with its advert for tfjs-node ("Hi, looks like you are running TensorFlow.js in
 * Node.js …") turned off. Callosum uses this backend on purpose (the coordinator, and models built before
 * initBackend, such as the CLI's batch-size check) and initBackend reports which backend it took and
 * why, so the advert is only noise on the user's terminal.
 *
 * An instance prints it when it stores its first tensor unless its `firstUse` is false. No tfjs flag turns
 * off only the advert: IS_NODE, which gates it, also selects tfjs's Node platform and keeps the wasm
 * backend off threads (which it cannot use in Node), and IS_TEST or PROD would mute every tfjs warning.
 * The engine makes a new instance from the registered factory whenever it initialises the backend, so the
 * factory is wrapped.
 */
const ADVERT_SHOWN = { firstUse: false } as const;

const registration = tf.engine().registryFactory.cpu;
if (registration !== undefined) {
  const makeBackend = registration.factory;
  registration.factory = () => Object.assign(makeBackend(), ADVERT_SHOWN);
}
// An instance made before this module ran (tfjs used before Callosum was imported) is kept, quietly.
const existing = tf.engine().registry.cpu;
if (existing !== undefined) Object.assign(existing, ADVERT_SHOWN);
