// A client-side copy of the canvas: the server's fold (server/core/projection.py) in JavaScript.
//
// States are plain, never mutated: `applyEvent` returns a new state. The shape follows
// `GET /api/canvases/{id}/state` (layers as the server's Layer.to_json()), plus what the fold keeps that the
// JSON leaves out (deleted ids, undo/redo stacks as runs of seqs). When an event does not fit (an unknown
// type, a gap in the seqs) `applyEvent` says so and the caller fetches the state again: correctness first.

import { childrenMap, reachableFrom } from './dag.js';
import FACTS from './events.js'; // generated from the server's event registry (server/core/event_registry.py)

export const HISTORY_DEPTH = FACTS.history_depth;
export const GESTURE_SPAN = FACTS.gesture_span;
const SYSTEM_ACTORS = new Set(FACTS.system_actors);
export const UNDOABLE = new Set(Object.keys(FACTS.events).filter((type) => FACTS.events[type].undoable));

/** Where a layer's image sits on the document (server/core/state.py Placement): identity is (0, 0), 1:1. */
export const IDENTITY = Object.freeze({ x: 0, y: 0, scale: 1, rotation: 0, flip_x: false, flip_y: false });

export function emptyState(canvasId = '') {
  return { canvasId, version: 0, name: '', order: [], layers: {}, deleted: [], history: {}, compensatingUntil: 0, origin: null, checkpoints: {}, document: { width: 0, height: 0, background: null } };
}

/** A state from the server's JSON (GET …/state, welcome.state). Undo stacks come as counts: their entries
 * are stand-ins (an undo always takes the top entry, so only the counts matter for what comes before). */
export function fromServer(json) {
  const layers = {};
  for (const layer of json.layers || []) layers[layer.id] = { ...layer, placement: { ...IDENTITY, ...layer.placement } };
  const history = {};
  for (const [user, counts] of Object.entries(json.history || {})) {
    const placeholder = () => ({ commandId: null, first: -1, last: -1 });
    history[user] = {
      undo: Array.from({ length: counts.undo || 0 }, placeholder),
      redo: Array.from({ length: counts.redo || 0 }, placeholder),
    };
  }
  return {
    canvasId: json.canvas_id,
    version: json.version,
    name: json.name,
    order: [...(json.order || (json.layers || []).map((l) => l.id))],
    layers,
    deleted: [],
    history,
    compensatingUntil: 0,
    origin: json.origin ?? null,
    checkpoints: Object.fromEntries((json.checkpoints || []).map((c) => [c.version, c.label])),
    document: { width: 0, height: 0, background: null, ...json.document },
  };
}

/** The layers bottom first. */
export function stack(state) {
  return state.order.map((id) => state.layers[id]).filter(Boolean);
}

export function historyCounts(state, user) {
  const h = state.history[user];
  return { undo: h ? h.undo.length : 0, redo: h ? h.redo.length : 0 };
}

function invalidate(layer, seq) {
  return {
    ...layer,
    revision: layer.revision + 1,
    status: layer.output ? 'stale' : 'pending',
    error: null,
    updated_seq: seq,
  };
}

// draft -> its children index (parent id -> ids reading it), as the server's draft keeps one: built once per
// fold on first use and kept up to date by adds, so that a run of params changes or deletes on a canvas of
// thousands of layers is not a walk over every layer per event. Dropped by anything else that changes the DAG.
const CHILDREN = new WeakMap();

function childrenOf(draft) {
  let children = CHILDREN.get(draft);
  if (!children) {
    children = childrenMap(draft.layers);
    CHILDREN.set(draft, children);
  }
  return children;
}

/** Every live layer derived, directly or not, from `root` (a set: the fold needs no order). */
function derivedFrom(draft, root) {
  return reachableFrom(childrenOf(draft), root);
}

function invalidateWithDescendants(draft, layer, seq) {
  draft.layers[layer.id] = invalidate(layer, seq);
  for (const childId of derivedFrom(draft, layer.id)) {
    draft.layers[childId] = invalidate(draft.layers[childId], seq);
  }
}

function update(draft, layerId, seq, changes) {
  const layer = draft.layers[layerId];
  if (layer) draft.layers[layerId] = { ...layer, ...changes, updated_seq: seq };
}

const HANDLERS = {
  'canvas.created'(draft, p) {
    draft.name = p.name;
    draft.origin = p.origin ?? null; // a fork's or an imported workflow's origin
  },
  'canvas.renamed'(draft, p) {
    draft.name = p.name;
  },
  'layer.added'(draft, p, seq) {
    if (draft.layers[p.layer_id] || draft.deleted.includes(p.layer_id)) return;
    draft.layers[p.layer_id] = {
      id: p.layer_id,
      name: p.name,
      operation: p.operation,
      params: p.params,
      seed: p.seed ?? null,
      parents: [...(p.parents || [])],
      visible: true,
      opacity: 1.0,
      revision: 1,
      status: 'pending',
      output: null,
      error: null,
      created_seq: seq,
      updated_seq: seq,
      placement: { ...IDENTITY },
    };
    draft.order.push(p.layer_id);
    const children = CHILDREN.get(draft);
    for (const parent of children ? p.parents || [] : []) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(p.layer_id);
    }
  },
  'layer.params_changed'(draft, p, seq) {
    const layer = draft.layers[p.layer_id];
    if (!layer) return;
    const parents = [...p.parents];
    if (parents.length !== layer.parents.length || parents.some((id, i) => id !== layer.parents[i])) CHILDREN.delete(draft);
    invalidateWithDescendants(draft, { ...layer, params: p.params, seed: p.seed ?? null, parents }, seq);
  },
  'layer.render_requested'(draft, p, seq) {
    const layer = draft.layers[p.layer_id];
    if (layer) invalidateWithDescendants(draft, layer, seq);
  },
  'layer.deleted'(draft, p) {
    if (!draft.layers[p.layer_id]) return;
    const doomed = new Set([p.layer_id, ...derivedFrom(draft, p.layer_id)]);
    const children = CHILDREN.get(draft); // kept: the doomed leave it as they leave the table
    for (const id of doomed) {
      for (const parent of children ? draft.layers[id].parents : []) {
        const readers = children.get(parent);
        if (readers && !doomed.has(parent)) children.set(parent, readers.filter((child) => child !== id));
      }
      children?.delete(id);
      delete draft.layers[id];
    }
    draft.order = draft.order.filter((id) => !doomed.has(id));
    draft.deleted = [...draft.deleted, ...doomed];
  },
  'layer.restored'(draft, p, seq) {
    const layers = p.layers || [];
    const positions = p.positions || [];
    for (let i = 0; i < Math.min(layers.length, positions.length); i++) {
      const layer = layers[i];
      if (draft.layers[layer.id] || (layer.parents || []).some((parent) => !draft.layers[parent])) continue;
      draft.layers[layer.id] = { ...layer, parents: [...layer.parents], updated_seq: seq, placement: { ...IDENTITY, ...layer.placement } };
      const index = Math.min(Math.max(positions[i], 0), draft.order.length);
      draft.order.splice(index, 0, layer.id);
      draft.deleted = draft.deleted.filter((id) => id !== layer.id);
    }
    CHILDREN.delete(draft);
  },
  'layer.visibility_changed'(draft, p, seq) {
    update(draft, p.layer_id, seq, { visible: p.visible });
  },
  'layer.opacity_changed'(draft, p, seq) {
    update(draft, p.layer_id, seq, { opacity: Math.min(1, Math.max(0, p.opacity)) });
  },
  'layer.renamed'(draft, p, seq) {
    update(draft, p.layer_id, seq, { name: p.name });
  },
  'layer.moved'(draft, p, seq) {
    if (!draft.layers[p.layer_id]) return;
    draft.order.splice(draft.order.indexOf(p.layer_id), 1); // the draft's own copy (draftOf)
    const index = Math.min(Math.max(p.index, 0), draft.order.length);
    draft.order.splice(index, 0, p.layer_id);
    update(draft, p.layer_id, seq, {});
  },
  'layer.rendered'(draft, p, seq) {
    const layer = draft.layers[p.layer_id];
    if (!layer || layer.revision !== p.revision) return;
    const output = {
      sha256: p.output,
      width: p.width,
      height: p.height,
      fingerprint: p.fingerprint,
      duration_ms: p.duration_ms,
      cache_key: p.cache_key ?? '',
      cached: p.cached ?? false,
      extra: [...(p.extra_outputs || [])],
    };
    update(draft, p.layer_id, seq, { status: 'rendered', output, error: null });
    // a document without a size takes the first picture's (server/core/projection.py)
    if (!draft.document.width) draft.document = { ...draft.document, width: p.width, height: p.height };
  },
  'layer.failed'(draft, p, seq) {
    const layer = draft.layers[p.layer_id];
    if (!layer || layer.revision !== p.revision) return;
    update(draft, p.layer_id, seq, { status: 'failed', error: p.reason });
  },
  'history.undone'() {},
  'history.redone'() {},
  'canvas.restored'() {}, // a label for the restore's events, which do the work
  'canvas.resized'(draft, p) {
    draft.document = { width: p.width, height: p.height, background: p.background ?? null };
  },
  'layer.transformed'(draft, p, seq) {
    const { x, y, scale = 1, rotation = 0, flip_x = false, flip_y = false } = p;
    update(draft, p.layer_id, seq, { placement: { x, y, scale, rotation, flip_x, flip_y } });
  },
  'version.named'(draft, p) {
    const checkpoints = { ...draft.checkpoints };
    if (p.label) checkpoints[p.version] = p.label;
    else delete checkpoints[p.version];
    draft.checkpoints = checkpoints;
  },
};

export const KNOWN_EVENT_TYPES = new Set(Object.keys(HANDLERS));

function trackHistory(draft, event) {
  const p = event.payload || {};
  const user = event.actor;
  if (FACTS.events[event.type]?.history_marker) {
    const undoing = event.type === 'history.undone';
    const h = draft.history[user] || { undo: [], redo: [] };
    let source = undoing ? h.undo : h.redo;
    let target = undoing ? h.redo : h.undo;
    const index = source.findIndex((e) => e.first === p.first_seq && e.last === p.last_seq);
    // An entry we only know as a count (the state came as JSON) is the top one: undo always takes the top.
    source = index >= 0 ? source.filter((_, i) => i !== index) : source.slice(0, -1);
    const entry = { commandId: event.command_id ?? null, first: event.seq + 1, last: event.seq + p.count };
    target = [...target, entry].slice(-HISTORY_DEPTH);
    draft.history[user] = undoing ? { undo: source, redo: target } : { undo: target, redo: source };
    draft.compensatingUntil = event.seq + p.count;
    return;
  }
  if (event.seq <= draft.compensatingUntil || !UNDOABLE.has(event.type) || SYSTEM_ACTORS.has(user)) return;
  const h = draft.history[user] || { undo: [], redo: [] };
  const top = h.undo[h.undo.length - 1];
  let undo;
  if (top && continues(top, event)) {
    undo = [...h.undo.slice(0, -1), { ...top, last: event.seq }];
  } else {
    const entry = { commandId: event.command_id ?? null, first: event.seq, last: event.seq, gesture: event.gesture ?? null };
    undo = [...h.undo, entry].slice(-HISTORY_DEPTH);
  }
  draft.history[user] = { undo, redo: [] };
}

/** As the server's history: the same command's next event, or a later event of the same gesture. */
function continues(top, event) {
  if (top.gesture != null && top.gesture === event.gesture && event.seq - top.first < GESTURE_SPAN) return true;
  return top.commandId != null && top.commandId === event.command_id && top.last === event.seq - 1;
}

function draftOf(state) {
  return { ...state, layers: { ...state.layers }, order: [...state.order], history: { ...state.history } };
}

/**
 * Fold one event (the object of `GET …/events` / a WS `event` frame's `event`) into `state`.
 * Returns `{state, status}`: status "applied"; "duplicate" (seq already folded; state unchanged);
 * "gap" (a seq is missing) or "unknown" (an event type this client does not know): fetch the state again.
 */
export function applyEvent(state, event) {
  if (event.seq <= state.version) return { state, status: 'duplicate' };
  if (event.seq !== state.version + 1) return { state, status: 'gap' };
  const handler = HANDLERS[event.type];
  if (!handler) return { state, status: 'unknown' };
  const draft = draftOf(state);
  handler(draft, event.payload || {}, event.seq);
  trackHistory(draft, event);
  draft.version = event.seq;
  return { state: draft, status: 'applied' };
}

/** Fold several events; stops at the first that does not fit and reports it. One draft for the whole run
 * (a catch-up of thousands of events copies the layer table once, not once per event); `state` is unchanged. */
export function applyEvents(state, events) {
  let draft = null;
  let version = state.version;
  for (const event of events) {
    if (event.seq <= version) continue; // a duplicate
    const handler = HANDLERS[event.type];
    if (event.seq !== version + 1 || !handler) {
      return { state: draft || state, status: event.seq !== version + 1 ? 'gap' : 'unknown', at: event.seq };
    }
    draft = draft || draftOf(state);
    handler(draft, event.payload || {}, event.seq);
    trackHistory(draft, event);
    draft.version = version = event.seq;
  }
  return { state: draft || state, status: 'applied' };
}

/** The state in the server's JSON shape (for comparing with GET …/state). */
export function toServerJson(state) {
  const history = {};
  for (const [user, h] of Object.entries(state.history)) history[user] = { undo: h.undo.length, redo: h.redo.length };
  return {
    canvas_id: state.canvasId,
    version: state.version,
    name: state.name,
    order: [...state.order],
    layers: state.order.map((id) => state.layers[id]),
    history,
    origin: state.origin ?? null,
    checkpoints: Object.entries(state.checkpoints || {})
      .map(([version, label]) => ({ version: Number(version), label }))
      .sort((a, b) => a.version - b.version),
    document: { ...state.document },
  };
}
