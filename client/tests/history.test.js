import test from 'node:test';
import assert from 'node:assert/strict';
import { describeEvent, actorLabel, relativeTime, timelineTicks, eventAt, mergeEvents, layerNames } from '../js/history.js';
import { ev, added, rendered } from './helpers.js';

const names = layerNames([added(2, 'A', { name: 'Sky' }), ev(3, 'layer.renamed', { layer_id: 'A', name: 'Blue sky' })]);
const ctx = { layerName: (id) => names.get(id), operationTitle: (n) => ({ txt2img: 'Text to image' })[n] || n };

test('every event type reads as a short sentence', () => {
  const cases = [
    [ev(1, 'canvas.created', { name: 'Harbour' }), 'create', 'created the canvas “Harbour”'],
    [ev(1, 'canvas.renamed', { name: 'Port' }), 'rename', 'renamed the canvas to “Port”'],
    [added(2, 'A', { name: 'Sky' }), 'add', 'added “Sky” (Text to image)'],
    [ev(4, 'layer.params_changed', { layer_id: 'A' }), 'edit', 'changed the settings of “Blue sky”'],
    [ev(4, 'layer.deleted', { layer_id: 'A' }), 'delete', 'deleted “Blue sky”'],
    [ev(4, 'layer.restored', { layers: [{ id: 'A', name: 'Sky' }], positions: [0] }), 'restore', 'brought back “Sky”'],
    [ev(4, 'layer.visibility_changed', { layer_id: 'A', visible: false }), 'visibility', 'hid “Blue sky”'],
    [ev(4, 'layer.visibility_changed', { layer_id: 'A', visible: true }), 'visibility', 'showed “Blue sky”'],
    [ev(4, 'layer.opacity_changed', { layer_id: 'A', opacity: 0.25 }), 'opacity', 'set the opacity of “Blue sky” to 25%'],
    [ev(4, 'layer.moved', { layer_id: 'A', index: 0 }), 'move', 'moved “Blue sky”'],
    [rendered(4, 'A'), 'render', 'rendered “Blue sky”'],
    [ev(4, 'layer.failed', { layer_id: 'A', reason: 'boom' }), 'fail', 'could not render “Blue sky”: boom'],
    [ev(4, 'layer.failed', { layer_id: 'A', reason: 'cancelled by u-ada' }), 'cancel', 'stopped rendering “Blue sky” (cancelled by u-ada)'],
    [ev(4, 'layer.failed', { layer_id: 'A', reason: 'render cancelled' }), 'cancel', 'stopped rendering “Blue sky” (cancelled)'],
    [ev(4, 'history.undone', {}), 'undo', 'undid an edit'],
    [ev(4, 'history.redone', {}), 'redo', 'redid an edit'],
    [ev(4, 'canvas.forked_from', {}), 'other', 'canvas forked from'],
  ];
  for (const [event, kind, text] of cases) assert.deepEqual(describeEvent(event, ctx), { kind, text });
  assert.equal(describeEvent(ev(4, 'layer.deleted', { layer_id: 'gone' })).text, 'deleted “gone”');
});

test('who: you, known names, the engine, else the id', () => {
  const known = new Map([['u-1', 'Ada']]);
  assert.equal(actorLabel('u-1', { me: 'u-1', names: known }), 'You');
  assert.equal(actorLabel('u-1', { me: 'u-2', names: known }), 'Ada');
  assert.equal(actorLabel('engine'), 'Engine');
  assert.equal(actorLabel('u-9'), 'u-9');
  assert.equal(actorLabel('t0a1b2c3d4e5f.u-9'), 'u-9'); // the token part of a bound user is not shown
});

test('relative times', () => {
  const now = 1_000_000 * 1000;
  assert.equal(relativeTime(1_000_000 - 2, now), 'just now');
  assert.equal(relativeTime(1_000_000 - 30, now), '30 s ago');
  assert.equal(relativeTime(1_000_000 - 300, now), '5 min ago');
  assert.equal(relativeTime(1_000_000 - 7300, now), '2 h ago');
});

test('timeline ticks mark what people did, not renders', () => {
  const events = [ev(1, 'canvas.created', {}, { actor: 'creator' }), added(2, 'A'), rendered(3, 'A'), added(4, 'B', { actor: 'u2' }), rendered(5, 'B')];
  assert.deepEqual(timelineTicks(events, 5), [
    { seq: 1, actor: 'creator', at: 0 },
    { seq: 2, actor: 'u1', at: 0.25 },
    { seq: 4, actor: 'u2', at: 0.75 },
  ]);
  assert.deepEqual(timelineTicks(events.slice(0, 1), 1), []);
  assert.equal(eventAt(events, 4).payload.layer_id, 'B');
  assert.equal(eventAt(events, 9), null);
});

test('merging events keeps seq order without duplicates', () => {
  const a = [ev(1, 'x', {}), ev(2, 'x', {})];
  assert.deepEqual(mergeEvents(a, [ev(3, 'x', {})]).map((e) => e.seq), [1, 2, 3]);
  assert.deepEqual(mergeEvents(a, [ev(2, 'x', {}), ev(4, 'x', {}), ev(3, 'x', {})]).map((e) => e.seq), [1, 2, 3, 4]);
  assert.equal(mergeEvents(a, []), a);
});

test('history steps: a gesture is one step across others\u2019 edits; an undo names what it took back; a restore is one step', async () => {
  const { historySteps, describeStep } = await import('../js/history.js');
  const { ev: e } = await import('./helpers.js');
  const opacity = (seq, value, gesture, actor = 'u1') => ({ ...e(seq, 'layer.opacity_changed', { layer_id: 'A', opacity: value }, { actor }), gesture });
  const events = [
    e(1, 'canvas.created', { name: 'x' }, { actor: 'creator' }),
    e(2, 'layer.added', { layer_id: 'A', name: 'Sky', operation: 'txt2img', params: {}, seed: 1, parents: [] }),
    opacity(3, 0.9, 'g1'),
    e(4, 'layer.renamed', { layer_id: 'B', name: 'Theirs' }, { actor: 'u2' }),
    opacity(5, 0.4, 'g1'),
    e(6, 'history.undone', { first_seq: 3, last_seq: 5, count: 1 }, { commandId: 'undo-1' }),
    e(7, 'layer.opacity_changed', { layer_id: 'A', opacity: 1 }, { commandId: 'undo-1' }),
    e(8, 'history.redone', { first_seq: 7, last_seq: 7, count: 1 }, { commandId: 'redo-1' }),
    e(9, 'layer.opacity_changed', { layer_id: 'A', opacity: 0.4 }, { commandId: 'redo-1' }),
    e(10, 'canvas.restored', { version: 2, count: 2 }, { commandId: 'restore-1' }),
    e(11, 'layer.opacity_changed', { layer_id: 'A', opacity: 1 }, { commandId: 'restore-1' }),
    e(12, 'layer.renamed', { layer_id: 'B', name: 'B' }, { commandId: 'restore-1' }),
  ];
  const steps = historySteps(events);
  const names = { layerName: (id) => ({ A: 'Sky', B: 'B' })[id] };
  assert.deepEqual(steps.map((s) => [s.first, s.seq]), [[1, 1], [2, 2], [3, 5], [4, 4], [6, 7], [8, 9], [10, 12]]);
  const texts = steps.map((s) => describeStep(s, names).text);
  assert.equal(texts[2], 'set the opacity of “Sky” to 40%');
  assert.equal(texts[4], 'undid: set the opacity of “Sky” to 40%');
  assert.equal(texts[5], 'redid: set the opacity of “Sky” to 40%');
  assert.equal(texts[6], 'restored version 2');
});
