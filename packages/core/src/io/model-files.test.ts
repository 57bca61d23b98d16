import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tfjs from '@tensorflow/tfjs';
// Plain tfjs's cpu backend, without its advert for tfjs-node in the test output (backends/cpu.ts).
import '../backends/cpu.js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { serveDirectory } from '../../../../tools/serve-directory.js';
import { buildModel } from '../models/index.js';
import { callosumError } from '../optim/test-support.js';
import { readFlatWeights } from '../params/layout.js';
import { loadModel, saveModel } from './model-files.js';
import { onFullDisk } from './test-support.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'callosum-model-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('saveModel / loadModel', () => {
  it('on a full disk fails with WRITE_FAILED naming the file and its directory, and leaves no temporary file', async () => {
    const model = buildModel({ name: 'mlp', options: { hidden: [4] } }, { seed: 1 });
    await onFullDisk(join(dir, 'weights.bin'));
    await expect(saveModel(model, dir)).rejects.toThrow(
      callosumError(
        'WRITE_FAILED',
        `cannot write ${join(dir, 'weights.bin')}: no space left on the device holding ${dir}`,
      ),
    );
    model.dispose();
    expect(await readdir(dir)).toEqual([]);
  });

  it('round-trips architecture and weights through model.json + weights.bin', async () => {
    const model = buildModel({ name: 'lenet5' }, { seed: 11 });
    await saveModel(model, dir);
    const loaded = await loadModel(dir);
    expect(loaded.layers.map((layer) => layer.getClassName())).toEqual(
      model.layers.map((layer) => layer.getClassName()),
    );
    expect(readFlatWeights(loaded)).toEqual(readFlatWeights(model));
    model.dispose();
    loaded.dispose();
  });

  it('is readable by plain @tensorflow/tfjs loadLayersModel over http, with identical predictions', async () => {
    const model = buildModel({ name: 'cnn' }, { seed: 12 });
    await saveModel(model, dir);
    const server = await serveDirectory(dir);
    try {
      const plain = await tfjs.loadLayersModel(`${server.url}/model.json`);
      const input = tfjs.randomUniform([3, 28, 28, 1], 0, 1, 'float32', 1);
      const expected = (model.predict(input) as tfjs.Tensor).dataSync();
      const actual = (plain.predict(input) as tfjs.Tensor).dataSync();
      expect(Array.from(actual)).toEqual(Array.from(expected));
      plain.dispose();
    } finally {
      await server.close();
      model.dispose();
    }
  });

  it('names the file when weights are truncated or model.json is missing', async () => {
    const model = buildModel({ name: 'mlp', options: { hidden: [4] } });
    await saveModel(model, dir);
    await truncate(join(dir, 'weights.bin'), 100);
    await expect(loadModel(dir)).rejects.toThrow(/weight files hold 100 bytes/);
    await expect(loadModel(join(dir, 'nope'))).rejects.toThrow(/nope\/model\.json: cannot read/);
    model.dispose();
  });

  it('refuses a model.json without a modelTopology, or of another format, naming the file, without a tfjs warning', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      await writeFile(join(dir, 'model.json'), '{"foo":1}');
      await expect(loadModel(dir)).rejects.toThrow(
        callosumError(
          'ARTIFACT_INVALID',
          `${join(dir, 'model.json')}: no modelTopology, so not the model.json of a TF.js LayersModel`,
        ),
      );
      await writeFile(join(dir, 'model.json'), '{"format":"graph-model","modelTopology":{"node":[]}}');
      await expect(loadModel(dir)).rejects.toThrow(
        callosumError('ARTIFACT_INVALID', 'model.json: format "graph-model", not a TF.js LayersModel'),
      );
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
  });

  it("names the weight whose shape in the manifest is not its layer's, with both shapes", async () => {
    const model = buildModel({ name: 'mlp', options: { hidden: [16] } });
    await saveModel(model, dir);
    const path = join(dir, 'model.json');
    const modelJson = JSON.parse(await readFile(path, 'utf8'));
    const kernel = modelJson.weightsManifest[0].weights[0];
    expect(kernel.shape).toEqual([784, 16]);
    kernel.shape = [16, 784];
    await writeFile(path, JSON.stringify(modelJson));
    await expect(loadModel(dir)).rejects.toThrow(
      callosumError(
        'ARTIFACT_INVALID',
        `${path}: weight ${kernel.name} has shape [16, 784] in the weights manifest, but its layer makes it [784, 16]`,
      ),
    );
    model.dispose();
  });

  it('given the model.json file instead of its directory, says to give the directory', async () => {
    const model = buildModel({ name: 'mlp', options: { hidden: [4] } });
    await saveModel(model, dir);
    await expect(loadModel(join(dir, 'model.json'))).rejects.toThrow(
      callosumError(
        'ARTIFACT_INVALID',
        `${join(dir, 'model.json')} is a file: give the directory that holds model.json, not the file`,
      ),
    );
    model.dispose();
  });
});
