import test from 'node:test';
import assert from 'node:assert/strict';
import { applyEvent, applyEvents, emptyState, fromServer, historyCounts, stack, toServerJson, KNOWN_EVENT_TYPES } from '../js/state.js';
import { ev, added, rendered } from './helpers.js';

const created = ev(1, 'canvas.created', { name: 'Harbour' }, { actor: 'creator', commandId: null });

function fold(events) {
  const result = applyEvents(emptyState('c1'), events);
  assert.equal(result.status, 'applied');
  return result.state;
}

test('layers are added on top of the stack and rendered at their revision', () => {
  const state = fold([created, added(2, 'A'), added(3, 'B', { parents: ['A'], operation: 'img2img' }), rendered(4, 'A')]);
  assert.equal(state.name, 'Harbour');
  assert.deepEqual(state.order, ['A', 'B']);
  assert.equal(state.layers.A.status, 'rendered');
  assert.equal(state.layers.A.output.sha256, 'a'.repeat(64));
  assert.equal(state.layers.B.status, 'pending');
  assert.equal(state.version, 4);
  assert.deepEqual(stack(state).map((l) => l.id), ['A', 'B']);
});

test('a run of events folds as one event at a time does, and leaves the state it is given unchanged', () => {
  const before = fold([created, added(2, 'A'), added(3, 'B', { parents: ['A'], operation: 'img2img' })]);
  const frozen = JSON.stringify(before);
  const run = [
    rendered(4, 'A'),
    ev(5, 'layer.renamed', { layer_id: 'B', name: 'Sky' }),
    added(6, 'C'),
    ev(7, 'layer.deleted', { layer_id: 'A' }),
    ev(8, 'history.undone', { first_seq: 7, last_seq: 7, count: 1 }, { actor: 'u1' }),
  ];
  const together = applyEvents(before, run);
  let oneByOne = before;
  for (const event of run) oneByOne = applyEvent(oneByOne, event).state;
  assert.equal(together.status, 'applied');
  assert.deepEqual(toServerJson(together.state), toServerJson(oneByOne));
  assert.deepEqual(together.state.deleted, oneByOne.deleted);
  assert.equal(JSON.stringify(before), frozen);
  assert.equal(applyEvents(before, []).state, before);
  const stopped = applyEvents(before, [rendered(4, 'A'), added(6, 'C')]);
  assert.equal(stopped.status, 'gap');
  assert.equal(stopped.at, 6);
  assert.equal(stopped.state.version, 4);
});

test('a long run over a changing DAG folds as one event at a time does (the fold keeps its children index)', () => {
  // adds with parents, params changes that move a layer to other parents, cascading deletes, restores, moves:
  // every way the children index of one draft is extended, rebuilt or trimmed
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const pick = (items) => items[Math.floor(random() * items.length)];
  const run = [];
  let live = [];
  const gone = [];
  for (let seq = 2; seq < 900; seq++) {
    const roll = random();
    if ((roll < 0.3 && live.length < 12) || live.length < 3) { // a small DAG: events meet on the same layers
      const parents = live.length && random() < 0.7 ? [pick(live)] : [];
      run.push(added(seq, `L${seq}`, { parents, operation: parents.length ? 'img2img' : 'txt2img' }));
      live.push(`L${seq}`);
    } else if (roll < 0.45) {
      const id = pick(live);
      const parents = random() < 0.7 ? run.findLast((e) => e.payload.layer_id === id && e.payload.parents)?.payload.parents ?? []
        : [pick(live.filter((other) => other !== id))];
      run.push(ev(seq, 'layer.params_changed', { layer_id: id, params: { n: seq }, seed: 1, parents }));
    } else if (roll < 0.55) {
      const id = pick(live);
      run.push(ev(seq, 'layer.deleted', { layer_id: id }));
      gone.push(id);
    } else if (roll < 0.6 && gone.length) {
      const id = pick(gone);
      const layer = { id, name: id, operation: 'txt2img', params: {}, seed: 1, parents: [], visible: true, opacity: 1,
        revision: 1, status: 'pending', output: null, error: null, created_seq: 1, updated_seq: 1 };
      run.push(ev(seq, 'layer.restored', { layers: [layer], positions: [0] }));
    } else if (roll < 0.75) {
      run.push(ev(seq, 'layer.render_requested', { layer_id: pick(live) }));
    } else {
      run.push(ev(seq, 'layer.moved', { layer_id: pick(live), index: Math.floor(random() * live.length) }));
    }
    live = live.filter((id) => !gone.includes(id)); // approximate: the fold decides what a delete takes
  }
  const together = applyEvents(emptyState('c1'), [created, ...run]);
  let oneByOne = applyEvent(emptyState('c1'), created).state;
  for (const event of run) oneByOne = applyEvent(oneByOne, event).state;
  assert.equal(together.status, 'applied');
  assert.deepEqual(toServerJson(together.state), toServerJson(oneByOne));
  assert.deepEqual([...together.state.deleted].sort(), [...oneByOne.deleted].sort());
  assert.deepEqual(Object.keys(together.state.layers).sort(), [...together.state.order].sort()); // nothing stray
  assert.ok(together.state.order.length > 20 && together.state.deleted.length > 20);
});

test('applyEvent never changes the state it is given', () => {
  const before = fold([created, added(2, 'A')]);
  const frozen = JSON.stringify(before);
  applyEvent(before, ev(3, 'layer.renamed', { layer_id: 'A', name: 'Sky' }));
  assert.equal(JSON.stringify(before), frozen);
});

test('a params change makes the layer and its descendants stale, bumping revisions', () => {
  let state = fold([created, added(2, 'A'), added(3, 'B', { parents: ['A'] }), added(4, 'C'), rendered(5, 'A'), rendered(6, 'B')]);
  state = applyEvent(state, ev(7, 'layer.params_changed', { layer_id: 'A', params: { prompt: 'x' }, seed: 9, parents: [] })).state;
  assert.equal(state.layers.A.status, 'stale');
  assert.equal(state.layers.A.revision, 2);
  assert.equal(state.layers.A.seed, 9);
  assert.equal(state.layers.B.status, 'stale');
  assert.equal(state.layers.B.revision, 2);
  assert.equal(state.layers.C.revision, 1);
  // a render of the old revision changes nothing but the version
  state = applyEvent(state, rendered(8, 'A', 1, 'b'.repeat(64))).state;
  assert.equal(state.layers.A.status, 'stale');
  assert.equal(state.version, 8);
});

test('deleting a layer deletes its descendants; the id is never reused', () => {
  let state = fold([created, added(2, 'A'), added(3, 'M', { parents: ['A'], operation: 'mask' }), added(4, 'I', { parents: ['A', 'M'] }), added(5, 'X')]);
  state = applyEvent(state, ev(6, 'layer.deleted', { layer_id: 'A' })).state;
  assert.deepEqual(state.order, ['X']);
  assert.deepEqual(Object.keys(state.layers), ['X']);
  state = applyEvent(state, added(7, 'A')).state;
  assert.deepEqual(state.order, ['X']);
});

test('restored layers come back at their positions when their parents exist', () => {
  let state = fold([created, added(2, 'A'), added(3, 'B'), added(4, 'C', { parents: ['A'] })]);
  const snapshot = state.layers;
  state = applyEvent(state, ev(5, 'layer.deleted', { layer_id: 'A' })).state;
  assert.deepEqual(state.order, ['B']);
  state = applyEvent(state, ev(6, 'layer.restored', { layers: [snapshot.A, snapshot.C], positions: [0, 2] })).state;
  assert.deepEqual(state.order, ['A', 'B', 'C']);
  assert.equal(state.layers.A.updated_seq, 6);
  assert.ok(!state.deleted.includes('A'));
});

test('visibility, opacity (clamped), rename and move', () => {
  let state = fold([created, added(2, 'A'), added(3, 'B'), added(4, 'C')]);
  state = applyEvents(state, [
    ev(5, 'layer.visibility_changed', { layer_id: 'B', visible: false }),
    ev(6, 'layer.opacity_changed', { layer_id: 'B', opacity: 1.5 }),
    ev(7, 'layer.renamed', { layer_id: 'B', name: 'Bee' }),
    ev(8, 'layer.moved', { layer_id: 'C', index: 0 }),
    ev(9, 'layer.moved', { layer_id: 'A', index: 99 }),
  ]).state;
  assert.equal(state.layers.B.visible, false);
  assert.equal(state.layers.B.opacity, 1);
  assert.equal(state.layers.B.name, 'Bee');
  assert.deepEqual(state.order, ['C', 'B', 'A']);
});

test('failed renders keep their reason; a render request makes them pending again', () => {
  let state = fold([created, added(2, 'A')]);
  state = applyEvent(state, ev(3, 'layer.failed', { layer_id: 'A', revision: 1, reason: 'render cancelled' }, { actor: 'engine' })).state;
  assert.equal(state.layers.A.status, 'failed');
  assert.equal(state.layers.A.error, 'render cancelled');
  state = applyEvent(state, ev(4, 'layer.render_requested', { layer_id: 'A' })).state;
  assert.equal(state.layers.A.status, 'pending');
  assert.equal(state.layers.A.error, null);
  assert.equal(state.layers.A.revision, 2);
});

test('duplicates are ignored; gaps and unknown event types ask for a resync', () => {
  const state = fold([created, added(2, 'A')]);
  assert.equal(applyEvent(state, added(2, 'A')).status, 'duplicate');
  assert.equal(applyEvent(state, added(4, 'B')).status, 'gap');
  assert.equal(applyEvent(state, ev(3, 'canvas.teleported', {})).status, 'unknown');
  const partial = applyEvents(state, [added(3, 'B'), ev(4, 'canvas.teleported', {}), added(5, 'C')]);
  assert.equal(partial.status, 'unknown');
  assert.equal(partial.at, 4);
  assert.equal(partial.state.version, 3);
  assert.ok(KNOWN_EVENT_TYPES.has('layer.restored'));
});

test('undo history: runs of one command are one step; an undo moves it to redo; a new edit clears redo', () => {
  let state = fold([
    created,
    added(2, 'A', { actor: 'ada', commandId: 'k1' }),
    ev(3, 'layer.renamed', { layer_id: 'A', name: 'x' }, { actor: 'ada', commandId: 'k2' }),
    ev(4, 'layer.opacity_changed', { layer_id: 'A', opacity: 0.5 }, { actor: 'ada', commandId: 'k2' }),
    rendered(5, 'A'),
    added(6, 'B', { actor: 'bob', commandId: 'k3' }),
  ]);
  assert.deepEqual(historyCounts(state, 'ada'), { undo: 2, redo: 0 });
  assert.deepEqual(historyCounts(state, 'bob'), { undo: 1, redo: 0 });
  assert.deepEqual(historyCounts(state, 'engine'), { undo: 0, redo: 0 });
  state = applyEvents(state, [
    ev(7, 'history.undone', { first_seq: 3, last_seq: 4, count: 2 }, { actor: 'ada', commandId: 'k4' }),
    ev(8, 'layer.opacity_changed', { layer_id: 'A', opacity: 1 }, { actor: 'ada', commandId: 'k4' }),
    ev(9, 'layer.renamed', { layer_id: 'A', name: 'A' }, { actor: 'ada', commandId: 'k4' }),
  ]).state;
  assert.deepEqual(historyCounts(state, 'ada'), { undo: 1, redo: 1 });
  state = applyEvent(state, ev(10, 'history.redone', { first_seq: 8, last_seq: 9, count: 1 }, { actor: 'ada', commandId: 'k5' })).state;
  state = applyEvent(state, ev(11, 'layer.renamed', { layer_id: 'A', name: 'x' }, { actor: 'ada', commandId: 'k5' })).state;
  assert.deepEqual(historyCounts(state, 'ada'), { undo: 2, redo: 0 });
  state = applyEvent(state, ev(12, 'history.undone', { first_seq: 11, last_seq: 11, count: 1 }, { actor: 'ada', commandId: 'k6' })).state;
  state = applyEvent(state, ev(13, 'layer.renamed', { layer_id: 'A', name: 'A' }, { actor: 'ada', commandId: 'k6' })).state;
  assert.deepEqual(historyCounts(state, 'ada'), { undo: 1, redo: 1 });
  state = applyEvent(state, ev(14, 'layer.visibility_changed', { layer_id: 'A', visible: false }, { actor: 'ada', commandId: 'k7' })).state;
  assert.deepEqual(historyCounts(state, 'ada'), { undo: 2, redo: 0 });
});

test('from the server JSON: undo counts become stand-in entries that undo and redo still count right', () => {
  const json = {
    canvas_id: 'c1', version: 5, name: 'n', order: ['A'],
    layers: [{ id: 'A', name: 'A', operation: 'txt2img', params: {}, seed: 1, parents: [], visible: true, opacity: 1, revision: 1, status: 'rendered', output: null, error: null, created_seq: 2, updated_seq: 3, placement: { x: 40, y: -8, scale: 0.5, rotation: 90, flip_x: true, flip_y: false } }],
    history: { ada: { undo: 2, redo: 1 } },
    origin: { kind: 'fork', canvas_id: 'c0', version: 3 },
    checkpoints: [{ version: 2, label: 'before the sky' }],
    document: { width: 640, height: 480, background: '#202020' },
  };
  let state = fromServer(json);
  assert.deepEqual(toServerJson(state), json);
  state = applyEvents(state, [
    ev(6, 'history.undone', { first_seq: 4, last_seq: 4, count: 1 }, { actor: 'ada', commandId: 'u' }),
    ev(7, 'layer.renamed', { layer_id: 'A', name: 'B' }, { actor: 'ada', commandId: 'u' }),
  ]).state;
  assert.deepEqual(historyCounts(state, 'ada'), { undo: 1, redo: 2 });
  assert.equal(state.layers.A.name, 'B');
});

test('checkpoints: a version gets a name, a new name replaces it, an empty one removes it', () => {
  const named = (seq, version, label) => ev(seq, 'version.named', { version, label }, { actor: 'ada' });
  let state = fold([created, added(2, 'A'), named(3, 2, 'before the sky'), named(4, 1, 'empty')]);
  assert.deepEqual(toServerJson(state).checkpoints, [{ version: 1, label: 'empty' }, { version: 2, label: 'before the sky' }]);
  state = applyEvents(state, [named(5, 2, 'the sky'), named(6, 1, '')]).state;
  assert.deepEqual(state.checkpoints, { 2: 'the sky' });
});

test('the document takes the first picture\'s size until resized; a transform places a layer; restore keeps places', () => {
  let state = fold([created, added(2, 'A'), rendered(3, 'A')]);
  assert.deepEqual(state.document, { width: 64, height: 64, background: null });
  state = applyEvents(state, [
    ev(4, 'canvas.resized', { width: 256, height: 128, background: '#ffffff' }),
    ev(5, 'layer.transformed', { layer_id: 'A', x: 100, y: 20, scale: 2, rotation: 0, flip_x: false, flip_y: true }),
    rendered(6, 'A'), // a later render does not change the document
  ]).state;
  assert.deepEqual(state.document, { width: 256, height: 128, background: '#ffffff' });
  assert.deepEqual(state.layers.A.placement, { x: 100, y: 20, scale: 2, rotation: 0, flip_x: false, flip_y: true });
  const json = toServerJson(state);
  assert.deepEqual(fromServer(json).layers.A.placement, state.layers.A.placement);
});
