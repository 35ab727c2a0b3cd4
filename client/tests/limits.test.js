import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { effectiveSize, effectiveSteps, denoisingSteps, estimateRender, describeEstimate, isResizable, sourceKey, megapixels } from '../js/limits.js';

const catalogue = JSON.parse(readFileSync(process.env.OPENDREAM_OPERATIONS_JSON || new URL('./fixtures/operations.json', import.meta.url)));
const op = (name) => catalogue.operations.find((o) => o.name === name);
const LIMITS = { working_pixels: 512 * 512, max_pixels: 2048 * 2048, max_work: 512 * 512 * 150, device: 'cpu' };

test('effectiveSize: resize to fit scales a large source into the working pixels, aspect kept', () => {
  const fitted = effectiveSize(5000, 3000, 'fit', 262144);
  const s = Math.sqrt(262144 / (5000 * 3000));
  assert.deepEqual(fitted, { width: Math.floor(5000 * s), height: Math.floor(3000 * s), resized: true });
  assert.deepEqual([fitted.width, fitted.height], [660, 396]);
  assert.ok(fitted.width * fitted.height <= 262144);
  // small enough, "none", or no working size: the source's own size
  assert.deepEqual(effectiveSize(512, 512, 'fit', 262144), { width: 512, height: 512, resized: false });
  assert.deepEqual(effectiveSize(5000, 3000, 'none', 262144), { width: 5000, height: 3000, resized: false });
  assert.deepEqual(effectiveSize(5000, 3000, 'fit'), { width: 5000, height: 3000, resized: false });
  // never below 8 pixels a side, however thin the source
  assert.deepEqual(effectiveSize(100000, 10, 'fit', 4096), { width: 6400, height: 8, resized: true });
});

test('effectiveSteps and denoisingSteps mirror engine/ops/img2img.py', () => {
  assert.equal(effectiveSteps(30, 0.6), 30);
  assert.equal(effectiveSteps(1, 0.5), 2); // floor(0.5) = 0: ceil(1 / 0.5)
  assert.equal(effectiveSteps(2, 0.1), 10);
  assert.equal(denoisingSteps(30, 0.6), 18);
  assert.equal(denoisingSteps(1, 0.5), 1);
  assert.equal(denoisingSteps(25), 25);
  assert.equal(denoisingSteps(30, 1), 30);
  assert.equal(denoisingSteps(0), 0);
});

test('which operations are resized to fit, and their source', () => {
  for (const name of ['img2img', 'inpaint', 'instruct_pix2pix', 'controlnet_canny']) assert.equal(isResizable(op(name)), true, name);
  for (const name of ['txt2img', 'upload', 'adjust', 'mask']) assert.equal(isResizable(op(name)), false, name);
  assert.equal(sourceKey(op('img2img')), 'source');
  assert.equal(sourceKey(op('inpaint')), 'source'); // not the mask
  assert.equal(sourceKey(op('controlnet_canny')), 'control');
});

test('txt2img: its size and steps; over a limit, a warning naming it', () => {
  const estimate = estimateRender(op('txt2img'), { width: 512, height: 512, steps: 25 }, { limits: LIMITS });
  assert.deepEqual([estimate.width, estimate.height, estimate.steps, estimate.work, estimate.over], [512, 512, 25, 512 * 512 * 25, []]);
  assert.deepEqual(describeEstimate(estimate), { text: '512×512 · 25 steps', warnings: [] });
  const big = describeEstimate(estimateRender(op('txt2img'), { width: 2048, height: 2048, steps: 150 }, { limits: LIMITS }));
  assert.equal(big.warnings.length, 1);
  assert.match(big.warnings[0], /max_work/);
  const huge = estimateRender(op('txt2img'), { width: 2048, height: 2048, steps: 1 }, { limits: { ...LIMITS, max_pixels: 1024 * 1024 } });
  assert.deepEqual(huge.over.map((o) => o.limit), ['max_pixels']);
  assert.match(describeEstimate(huge).warnings[0], /over this server’s limit of 1\.0 MP \(max_pixels\)/);
  // a server without limits: the size, no warnings
  assert.deepEqual(describeEstimate(estimateRender(op('txt2img'), { width: 2048, height: 2048, steps: 150 })).warnings, []);
  // operations without a model: nothing to estimate
  assert.equal(estimateRender(op('adjust'), {}, { limits: LIMITS }), null);
});

test('img2img: the effective size from the source, the steps diffusers runs, resized or not', () => {
  const params = { source: 'A', strength: 0.6, steps: 30 };
  const fitted = estimateRender(op('img2img'), params, { sourceSize: { width: 5000, height: 3000 }, limits: LIMITS });
  assert.deepEqual([fitted.width, fitted.height, fitted.steps, fitted.resized], [660, 396, 18, true]);
  assert.equal(fitted.work, 660 * 396 * 18);
  assert.equal(describeEstimate(fitted).text, 'Renders at 660×396 · 18 of 30 steps — source 5000×3000 resized to fit');
  assert.deepEqual(describeEstimate(fitted).warnings, []);
  // at the source's size: over the work limit, named
  const full = estimateRender(op('img2img'), { ...params, resize: 'none' }, { sourceSize: { width: 5000, height: 3000 }, limits: LIMITS });
  assert.deepEqual([full.width, full.height, full.resized], [5000, 3000, false]);
  assert.deepEqual(full.over.map((o) => o.limit), ['max_pixels', 'max_work']);
  const text = describeEstimate(full);
  assert.match(text.text, /^Renders at 5000×3000 · 18 of 30 steps — the source’s full size/);
  assert.match(text.warnings[0], /15 MP is over this server’s limit of 4\.2 MP \(max_pixels\)/);
  assert.match(text.warnings[1], /\(max_work\)/);
  // a small source: its own size
  assert.equal(describeEstimate(estimateRender(op('img2img'), params, { sourceSize: { width: 64, height: 48 }, limits: LIMITS })).text, 'Renders at 64×48 · 18 of 30 steps — the source’s size');
  // the source has no picture yet
  const unknown = estimateRender(op('img2img'), params, { sourceSize: null, limits: LIMITS });
  assert.equal(unknown.unknown, true);
  assert.match(describeEstimate(unknown).text, /once the source has a picture/);
  // inpaint at strength 1: every step
  assert.equal(estimateRender(op('inpaint'), { source: 'A', mask: 'M', strength: 1, steps: 30 }, { sourceSize: { width: 512, height: 512 }, limits: LIMITS }).steps, 30);
});

test('megapixels', () => {
  assert.equal(megapixels(15_000_000), '15 MP');
  assert.equal(megapixels(4_194_304), '4.2 MP');
  assert.equal(megapixels(262_144), '0.26 MP');
});
