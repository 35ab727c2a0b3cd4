import test from 'node:test';
import assert from 'node:assert/strict';
import { CanvasSession } from '../js/session.js';
import { toServerJson } from '../js/state.js';
import { ev, added, rendered } from './helpers.js';

const layerJson = (id, extra = {}) => ({ id, name: id, operation: 'txt2img', params: {}, seed: 1, parents: [], visible: true, opacity: 1, revision: 1, status: 'pending', output: null, error: null, created_seq: 2, updated_seq: 2, ...extra });

function serverState(version, layers) {
  return { canvas_id: 'c1', version, name: 'n', order: layers.map((l) => l.id), layers, history: {} };
}

test('a welcome with a state, then events; presence and render progress', async () => {
  const events = [ev(1, 'canvas.created', { name: 'n' }), added(2, 'A')];
  const session = new CanvasSession({ canvasId: 'c1', fetchState: async () => null, fetchEvents: async () => ({ events }) });
  assert.equal(session.since(), undefined);
  session.handle({ type: 'welcome', version: 2, you: { conn: 'me', role: 'editor' }, state: serverState(2, [layerJson('A')]), presence: [{ conn: 'p1', user: 'u2', name: 'Bob' }], queue: [{ layer_id: 'A', position: 0, rendering: true }] });
  assert.equal(session.since(), 2);
  assert.equal(session.people.get('p1').name, 'Bob');
  assert.equal(session.renders.get('A').rendering, true);
  await session.loadTimeline();
  assert.deepEqual(session.events.map((e) => e.seq), [1, 2]);
  session.handle({ type: 'progress', layer_id: 'A', step: 3, total: 10 });
  assert.deepEqual([session.renders.get('A').step, session.renders.get('A').total], [3, 10]);
  session.handle({ type: 'render_cancelled', layer_id: 'A', reason: 'cancelled' });
  session.handle({ type: 'progress', layer_id: 'A', step: 4, total: 10 }); // trailing the cancel: ignored
  assert.equal(session.renders.has('A'), false);
  session.handle({ type: 'render_started', layer_id: 'A', revision: 1 });
  session.handle({ type: 'progress', layer_id: 'A', step: 1, total: 10 });
  assert.deepEqual([session.renders.get('A').step, session.renders.get('A').total], [1, 10]);
  session.handle({ type: 'event', seq: 3, event: rendered(3, 'A') });
  assert.equal(session.state.layers.A.status, 'rendered');
  assert.equal(session.renders.has('A'), false);
  session.handle({ type: 'presence', conn: 'me', user: 'u1' });
  assert.equal(session.people.has('me'), false);
  session.handle({ type: 'presence_left', conn: 'p1', user: 'u2' });
  assert.equal(session.people.size, 0);
  assert.deepEqual(session.events.map((e) => e.seq), [1, 2, 3]);
});

test('an event type this client does not know: the state is fetched again, later events folded on top', async () => {
  let fetched = 0;
  const session = new CanvasSession({
    canvasId: 'c1',
    fetchState: async () => {
      fetched += 1;
      return serverState(4, [layerJson('A'), layerJson('R', { created_seq: 4 })]);
    },
    fetchEvents: async () => ({ events: [] }),
  });
  session.handle({ type: 'welcome', version: 3, you: { conn: 'me' }, events: [ev(1, 'canvas.created', { name: 'n' }), added(2, 'A'), ev(3, 'layer.renamed', { layer_id: 'A', name: 'A' })] });
  assert.equal(session.version, 3);
  session.handle({ type: 'event', seq: 4, event: ev(4, 'canvas.time_travelled', {}) });
  session.handle({ type: 'event', seq: 5, event: added(5, 'B') });
  await session.resyncing;
  assert.equal(fetched, 1);
  assert.equal(session.version, 5);
  assert.deepEqual(session.state.order, ['A', 'R', 'B']);
  assert.deepEqual(toServerJson(session.state).order, ['A', 'R', 'B']);
});
