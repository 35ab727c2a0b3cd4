// Words for the history: who did what at each version.

import FACTS from './events.js'; // each event's kind comes from the server's event registry
import { browserPart, lookupPerson } from './identity.js';

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
    case 'layer.transformed':
      return { kind, text: `placed ${layer()} at ${Math.round(p.x)}, ${Math.round(p.y)}${p.scale !== 1 ? ` × ${Math.round(p.scale * 100) / 100}` : ''}${p.rotation ? `, turned ${Math.round(p.rotation)}°` : ''}` };
    case 'canvas.resized':
      return { kind, text: `resized the canvas to ${p.width} × ${p.height}` };
    case 'canvas.restored':
      return { kind, text: `restored version ${p.version}` };
    case 'version.named':
      return { kind, text: p.label ? `named version ${p.version} ${quote(p.label)}` : `removed the name of version ${p.version}` };
    default:
      return { kind, text: event.type.replace(/[._]/g, ' ') };
  }
}

/** Who `actor` is, in words: "You", the name the canvas knows them by (`names`: user id -> name; a user of the
 * same browser under another link is the same person: the admin's link that created a canvas, an HTTP call),
 * else their browser's id ("Someone" for a token used with no user id, as a script does). */
export function actorLabel(actor, { me = null, names = new Map() } = {}) {
  if (actor === SYSTEM_ACTOR) return 'Engine';
  if (me && actor === me) return 'You';
  // someone who said hello as exactly this user is named so, even with my browser's id (names are labels,
  // not authentication: another link claiming my id must not read as me)
  if (names.get(actor)) return names.get(actor);
  if (me && browserPart(me) && browserPart(actor) === browserPart(me)) return 'You';
  const name = lookupPerson(names, actor);
  if (name) return name;
  if (actor === 'creator') return 'Creator';
  if (/^t[0-9a-f]+$/.test(actor || '')) return 'Someone'; // a token with no person named behind it (a script)
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
  return historySteps(events) // one mark per step: a whole drag is one mark, where it ended
    .filter((s) => s.actor !== SYSTEM_ACTOR)
    .map((s) => ({ seq: s.seq, actor: s.actor, at: (s.seq - 1) / (head - 1) }));
}

/** The step that event `seq` is part of (for the timeline's label), or null. */
export function stepAt(events, seq) {
  return historySteps(events).find((s) => s.first <= seq && seq <= s.seq && s.events.some((e) => e.seq === seq)) || null;
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

/**
 * The history as people think of it: one step per gesture, command, undo, redo or restore (the server's undo
 * works on the same steps). A step is {seq (its last event: the version it leads to), first, actor, events,
 * head (the event that names it), undone (for an undo or redo: the step it took back, when known)}. Renders
 * (the engine's) are steps of their own. Oldest first.
 */
export function historySteps(events) {
  let steps = STEPS.get(events); // the list, the timeline and its label ask for the same array's steps
  if (!steps) STEPS.set(events, (steps = buildSteps(events)));
  return steps;
}

const STEPS = new WeakMap(); // event list -> its steps (lists are replaced, never changed, when events come)

function buildSteps(events) {
  const steps = [];
  const bySeq = new Map(); // seq -> its step
  const open = new Map(); // `${actor}\u0000${gesture}` -> the gesture's step
  let run = null; // the step the next events of the same command extend (a marker's count, a command's run)
  for (const event of events) {
    const gestureKey = event.gesture ? `${event.actor}\u0000${event.gesture}` : null;
    let step = null;
    if (run && run.remaining > 0 && event.command_id === run.step.commandId && event.actor === run.step.actor) {
      step = run.step;
      run.remaining -= 1;
    } else if (gestureKey && open.has(gestureKey)) {
      step = open.get(gestureKey);
    } else if (run && run.remaining < 0 && event.command_id != null && event.command_id === run.step.commandId && event.seq === run.step.seq + 1) {
      step = run.step; // more events of the same command
    }
    if (step) {
      step.events.push(event);
      step.seq = event.seq;
    } else {
      const p = event.payload || {};
      step = { seq: event.seq, first: event.seq, actor: event.actor, commandId: event.command_id ?? null, events: [event], head: event, undone: null };
      const marker = event.type === 'history.undone' || event.type === 'history.redone' || event.type === 'canvas.restored';
      if (marker) step.undone = event.type === 'canvas.restored' ? null : bySeq.get(p.last_seq) || null;
      run = { step, remaining: marker ? p.count ?? 0 : -1 };
      steps.push(step);
      if (gestureKey) open.set(gestureKey, step);
    }
    bySeq.set(event.seq, step);
  }
  return steps;
}

/** {kind, text} of a step: its head event's words; an undo names what it undid; a run, its last change. */
export function describeStep(step, names = {}) {
  const head = step.head;
  if (head.type === 'history.undone' || head.type === 'history.redone') {
    const word = head.type === 'history.undone' ? 'undid' : 'redid';
    let target = step.undone; // a redo took back an undo: name the edit that undo took back
    while (target && (target.head.type === 'history.undone' || target.head.type === 'history.redone')) target = target.undone;
    const inner = target ? describeStep(target, names).text : null;
    return { kind: describeEvent(head, names).kind, text: inner ? `${word}: ${inner}` : `${word} an edit` };
  }
  if (head.type === 'canvas.restored') return describeEvent(head, names);
  const last = step.events[step.events.length - 1];
  if (step.events.every((e) => e.type === last.type)) return describeEvent(last, names);
  const first = describeEvent(head, names);
  const more = step.events.length - 1;
  return { kind: first.kind, text: `${first.text} and ${more} more change${more === 1 ? '' : 's'}` };
}
