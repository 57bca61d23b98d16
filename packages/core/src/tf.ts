/**
 * The TensorFlow.js namespace core trains with: tfjs-core's ops and tfjs-layers' models, layers and
 * initializers, as `@tensorflow/tfjs` combines them. Task modules import it from `@callosum/core` so
 * that their models are built by the same tfjs copy that trains them (a second copy would have its own
 * engine and backends, and its tensors would be foreign here).
 */
import './tensor-methods.js';

export * from '@tensorflow/tfjs-core';
export * from '@tensorflow/tfjs-layers';
