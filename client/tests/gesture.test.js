import test from 'node:test';
import assert from 'node:assert/strict';
import { Gestures } from '../js/gesture.js';
import { CommandQueue } from '../js/commands.js';
import { applyEvents, emptyState, historyCounts } from '../js/state.js';
import { ev, added } from './helpers.js';

function clock() {
  const c = { t: 0, now: () => c.t };
  return c;
}

function ids() {
  let n = 0;
  return () => `g${++n}`;
}

test('a press and everything until shortly after its release is one gesture; the next press is another', () => {
  const c = clock();
  const g = new Gestures({ now: c.now, makeId: ids(), idleMs: 700 });
  assert.equal(g.current(), null);
  g.press();
  c.t = 5000; // held for a long drag
  assert.equal(g.current(), 'g1');
  g.release();
  c.t += 300; // the slider's change event after the release
  assert.equal(g.current(), 'g1');
  c.t += 1000;
  assert.equal(g.current(), null);
  g.press();
  assert.equal(g.current(), 'g2');
});

test('a burst of arrow keys is one gesture until the keys pause; Ctrl+Z ends it', () => {
  const c = clock();
  const g = new Gestures({ now: c.now, makeId: ids(), idleMs: 700 });
  for (let i = 0; i < 5; i++) {
    g.key({ key: 'ArrowRight' });
    assert.equal(g.current(), 'g1');
    c.t += 200;
  }
  c.t += 800;
  assert.equal(g.current(), null);
  g.key({ key: 'ArrowLeft' });
  assert.equal(g.current(), 'g2');
  g.key({ key: 'z', ctrlKey: true });
  assert.equal(g.current(), null);
  g.key({ key: 'a' }); // typing is not a burst
  assert.equal(g.current(), null);
});

test('commands carry the current gesture, undo and redo never do, and a resent command keeps its own', () => {
  const sent = [];
  let gesture = 'g1';
  const queue = new CommandQueue({ send: (m) => (sent.push(m), true), gesture: () => gesture });
  queue.submit({ type: 'set_opacity', layer_id: 'A', opacity: 0.5 });
  queue.submit({ type: 'undo' });
  gesture = null;
  queue.submit({ type: 'rename_layer', layer_id: 'A', name: 'x' });
  assert.deepEqual(sent.map((m) => m.gesture ?? null), ['g1', null, null]);
  gesture = 'g2';
  sent.length = 0;
  queue.resend();
  assert.equal(sent[0].gesture, 'g1');
});

test("the client's history groups a gesture as the server's does, others' events between included", () => {
  const opacity = (seq, value, gesture, actor = 'u1') => ({ ...ev(seq, 'layer.opacity_changed', { layer_id: 'A', opacity: value }, { actor }), gesture });
  const { state } = applyEvents(emptyState('c1'), [
    ev(1, 'canvas.created', { name: 'x' }, { actor: 'creator' }),
    added(2, 'A'),
    opacity(3, 0.9, 'g1'),
    ev(4, 'layer.renamed', { layer_id: 'A', name: 'Theirs' }, { actor: 'u2' }),
    opacity(5, 0.5, 'g1'),
    opacity(6, 0.4, 'g2'),
    opacity(7, 0.3, null),
  ]);
  assert.deepEqual(historyCounts(state, 'u1'), { undo: 4, redo: 0 }, 'added, g1, g2, one without a gesture');
  assert.deepEqual(state.history.u1.undo[1], { commandId: 'cmd3', first: 3, last: 5, gesture: 'g1' });
});
