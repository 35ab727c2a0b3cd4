// Words for the history: who did what at each version.

import FACTS from './events.js'; // each event's kind comes from the server's event registry

export const SYSTEM_ACTOR = 'engine';

/** layer id -> its latest name, from a run of events (layer names outlive the layers in the history). */
export function layerNames(events, into = new Map()) {
  for (const event of events) {
    const p = event.payload || {};
    if (event.type === 'layer.added' || event.type === 'layer.renamed') into.set(p.layer_id, p.name);
    if (event.type === 'layer.restored') for (const layer of p.layers || []) into.set(layer.id, layer.name);
  }
  return into;
}

function quote(text) {
  return `“${text}”`;
}

/** {kind, text}: what an event did, in a few words ("added “Sky” (Text to image)"). */
export function describeEvent(event, { layerName = (id) => id, operationTitle = (name) => name } = {}) {
  const p = event.payload || {};
  const layer = () => quote(layerName(p.layer_id) || p.layer_id);
  const kind = FACTS.events[event.type]?.history_kind ?? 'other';
  switch (event.type) {
    case 'canvas.created':
      return { kind, text: `created the canvas ${quote(p.name)}` };
    case 'canvas.renamed':
      return { kind, text: `renamed the canvas to ${quote(p.name)}` };
    case 'layer.added':
      return { kind, text: `added ${quote(p.name)} (${operationTitle(p.operation)})` };
    case 'layer.params_changed':
      return { kind, text: `changed the settings of ${layer()}` };
    case 'layer.deleted':
      return { kind, text: `deleted ${layer()}` };
    case 'layer.restored': {
      const names = (p.layers || []).map((l) => quote(l.name));
      return { kind, text: `brought back ${names.length ? names.join(', ') : 'layers'}` };
    }
    case 'layer.visibility_changed':
      return { kind, text: `${p.visible ? 'showed' : 'hid'} ${layer()}` };
    case 'layer.opacity_changed':
      return { kind, text: `set the opacity of ${layer()} to ${Math.round((p.opacity ?? 0) * 100)}%` };
    case 'layer.renamed':
      return { kind, text: `renamed a layer to ${quote(p.name)}` };
    case 'layer.moved':
      return { kind, text: `moved ${layer()}` };
    case 'layer.render_requested':
      return { kind, text: `asked to render ${layer()} again` };
    case 'layer.rendered':
      return { kind, text: `rendered ${layer()}${p.cached ? ' (cached)' : ''}` };
    case 'layer.failed': {
      const reason = String(p.reason || '').trim();
      if (/^cancelled/i.test(reason) || reason.toLowerCase() === 'render cancelled') return { kind: 'cancel', text: `stopped rendering ${layer()} (${reason.toLowerCase() === 'render cancelled' ? 'cancelled' : reason})` };
      return { kind, text: `could not render ${layer()}: ${p.reason}` };
    }
    case 'history.undone':
      return { kind, text: 'undid an edit' };
    case 'history.redone':
      return { kind, text: 'redid an edit' };
    default:
      return { kind, text: event.type.replace(/[._]/g, ' ') };
  }
}

export function actorLabel(actor, { me = null, names = new Map() } = {}) {
  if (actor === SYSTEM_ACTOR) return 'Engine';
  if (me && actor === me) return 'You';
  if (names.get(actor)) return names.get(actor);
  if (actor === 'creator') return 'Creator';
  // the server binds users to their token (t<token id>.<the browser's id>): the token part says nothing to people
  return (actor || '').replace(/^t[0-9a-f]+\./, '') || 'Someone';
}

/** "just now", "12 s ago", "5 min ago", "3 h ago", then a date. `timestamp` in seconds (the server's). */
export function relativeTime(timestamp, nowMs = Date.now()) {
  const seconds = Math.max(0, nowMs / 1000 - timestamp);
  if (seconds < 5) return 'just now';
  if (seconds < 60) return `${Math.floor(seconds)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(timestamp * 1000).toLocaleDateString();
}

/** Marks for the timeline slider: the versions people made (not the engine's renders), as 0..1 positions. */
export function timelineTicks(events, head) {
  if (head <= 1) return [];
  return events
    .filter((e) => e.actor !== SYSTEM_ACTOR)
    .map((e) => ({ seq: e.seq, actor: e.actor, at: (e.seq - 1) / (head - 1) }));
}

/** The event at version `seq`, by binary search over events sorted by seq. */
export function eventAt(events, seq) {
  let lo = 0;
  let hi = events.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const value = events[mid].seq;
    if (value === seq) return events[mid];
    if (value < seq) lo = mid + 1;
    else hi = mid - 1;
  }
  return null;
}

/** Merge new events into a seq-sorted list without duplicates. */
export function mergeEvents(events, more) {
  if (!more.length) return events;
  const last = events.length ? events[events.length - 1].seq : 0;
  if (more.every((e, i) => e.seq > last && (i === 0 || e.seq > more[i - 1].seq))) return events.concat(more);
  const bySeq = new Map(events.map((e) => [e.seq, e]));
  for (const e of more) bySeq.set(e.seq, e);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}
