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

const JPEG = 'data:image/jpeg;base64,/9j/4AAQSkZJRg==';
const previewOf = (id, step, extra = {}) => ({ type: 'preview', layer_id: id, step, total: 10, width: 64, height: 64, render_width: 512, render_height: 512, image: JPEG, ...extra });

function liveSession(queue = [], extra = {}) {
  let clock = 1000;
  const session = new CanvasSession({ canvasId: 'c1', fetchState: async () => null, fetchEvents: async () => ({ events: [] }), now: () => clock });
  session.handle({ type: 'welcome', version: 3, you: { conn: 'me', role: 'editor' }, events: [ev(1, 'canvas.created', { name: 'n' }), added(2, 'A'), added(3, 'B')], queue, ...extra });
  return { session, tick: (ms) => (clock += ms) };
}

test('previews: kept while the render runs, dropped at its end, a late one ignored', () => {
  const { session } = liveSession();
  const seen = [];
  session.subscribe((what) => seen.push(what));
  session.handle(previewOf('A', 1)); // not known to be rendering: ignored
  assert.equal(session.previews.size, 0);
  session.handle({ type: 'render_started', layer_id: 'A', revision: 1, user: 'u-ada' });
  assert.equal(session.renders.get('A').user, 'u-ada');
  session.handle({ type: 'progress', layer_id: 'A', step: 2, total: 10 });
  assert.equal(session.renders.get('A').stage, 'denoise'); // absent from old servers
  session.handle(previewOf('A', 2));
  const preview = session.previews.get('A');
  assert.deepEqual([preview.image, preview.renderWidth, preview.renderHeight, preview.width], [JPEG, 512, 512, 64]);
  assert.ok(seen.includes('preview'));
  session.handle(previewOf('A', 3, { image: 'https://elsewhere.example/x.jpg' })); // only data: images
  assert.equal(session.previews.get('A').step, 2);
  session.handle(previewOf('A', 4));
  assert.equal(session.previews.get('A').step, 4);
  session.handle({ type: 'progress', layer_id: 'A', step: 9, total: 10, stage: 'decode' });
  assert.equal(session.renders.get('A').stage, 'decode');
  session.handle({ type: 'render_finished', layer_id: 'A', output: 'a'.repeat(64), cached: false });
  assert.equal(session.previews.has('A'), false);
  // a preview arriving after render_finished is ignored, and so is progress
  session.handle(previewOf('A', 10));
  session.handle({ type: 'progress', layer_id: 'A', step: 10, total: 10 });
  assert.equal(session.previews.has('A'), false);
  assert.equal(session.renders.has('A'), false);
  // even when a stale queue message still lists it as rendering
  session.handle({ type: 'queue', canvas_id: 'c1', queue: [{ layer_id: 'A', position: 0, rendering: true, ahead: 0, ahead_elsewhere: 0, eta_s: 1, wait_reason: null }], blocked: null });
  session.handle(previewOf('A', 10));
  assert.equal(session.previews.has('A'), false);
  // a new render of it: previews again
  session.handle({ type: 'render_started', layer_id: 'A', revision: 2, user: 'u-ada' });
  session.handle(previewOf('A', 1));
  assert.equal(session.previews.get('A').step, 1);
});

test('previews end with the durable outcome, a cancellation, a failure, or the layer leaving', () => {
  const { session } = liveSession([{ layer_id: 'A', position: 0, rendering: true }, { layer_id: 'B', position: 1, rendering: false }]);
  session.handle(previewOf('A', 1)); // the welcome said it renders
  assert.equal(session.previews.has('A'), true);
  session.handle({ type: 'event', seq: 4, event: rendered(4, 'A') });
  assert.equal(session.previews.has('A'), false);
  session.handle(previewOf('A', 2));
  assert.equal(session.previews.has('A'), false);
  session.handle({ type: 'render_started', layer_id: 'B', revision: 1 });
  session.handle(previewOf('B', 1));
  assert.equal(session.previews.has('B'), true);
  session.handle({ type: 'render_cancelled', layer_id: 'B', reason: 'cancelled by u1' });
  assert.equal(session.previews.has('B'), false);
  session.handle(previewOf('B', 2));
  assert.equal(session.previews.has('B'), false);
  // the layer deleted while it renders
  session.handle({ type: 'render_started', layer_id: 'B', revision: 1 });
  session.handle(previewOf('B', 3));
  session.handle({ type: 'event', seq: 5, event: ev(5, 'layer.deleted', { layer_id: 'B' }) });
  assert.equal(session.state.layers.B, undefined);
  assert.equal(session.previews.has('B'), false);
  session.handle(previewOf('B', 4));
  assert.equal(session.previews.has('B'), false);
});

test('the queue: why a layer waits, its ETA, and a canvas the worker cannot schedule', () => {
  const { session, tick } = liveSession([], { render_blocked: { reason: 'its log cannot be read', retry_in_s: 30 } });
  assert.deepEqual(session.blocked, { reason: 'its log cannot be read', retryInS: 30, receivedAt: 1000 });
  session.handle({
    type: 'queue',
    canvas_id: 'c1',
    blocked: null,
    queue: [
      { layer_id: 'A', position: 0, rendering: true, user: 'u-ada', ahead: 0, ahead_elsewhere: 0, eta_s: 12, wait_reason: null },
      { layer_id: 'B', position: 1, rendering: false, user: 'u-bob', ahead: 3, ahead_elsewhere: 2, eta_s: 40, wait_reason: 'behind 2 renders on other canvases, about 40 s' },
    ],
  });
  assert.equal(session.blocked, null);
  const b = session.renders.get('B');
  assert.deepEqual([b.rendering, b.position, b.ahead, b.aheadElsewhere, b.etaS, b.waitReason, b.user], [false, 1, 3, 2, 40, 'behind 2 renders on other canvases, about 40 s', 'u-bob']);
  assert.equal(session.renders.get('A').rendering, true);
  session.handle({ type: 'progress', layer_id: 'A', step: 5, total: 10 });
  tick(2000);
  // the next queue keeps the running render's progress
  session.handle({ type: 'queue', canvas_id: 'c1', blocked: { reason: 'x', retry_in_s: 8 }, queue: [{ layer_id: 'A', position: 0, rendering: true, ahead: 0, ahead_elsewhere: 0, eta_s: 6, wait_reason: null }] });
  assert.deepEqual([session.renders.get('A').step, session.renders.get('A').etaS, session.renders.get('A').receivedAt], [5, 6, 3000]);
  assert.equal(session.renders.has('B'), false); // no longer queued
  assert.equal(session.blocked.retryInS, 8);
  // the worker's own notices
  session.handle({ type: 'render_unblocked' });
  assert.equal(session.blocked, null);
  session.handle({ type: 'render_blocked', reason: 'this canvas cannot be scheduled: TypeError: x', attempts: 2, since: 1, retry_in_s: 4 });
  assert.deepEqual(session.blocked, { reason: 'this canvas cannot be scheduled: TypeError: x', retryInS: 4, receivedAt: 3000, attempts: 2 });
  // another canvas's queue is not this one's
  session.handle({ type: 'queue', canvas_id: 'c2', blocked: null, queue: [] });
  assert.equal(session.renders.has('A'), true);
  // the welcome's items have the same shape
  const { session: other } = liveSession([{ layer_id: 'B', position: 0, rendering: false, ahead: 1, ahead_elsewhere: 1, eta_s: 20, wait_reason: 'behind 1 render on another canvas, about 20 s' }]);
  assert.equal(other.renders.get('B').waitReason, 'behind 1 render on another canvas, about 20 s');
  assert.equal(other.blocked, null);
});
