import * as tf from '@tensorflow/tfjs-core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import './cpu.js';

const ADVERT = 'looks like you are running TensorFlow.js in Node.js';

function warnings(): string[] {
  return vi.mocked(console.warn).mock.calls.map((call) => call.join(' '));
}

describe('the cpu backend', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('prints no tfjs-node advert when the engine picks it by itself for the first tensor', () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    const sum = tf.tidy(() => tf.add(tf.ones([3]), 1).dataSync());
    expect(Array.from(sum)).toEqual([2, 2, 2]);
    expect(tf.getBackend()).toBe('cpu');
    expect(warnings().filter((line) => line.includes(ADVERT))).toEqual([]);
  });

  it('prints none from an instance made later, after an engine reset', async () => {
    tf.engine().reset();
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    expect(await tf.setBackend('cpu')).toBe(true);
    tf.tidy(() => tf.ones([2]).dataSync());
    expect(warnings().filter((line) => line.includes(ADVERT))).toEqual([]);
  });

  it("leaves tfjs's other warnings on", () => {
    vi.spyOn(console, 'warn').mockImplementation(() => {});
    expect(tf.registerBackend('cpu', () => tf.findBackend('cpu'))).toBe(false);
    expect(warnings()).toEqual([expect.stringContaining('cpu backend was already registered')]);
  });
});
