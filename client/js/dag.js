// The layer DAG: which layers were made from which (`parents`). Pure functions over a state's layers.

/** parent id -> ids of the layers that read it directly. */
export function childrenMap(layers) {
  const children = new Map();
  for (const layer of Object.values(layers)) {
    for (const parent of layer.parents || []) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(layer.id);
    }
  }
  return children;
}

/** Every layer derived, directly or not, from `root`, in stack order (as the server's `descendants`). */
export function descendants(layers, order, root) {
  const found = reachableFrom(childrenMap(layers), root);
  return order.filter((id) => found.has(id));
}

/** Every id reachable from `root` through a `childrenMap` (root itself only if a cycle leads back to it). */
export function reachableFrom(children, root) {
  const found = new Set();
  const frontier = [...(children.get(root) || [])];
  while (frontier.length) {
    const current = frontier.pop();
    if (found.has(current)) continue;
    found.add(current);
    frontier.push(...(children.get(current) || []));
  }
  return found;
}

/** Every layer `id` reads, directly or not. */
export function ancestors(layers, id) {
  const seen = new Set();
  const frontier = [...(layers[id]?.parents || [])];
  while (frontier.length) {
    const current = frontier.pop();
    if (seen.has(current)) continue;
    seen.add(current);
    frontier.push(...(layers[current]?.parents || []));
  }
  return seen;
}

/** What deleting `id` takes with it: the layer itself first, then its descendants (top of the stack first). */
export function deletionImpact(state, id) {
  if (!state.layers[id]) return { layer: null, dependents: [] };
  const dependents = descendants(state.layers, state.order, id)
    .reverse()
    .map((layerId) => state.layers[layerId]);
  return { layer: state.layers[id], dependents };
}

/** Layers that `layerId` may read without making a cycle: not itself, not anything made from it. */
export function allowedInputs(state, layerId) {
  if (!layerId || !state.layers[layerId]) return state.order.slice();
  const banned = new Set([layerId, ...descendants(state.layers, state.order, layerId)]);
  return state.order.filter((id) => !banned.has(id));
}
