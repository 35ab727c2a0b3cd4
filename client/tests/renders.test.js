import test from 'node:test';
import assert from 'node:assert/strict';
import { isCancelled, layerStatus, pillStatus, blockedText, formatDuration, secondsLeft, renderFraction } from '../js/renders.js';

const layer = (extra = {}) => ({ id: 'A', name: 'Sky', status: 'pending', output: null, error: null, ...extra });

test('a cancelled render is "Cancelled", not "Failed"', () => {
  assert.equal(isCancelled(layer({ status: 'failed', error: 'cancelled by u-ada' })), true);
  assert.equal(isCancelled(layer({ status: 'failed', error: 'render cancelled' })), true);
  assert.equal(isCancelled(layer({ status: 'failed', error: 'RuntimeError: out of memory' })), false);
  assert.equal(isCancelled(layer({ status: 'pending', error: 'cancelled by u' })), false);
  assert.deepEqual(layerStatus(layer({ status: 'failed', error: 'cancelled by u-ada' })), { text: 'Cancelled', kind: 'cancelled' });
  assert.deepEqual(layerStatus(layer({ status: 'failed', error: 'boom' })), { text: 'Failed: boom', kind: 'failed' });
});

test('a row says what renders, at which stage, and why a layer waits', () => {
  assert.equal(layerStatus(layer(), { rendering: true, step: 3, total: 25, stage: 'denoise' }).text, 'Rendering 3/25');
  assert.equal(layerStatus(layer(), { rendering: true, step: 25, total: 25, stage: 'decode' }).text, 'Decoding…');
  assert.equal(layerStatus(layer(), { rendering: true, step: 0, total: 0, stage: 'prepare' }).text, 'Preparing…');
  assert.equal(layerStatus(layer(), { rendering: true, step: 0, total: 0 }).text, 'Rendering…');
  assert.deepEqual(layerStatus(layer(), { rendering: false, position: 1, waitReason: 'behind 2 renders on other canvases, about 40 s' }), { text: 'Waiting: behind 2 renders on other canvases, about 40 s', kind: 'waiting' });
  assert.equal(layerStatus(layer(), { rendering: false, position: 0 }).text, 'Next to render');
  assert.equal(layerStatus(layer(), { rendering: false, position: 2 }).text, 'Queued (#3)');
  assert.equal(layerStatus(layer()).text, 'Waiting to render');
  assert.equal(layerStatus(layer({ status: 'stale', output: {} })).text, 'Out of date');
  assert.equal(layerStatus(layer({ status: 'rendered', output: {} })).text, '');
  // a past version: nothing renders there
  assert.deepEqual(layerStatus(layer(), null, { past: true }), { text: 'Not rendered at this version', kind: 'missing' });
  assert.equal(layerStatus(layer({ status: 'stale', output: {} }), null, { past: true }).text, '');
  assert.equal(renderFraction({ rendering: true, step: 5, total: 10 }), 0.5);
  assert.equal(renderFraction({ rendering: true, step: 10, total: 10, stage: 'decode' }), 1);
});

test('the pill: the running render with its ETA counting down, or why the first waits', () => {
  const layers = { A: layer(), B: layer({ id: 'B', name: 'Sea' }) };
  const renders = new Map([
    ['A', { rendering: true, step: 5, total: 25, stage: 'denoise', etaS: 12, receivedAt: 1000 }],
    ['B', { rendering: false, position: 1, etaS: 40, waitReason: 'waiting for layer “Sky” to render', receivedAt: 1000 }],
  ]);
  assert.deepEqual(pillStatus(layers, [layers.A, layers.B], renders, 3000), { title: 'Rendering “Sky”', detail: '5/25 · about 10 s left · 1 more', fraction: 0.2 });
  assert.equal(pillStatus(layers, [layers.A, layers.B], renders, 14000).detail, '5/25 · almost done · 1 more');
  const waiting = new Map([['B', { rendering: false, position: 0, etaS: 40, waitReason: 'behind 2 renders on other canvases, about 40 s', receivedAt: 0 }]]);
  assert.deepEqual(pillStatus(layers, [layers.B], waiting, 0), { title: '1 waiting to render', detail: 'behind 2 renders on other canvases, about 40 s', fraction: 0 });
  assert.equal(pillStatus(layers, [], renders, 0), null);
  assert.deepEqual(pillStatus(layers, [layers.A], new Map(), 0), { title: '1 waiting to render', detail: '', fraction: 0 });
});

test('the notice for a canvas the worker cannot schedule, with its retry counting down', () => {
  const blocked = { reason: 'its event log cannot be projected', retryInS: 30, receivedAt: 0 };
  assert.equal(blockedText(blocked, 0), 'Rendering is paused for this canvas: its event log cannot be projected — retrying in 30 s');
  assert.equal(blockedText(blocked, 12500), 'Rendering is paused for this canvas: its event log cannot be projected — retrying in 18 s');
  assert.equal(blockedText(blocked, 31000), 'Rendering is paused for this canvas: its event log cannot be projected — retrying now…');
  assert.equal(blockedText(null), '');
  assert.equal(formatDuration(40), '40 s');
  assert.equal(formatDuration(0.2), 'under a second');
  assert.equal(formatDuration(600), '10 min');
  assert.equal(secondsLeft(null, 0, 0), null);
});
