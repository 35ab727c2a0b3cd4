// The provenance graph, DOM-free: where each live layer of the DAG sits in a layered drawing (depth = the
// longest chain of parents above it, so every edge points down), what re-renders when a layer's params change
// and what deleting it takes with it (both from dag.js, the same functions the fold and the delete dialog use),
// the sentences that say so, and which node the arrow keys move to. js/ui/provenance-view.js draws it.

import { descendants, deletionImpact } from './dag.js';

/** Node size and spacing in CSS pixels; the view's styles use the same numbers. */
export const NODE = { width: 120, height: 44, gapX: 10, gapY: 30, pad: 10 };

/** Each live layer's parents that are live too, once each (an inpaint may read one layer as source and mask). */
function liveParents(layers, ids) {
  const live = new Set(ids);
  return new Map(ids.map((id) => [id, [...new Set((layers[id].parents || []).filter((p) => p !== id && live.has(p)))]]));
}

/** id -> depth: 0 for a layer made from nothing, else one more than its deepest parent. Iterative, so a deep
 * chain cannot overflow the stack; a cycle (which the server never makes) is broken rather than looped on. */
export function depths(layers, order) {
  const ids = order.filter((id) => layers[id]);
  const parents = liveParents(layers, ids);
  const depth = new Map();
  const visiting = new Set();
  for (const start of ids) {
    const stack = [start];
    while (stack.length) {
      const current = stack[stack.length - 1];
      if (depth.has(current)) {
        stack.pop();
        continue;
      }
      visiting.add(current);
      const waiting = parents.get(current).filter((p) => !depth.has(p) && !visiting.has(p));
      if (waiting.length) {
        stack.push(...waiting);
        continue;
      }
      let d = 0;
      for (const p of parents.get(current)) if (depth.has(p)) d = Math.max(d, depth.get(p) + 1);
      depth.set(current, d);
      visiting.delete(current);
      stack.pop();
    }
  }
  return depth;
}

/**
 * The drawing of the DAG: {nodes: [{id, depth, column, x, y}], byId, rows: [[id]] (left to right), edges:
 * [{from, to, x1, y1, x2, y2, gutter}], width, height}. An edge runs from the bottom centre of the parent to the
 * top centre of the child; one that skips rows runs down `gutter`, the x of the free lane right of a column, so
 * it never passes under a node of the rows between (null for an edge to the next row).
 * Rows are depths, columns a grid. In a row a layer wants the column of its parents (their mean), ties by
 * stack order (older left), and is pushed right just enough not to overlap: as in a git graph, a chain runs
 * straight down and a branch steps right, which keeps a small canvas within the narrow side panel (centring
 * a parent over its children would spend half a column on each side); then parents move right over their
 * children where there is room. O(n log n + edges): a few milliseconds for 500 layers.
 */
export function layoutDag(layers, order, options = {}) {
  const { width: w, height: hgt, gapX, gapY, pad } = { ...NODE, ...options };
  const ids = order.filter((id) => layers[id]);
  const stackIndex = new Map(ids.map((id, i) => [id, i]));
  const parents = liveParents(layers, ids);
  const depth = depths(layers, order);
  const rows = [];
  for (const id of ids) (rows[depth.get(id)] ||= []).push(id);
  const column = new Map();
  for (let d = 0; d < rows.length; d++) {
    const row = rows[d] || [];
    const wanted = new Map();
    for (const id of row) {
      const ps = parents.get(id).filter((p) => column.has(p));
      wanted.set(id, ps.length ? Math.round(ps.reduce((sum, p) => sum + column.get(p), 0) / ps.length) : 0);
    }
    // roots keep the stack's order; children go where their parents are
    if (d > 0) row.sort((a, b) => wanted.get(a) - wanted.get(b) || stackIndex.get(a) - stackIndex.get(b));
    let next = 0;
    for (const id of row) {
      const c = Math.max(wanted.get(id), next);
      column.set(id, c);
      next = c + 1;
    }
  }
  // then, bottom row first, a parent pushed left of all its children moves right over the first of them when
  // its row has room there (never past its right-hand neighbour): a second tree's root sits over its tree
  const children = new Map(ids.map((id) => [id, []]));
  for (const id of ids) for (const p of parents.get(id)) children.get(p).push(id);
  for (let d = rows.length - 2; d >= 0; d--) {
    const row = rows[d] || [];
    for (let i = row.length - 1; i >= 0; i--) {
      const below = children.get(row[i]);
      if (!below.length) continue;
      const under = Math.min(...below.map((c) => column.get(c)));
      const limit = i + 1 < row.length ? column.get(row[i + 1]) - 1 : Infinity;
      if (under > column.get(row[i])) column.set(row[i], Math.min(under, limit));
    }
  }
  const byId = new Map();
  let columns = 0;
  const nodes = ids.map((id) => {
    const c = column.get(id);
    columns = Math.max(columns, c + 1);
    const node = { id, depth: depth.get(id), column: c, x: pad + c * (w + gapX), y: pad + depth.get(id) * (hgt + gapY) };
    byId.set(id, node);
    return node;
  });
  const edges = [];
  for (const id of ids) {
    const child = byId.get(id);
    for (const p of parents.get(id)) {
      const parent = byId.get(p);
      const skips = child.depth - parent.depth > 1;
      const gutter = skips ? pad + (Math.max(parent.column, child.column) + 1) * (w + gapX) - gapX / 2 : null;
      edges.push({ from: p, to: id, x1: parent.x + w / 2, y1: parent.y + hgt, x2: child.x + w / 2, y2: child.y, gutter });
    }
  }
  return {
    nodes,
    byId,
    rows: rows.map((row) => row || []),
    edges,
    width: nodes.length ? pad * 2 + columns * w + (columns - 1) * gapX : 0,
    height: nodes.length ? pad * 2 + rows.length * hgt + (rows.length - 1) * gapY : 0,
  };
}

/** What re-renders when `id`'s params change, besides itself: every layer made from it (stack order). */
export function changeRerenders(state, id) {
  if (!state.layers[id]) return [];
  return descendants(state.layers, state.order, id);
}

/** What deleting `id` takes: the layer itself first, then what was made from it, top of the stack first —
 * the list the delete dialog shows (both come from dag.js deletionImpact). */
export function deleteTakes(state, id) {
  const { layer, dependents } = deletionImpact(state, id);
  return layer ? [layer.id, ...dependents.map((d) => d.id)] : [];
}

/** "A, B and C"; past `max` names, "A, B and 3 more". */
export function listNames(names, max = 4) {
  const quoted = names.map((n) => `“${n}”`);
  if (quoted.length > max) return `${quoted.slice(0, max - 1).join(', ')} and ${quoted.length - max + 1} more`;
  if (quoted.length <= 1) return quoted.join('');
  return `${quoted.slice(0, -1).join(', ')} and ${quoted[quoted.length - 1]}`;
}

const layers = (n) => `${n} layer${n === 1 ? '' : 's'}`;

/** What the graph's caption says about `id`: kind "change" (what re-renders) or "delete" (what goes). */
export function impactSentence(state, id, kind) {
  const layer = state.layers[id];
  if (!layer) return '';
  const name = layer.name || id;
  const nameOf = (other) => state.layers[other]?.name || other;
  if (kind === 'delete') {
    const others = deleteTakes(state, id).slice(1);
    if (!others.length) return `Deleting “${name}” takes only itself: nothing was made from it.`;
    return `Deleting “${name}” also deletes ${layers(others.length)} made from it: ${listNames(others.map(nameOf))}.`;
  }
  const affected = changeRerenders(state, id);
  if (!affected.length) return `Changing “${name}” re-renders only itself.`;
  return `Changing “${name}” re-renders it and ${layers(affected.length)} made from it: ${listNames(affected.map(nameOf))}.`;
}

/** The node the arrow key `key` moves to from `id` in `layout` (itself when there is none that way): left and
 * right along its row, up to the nearest parent, down to the nearest child. */
export function neighbour(layout, layersById, id, key) {
  const node = layout.byId.get(id);
  if (!node) return layout.nodes[0]?.id ?? null;
  const row = layout.rows[node.depth];
  const at = row.indexOf(id);
  if (key === 'ArrowLeft') return row[Math.max(0, at - 1)];
  if (key === 'ArrowRight') return row[Math.min(row.length - 1, at + 1)];
  const nearest = (candidates) => {
    let best = id;
    let distance = Infinity;
    for (const other of candidates) {
      const n = layout.byId.get(other);
      const dx = n ? Math.abs(n.x - node.x) : Infinity;
      if (dx < distance) [best, distance] = [other, dx];
    }
    return best;
  };
  if (key === 'ArrowUp') return nearest(layersById[id]?.parents || []);
  if (key === 'ArrowDown') return nearest(layout.edges.filter((e) => e.from === id).map((e) => e.to));
  return id;
}
