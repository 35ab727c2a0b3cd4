// The provenance graph's layout (depths, no overlaps, edges pointing down), what a change re-renders and what a
// delete takes (checked against what the fold itself does), the captions, and arrow-key moves.
import test from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { NODE, depths, layoutDag, changeRerenders, deleteTakes, impactSentence, listNames, neighbour } from '../js/provenance.js';
import { applyEvents, emptyState } from '../js/state.js';
import { added, ev } from './helpers.js';

// txt2img "sea" -> img2img "dusk" -> mask "mask" (on dusk) -> inpaint "boat" (dusk + mask); "fog" another
// child of sea; "moon" unrelated.
const canvas = () =>
  applyEvents(emptyState('c1'), [
    ev(1, 'canvas.created', { name: 'Harbour' }),
    added(2, 'sea', { name: 'Sea' }),
    added(3, 'dusk', { parents: ['sea'], operation: 'img2img', name: 'Dusk' }),
    added(4, 'mask', { parents: ['dusk'], operation: 'mask', name: 'Mask' }),
    added(5, 'boat', { parents: ['dusk', 'mask', 'dusk'], operation: 'inpaint', name: 'Boat' }),
    added(6, 'fog', { parents: ['sea'], operation: 'img2img', name: 'Fog' }),
    added(7, 'moon', { name: 'Moon' }),
  ]).state;

/** Every property a drawing must have, whatever the DAG: asserted for the small canvas and the generated one. */
function assertSound(layout, state) {
  const { width: w, height: hgt, gapX } = NODE;
  const live = state.order.filter((id) => state.layers[id]);
  assert.deepEqual(layout.nodes.map((n) => n.id).sort(), [...live].sort(), 'one node per live layer');
  const depth = depths(state.layers, state.order);
  for (const node of layout.nodes) {
    const parents = (state.layers[node.id].parents || []).filter((p) => state.layers[p]);
    const expected = parents.length ? 1 + Math.max(...parents.map((p) => depth.get(p))) : 0;
    assert.equal(node.depth, expected, `${node.id}: depth is one below its deepest parent`);
    assert.equal(node.y, NODE.pad + node.depth * (hgt + NODE.gapY), `${node.id}: its row is its depth`);
    assert.ok(node.x >= NODE.pad - 1e-9 && node.x + w <= layout.width - NODE.pad + 1e-9, `${node.id}: inside the drawing`);
    assert.ok(node.y + hgt <= layout.height - NODE.pad + 1e-9);
  }
  // no two nodes overlap: those of a row are at least a gap apart, rows are distinct heights
  for (const row of layout.rows) {
    const xs = row.map((id) => layout.byId.get(id).x);
    for (let i = 1; i < xs.length; i++) assert.ok(xs[i] - xs[i - 1] >= w + gapX - 1, `row ${row}: overlap at ${i}`);
  }
  // exactly one edge per (live parent, child) pair, each pointing down, from the parent's bottom to the child's top
  const expected = new Set();
  for (const id of live) for (const p of state.layers[id].parents || []) if (state.layers[p]) expected.add(`${p}>${id}`);
  const drawn = layout.edges.map((e) => `${e.from}>${e.to}`);
  assert.equal(drawn.length, new Set(drawn).size, 'no edge twice');
  assert.deepEqual(new Set(drawn), expected);
  for (const e of layout.edges) {
    const [a, b] = [layout.byId.get(e.from), layout.byId.get(e.to)];
    assert.ok(b.depth > a.depth, `${e.from}>${e.to} points down`);
    assert.deepEqual([e.x1, e.y1, e.x2, e.y2], [a.x + w / 2, a.y + hgt, b.x + w / 2, b.y]);
    // an edge that skips rows runs down a lane no node of the rows between covers
    assert.equal(e.gutter === null, b.depth - a.depth === 1);
    if (e.gutter === null) continue;
    assert.ok(e.gutter > Math.max(a.x, b.x) + w && e.gutter < layout.width, `${e.from}>${e.to}: its lane is right of both ends`);
    for (let d = a.depth + 1; d < b.depth; d++) {
      for (const id of layout.rows[d]) {
        const n = layout.byId.get(id);
        assert.ok(e.gutter < n.x || e.gutter > n.x + w, `${e.from}>${e.to} runs under ${id}`);
      }
    }
  }
}

test('depths: a layer sits one row below its deepest parent', () => {
  const state = canvas();
  assert.deepEqual(Object.fromEntries(depths(state.layers, state.order)), { sea: 0, dusk: 1, mask: 2, boat: 3, fog: 1, moon: 0 });
});

test('the layout of a chain and a branch: rows by depth, no overlaps, one edge per parent', () => {
  const state = canvas();
  const layout = layoutDag(state.layers, state.order);
  assertSound(layout, state);
  assert.deepEqual(layout.rows, [['sea', 'moon'], ['dusk', 'fog'], ['mask'], ['boat']]);
  assert.equal(layout.edges.length, 5); // sea>dusk, dusk>mask, dusk>boat, mask>boat, sea>fog (boat reads dusk twice: once)
  // dusk>boat skips the mask's row: it runs down the lane right of the first column, not under the mask
  assert.equal(layout.edges.find((e) => e.from === 'dusk' && e.to === 'boat').gutter, NODE.pad + NODE.width + NODE.gapX / 2);
  // a chain runs straight down, a branch steps right: two columns, as narrow as this DAG can be drawn
  const x = Object.fromEntries(layout.nodes.map((n) => [n.id, n.x]));
  assert.equal(x.sea, NODE.pad);
  assert.deepEqual([x.dusk, x.mask, x.boat], [x.sea, x.sea, x.sea]);
  assert.equal(x.fog, x.sea + NODE.width + NODE.gapX);
  assert.equal(layout.width, 2 * NODE.width + NODE.gapX + 2 * NODE.pad);
});

test('a second tree\'s root sits over its tree, not far left of it', () => {
  // r0 has three children, r1 one: r1's child is pushed to the fourth column, and r1 follows it there
  const layers = {};
  const put = (id, parents = []) => (layers[id] = { id, parents });
  put('r0');
  put('r1');
  for (const c of ['a', 'b', 'c']) put(c, ['r0']);
  put('g', ['r1']);
  put('h', ['g']);
  const order = ['r0', 'r1', 'a', 'b', 'c', 'g', 'h'];
  const layout = layoutDag(layers, order);
  assertSound(layout, { layers, order });
  const column = Object.fromEntries(layout.nodes.map((n) => [n.id, n.column]));
  assert.deepEqual(column, { r0: 0, r1: 3, a: 0, b: 1, c: 2, g: 3, h: 3 });
});

test('a layer whose parent is gone (a past version, a deletion in flight) is a root with no dangling edge', () => {
  const state = canvas();
  const layers = { ...state.layers };
  delete layers.sea;
  const layout = layoutDag(layers, state.order);
  assert.equal(layout.byId.get('dusk').depth, 0);
  assert.ok(layout.edges.every((e) => e.from !== 'sea'));
  assert.deepEqual(layoutDag({}, []), { nodes: [], byId: new Map(), rows: [], edges: [], width: 0, height: 0 });
});

test('the stack order does not matter: a child moved below its parent still sits under it', () => {
  const state = canvas();
  const order = ['boat', 'fog', 'mask', 'dusk', 'moon', 'sea'];
  assertSound(layoutDag(state.layers, order), { ...state, order });
});

test('a generated DAG of 500 layers: sound, and laid out quickly', (t) => {
  let seed = 42; // a small deterministic generator, so a failure can be replayed
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  const layers = {};
  const order = [];
  for (let i = 0; i < 500; i++) {
    const id = `L${i}`;
    const parents = [];
    if (i && random() < 0.85) {
      const count = 1 + Math.floor(random() * 3);
      for (let k = 0; k < count; k++) parents.push(`L${Math.floor(random() * i)}`);
    }
    layers[id] = { id, name: id, parents };
    order.push(id);
  }
  order.sort(() => random() - 0.5); // reordered stacks: the layout must not rely on parents coming first
  const start = performance.now();
  const layout = layoutDag(layers, order);
  const took = performance.now() - start;
  t.diagnostic(`500 layers, ${layout.edges.length} edges, ${layout.rows.length} rows: laid out in ${took.toFixed(1)} ms`);
  assertSound(layout, { layers, order });
});

test('a chain of 5,000 does not overflow the stack', () => {
  const layers = {};
  const order = [];
  for (let i = 0; i < 5000; i++) {
    layers[`c${i}`] = { id: `c${i}`, parents: i ? [`c${i - 1}`] : [] };
    order.unshift(`c${i}`);
  }
  assert.equal(depths(layers, order).get('c4999'), 4999);
});

test('what a change re-renders is what the fold marks out of date', () => {
  const state = canvas();
  const rendered = { ...state, layers: Object.fromEntries(Object.entries(state.layers).map(([id, l]) => [id, { ...l, status: 'rendered', output: { sha256: 'a' } }])) };
  for (const id of state.order) {
    const after = applyEvents(rendered, [ev(8, 'layer.params_changed', { layer_id: id, params: {}, parents: state.layers[id].parents })]).state;
    const stale = state.order.filter((other) => other !== id && after.layers[other].status === 'stale');
    assert.deepEqual(changeRerenders(state, id), stale, id);
  }
  assert.deepEqual(changeRerenders(state, 'sea'), ['dusk', 'mask', 'boat', 'fog']);
  assert.deepEqual(changeRerenders(state, 'dusk'), ['mask', 'boat']);
  assert.deepEqual(changeRerenders(state, 'nope'), []);
});

test('what a delete takes is what the fold deletes, the layer first then top of the stack first', () => {
  const state = canvas();
  for (const id of state.order) {
    const after = applyEvents(state, [ev(8, 'layer.deleted', { layer_id: id })]).state;
    const gone = state.order.filter((other) => !after.layers[other]);
    assert.deepEqual([...deleteTakes(state, id)].sort(), gone.sort(), id);
  }
  assert.deepEqual(deleteTakes(state, 'dusk'), ['dusk', 'boat', 'mask']);
  assert.deepEqual(deleteTakes(state, 'moon'), ['moon']);
  assert.deepEqual(deleteTakes(state, 'nope'), []);
});

test('captions name what re-renders and what goes', () => {
  const state = canvas();
  assert.equal(impactSentence(state, 'dusk', 'change'), 'Changing “Dusk” re-renders it and 2 layers made from it: “Mask” and “Boat”.');
  assert.equal(impactSentence(state, 'moon', 'change'), 'Changing “Moon” re-renders only itself.');
  assert.equal(impactSentence(state, 'sea', 'delete'), 'Deleting “Sea” also deletes 4 layers made from it: “Fog”, “Boat”, “Mask” and “Dusk”.');
  assert.equal(impactSentence(state, 'mask', 'delete'), 'Deleting “Mask” also deletes 1 layer made from it: “Boat”.');
  assert.equal(impactSentence(state, 'boat', 'delete'), 'Deleting “Boat” takes only itself: nothing was made from it.');
  assert.equal(impactSentence(state, 'nope', 'delete'), '');
  assert.equal(listNames(['a', 'b', 'c', 'd', 'e', 'f']), '“a”, “b”, “c” and 3 more');
  assert.equal(listNames(['a']), '“a”');
});

test('arrow keys: along a row, up to a parent, down to a child', () => {
  const state = canvas();
  const layout = layoutDag(state.layers, state.order);
  assert.equal(neighbour(layout, state.layers, 'sea', 'ArrowRight'), 'moon');
  assert.equal(neighbour(layout, state.layers, 'moon', 'ArrowRight'), 'moon');
  assert.equal(neighbour(layout, state.layers, 'sea', 'ArrowDown'), 'dusk');
  assert.equal(neighbour(layout, state.layers, 'boat', 'ArrowUp'), 'dusk');
  assert.equal(neighbour(layout, state.layers, 'sea', 'ArrowUp'), 'sea');
  assert.equal(neighbour(layout, state.layers, 'gone', 'ArrowUp'), 'sea');
});
