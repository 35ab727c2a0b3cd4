import test from 'node:test';
import assert from 'node:assert/strict';
import { descendants, ancestors, deletionImpact, allowedInputs } from '../js/dag.js';

const layer = (id, parents = []) => ({ id, name: id.toUpperCase(), parents });
const state = {
  order: ['a', 'b', 'm', 'i', 'x', 'c'],
  layers: Object.fromEntries(
    [layer('a'), layer('b'), layer('m', ['a']), layer('i', ['a', 'm']), layer('x'), layer('c', ['i', 'b'])].map((l) => [l.id, l]),
  ),
};

test('descendants follow parents transitively, in stack order', () => {
  assert.deepEqual(descendants(state.layers, state.order, 'a'), ['m', 'i', 'c']);
  assert.deepEqual(descendants(state.layers, state.order, 'b'), ['c']);
  assert.deepEqual(descendants(state.layers, state.order, 'x'), []);
});

test('ancestors', () => {
  assert.deepEqual([...ancestors(state.layers, 'c')].sort(), ['a', 'b', 'i', 'm']);
  assert.deepEqual([...ancestors(state.layers, 'nope')], []);
});

test('deleting shows the layer and every dependent, top first', () => {
  const impact = deletionImpact(state, 'a');
  assert.equal(impact.layer.id, 'a');
  assert.deepEqual(impact.dependents.map((l) => l.id), ['c', 'i', 'm']);
  assert.deepEqual(deletionImpact(state, 'zzz'), { layer: null, dependents: [] });
});

test('a layer may not read itself or anything made from it', () => {
  assert.deepEqual(allowedInputs(state, 'm'), ['a', 'b', 'x']);
  assert.deepEqual(allowedInputs(state, null), state.order);
});
