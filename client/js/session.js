// A canvas as this client knows it: the folded state, the history of events (for the timeline), and the
// ephemeral news (who is here, what is rendering). Fed by LiveConnection's messages; DOM-free.

import { applyEvent, applyEvents, fromServer, emptyState } from './state.js';
import { mergeEvents, layerNames } from './history.js';
import { COLOUR } from './identity.js';

export class CanvasSession {
  /** `fetchState()` → GET …/state JSON; `fetchEvents(after)` → GET …/events JSON (a page). */
  constructor({ canvasId, fetchState, fetchEvents, me = null, now = () => Date.now() }) {
    this.canvasId = canvasId;
    this.fetchState = fetchState;
    this.fetchEvents = fetchEvents;
    this.me = me; // this connection's welcome.you
    this.state = emptyState(canvasId);
    this.ready = false;
    this.events = []; // the whole log as far as known, for the timeline
    this.timelineComplete = false;
    this.names = new Map(); // layer id -> name, including deleted layers
    this.people = new Map(); // conn -> presence
    // user -> {user, name, colour}: everyone the canvas knows (the server's list in the welcome and `people`
    // news, then each presence), so the history names people who are offline or came before this page
    this.directory = new Map();
    this.authors = new Map(); // layer id -> the user who added it (its layer.added's actor), for layer rows
    this.now = now;
    // layer id -> {rendering, position, step, total, stage, user, revision, ahead, aheadElsewhere, etaS,
    // waitReason, receivedAt}: this canvas's queue as the server last said it, and the progress of what runs
    this.renders = new Map();
    // layer id -> {image (a data: URL), width, height, renderWidth, renderHeight, step, total, n}: the latest
    // look at a render in progress. A preview lives only as long as its render: never shown after it ends.
    this.previews = new Map();
    this.ended = new Set(); // layers whose last render ended: late previews and progress for them are dropped
    this.previewCount = 0;
    this.blocked = null; // {reason, retryInS, receivedAt}: the worker cannot schedule this canvas at all
    this.resyncing = null;
    this.buffered = [];
    this.listeners = new Set();
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(what) {
    for (const listener of this.listeners) listener(what, this);
  }

  /** Take names and colours from the server's people or from presence (a name is what the server cleaned). */
  learnPeople(people) {
    for (const p of people || []) {
      if (typeof p?.user !== 'string' || typeof p.name !== 'string' || !p.name) continue;
      const known = this.directory.get(p.user);
      const colour = COLOUR.test(p.colour || '') ? p.colour : known?.colour || null;
      this.directory.set(p.user, { user: p.user, name: p.name, colour });
    }
  }

  /** Everyone to name and colour: `mine` (this page's own {user, name, colour}) first, then who is here now,
   * then the rest the canvas knows. For `colourFor`, which takes the first entry of a user. */
  everyone(mine = null) {
    return [...(mine ? [mine] : []), ...this.people.values(), ...this.directory.values()];
  }

  get version() {
    return this.state.version;
  }

  /** For hello: the last seq folded, or undefined before the first welcome. */
  since() {
    return this.ready ? this.state.version : undefined;
  }

  handle(message) {
    switch (message.type) {
      case 'welcome':
        return this.welcome(message);
      case 'event':
        return this.event(message.event);
      case 'presence':
        if (this.me && message.conn === this.me.conn) return;
        this.people.set(message.conn, message);
        this.learnPeople([message]);
        return this.emit('presence');
      case 'people':
        this.learnPeople(message.people);
        return this.emit('people');
      case 'presence_left':
        this.people.delete(message.conn);
        return this.emit('presence');
      case 'render_started': {
        const id = message.layer_id;
        this.ended.delete(id);
        this.previews.delete(id); // a new render: what an earlier one looked like is not this one
        const known = this.renders.get(id) || {};
        this.renders.set(id, { ...known, rendering: true, step: 0, total: 0, stage: null, revision: message.revision ?? known.revision, user: message.user ?? known.user ?? null, waitReason: null });
        return this.emit('renders');
      }
      case 'progress': {
        // only for a render this client knows is running (render_started, or the welcome's queue): progress
        // that trails a cancellation must not bring the layer back to "rendering"
        const known = this.renders.get(message.layer_id);
        if (!known || this.ended.has(message.layer_id)) return undefined;
        this.renders.set(message.layer_id, { ...known, rendering: true, step: message.step, total: message.total, stage: message.stage || 'denoise' });
        return this.emit('renders');
      }
      case 'preview':
        return this.preview(message);
      case 'queue':
        return this.queueChanged(message);
      case 'render_blocked': // the worker set this canvas aside ({reason, retry_in_s, attempts})
        this.blocked = blockedFrom(message, this.now());
        return this.emit('renders');
      case 'render_unblocked':
        this.blocked = null;
        return this.emit('renders');
      case 'render_finished':
      case 'render_failed':
      case 'render_cancelled':
        this.endRender(message.layer_id);
        return this.emit('renders');
      default:
        return undefined;
    }
  }

  welcome(message) {
    this.me = message.you;
    this.people.clear();
    for (const presence of message.presence || []) if (presence.conn !== message.you.conn) this.people.set(presence.conn, presence);
    this.learnPeople(message.people);
    this.learnPeople(this.people.values());
    this.renders.clear();
    this.previews.clear();
    this.ended.clear();
    for (const item of message.queue || []) this.renders.set(item.layer_id, queueEntry(item, {}, this.now()));
    this.blocked = blockedFrom(message.render_blocked, this.now());
    if (message.state) {
      this.setState(fromServer(message.state));
      if (!this.timelineComplete || this.events.length === 0 || this.events[this.events.length - 1].seq < this.state.version) {
        this.timelineComplete = false;
        this.loadTimeline();
      }
    } else {
      this.addToTimeline(message.events || []);
      const result = applyEvents(this.state, message.events || []);
      this.setState(result.state);
      if (result.status !== 'applied') this.resync();
    }
    this.ready = true;
    this.emit('welcome');
  }

  event(event) {
    this.addToTimeline([event]);
    if (this.resyncing) {
      this.buffered.push(event);
      return;
    }
    const result = applyEvent(this.state, event);
    if (result.status === 'gap' || result.status === 'unknown') {
      this.buffered.push(event);
      this.resync();
      return;
    }
    if (result.status === 'applied') this.setState(result.state, event);
  }

  setState(state, event = null) {
    this.state = state;
    for (const layer of Object.values(state.layers)) this.names.set(layer.id, layer.name);
    this.prune();
    this.emit({ type: 'state', event });
  }

  /** Renders (and their previews) of layers that are gone or have their outcome (layer.rendered / failed). */
  prune() {
    for (const id of new Set([...this.renders.keys(), ...this.previews.keys()])) {
      const layer = this.state.layers[id];
      if (!layer || layer.status === 'rendered' || layer.status === 'failed') this.endRender(id);
    }
  }

  endRender(id) {
    this.renders.delete(id);
    this.previews.delete(id);
    this.ended.add(id);
  }

  /** A look at a render in progress: kept only while this client knows that render runs. */
  preview(message) {
    const id = message.layer_id;
    const render = this.renders.get(id);
    if (!render?.rendering || this.ended.has(id)) return undefined;
    if (typeof message.image !== 'string' || !/^data:image\/(jpeg|png|webp);base64,/.test(message.image)) return undefined;
    const layer = this.state.layers[id];
    if (layer && (layer.status === 'rendered' || layer.status === 'failed')) return undefined;
    this.previewCount += 1;
    this.previews.set(id, {
      image: message.image,
      width: message.width,
      height: message.height,
      renderWidth: message.render_width || message.width,
      renderHeight: message.render_height || message.height,
      step: message.step,
      total: message.total,
      n: this.previewCount,
    });
    if (Number.isFinite(message.step) && Number.isFinite(message.total) && !(render.step > message.step)) {
      this.renders.set(id, { ...render, step: message.step, total: message.total, stage: render.stage || 'denoise' });
    }
    return this.emit('preview');
  }

  /** The canvas's queue changed: the server's word on what waits, why, and for how long. */
  queueChanged(message) {
    if (message.canvas_id && message.canvas_id !== this.canvasId) return undefined;
    const now = this.now();
    const next = new Map();
    for (const item of message.queue || []) {
      const known = this.renders.get(item.layer_id) || {};
      if (!item.rendering) {
        // waiting for a (new) render: what an earlier render of it showed is over
        this.ended.delete(item.layer_id);
        this.previews.delete(item.layer_id);
      }
      next.set(item.layer_id, queueEntry(item, known, now));
    }
    for (const id of this.renders.keys()) if (!next.has(id)) this.previews.delete(id);
    this.renders = next;
    this.blocked = blockedFrom(message.blocked, now);
    this.prune();
    return this.emit('renders');
  }

  /** The folded state does not fit what arrived: fetch it again, then fold what came meanwhile. */
  resync() {
    if (this.resyncing) return this.resyncing;
    this.resyncing = (async () => {
      for (let attempt = 0; attempt < 5; attempt++) {
        try {
          const json = await this.fetchState();
          let state = fromServer(json);
          const later = this.buffered.filter((e) => e.seq > state.version).sort((a, b) => a.seq - b.seq);
          const result = applyEvents(state, later);
          state = result.state;
          if (result.status === 'applied') {
            this.buffered = [];
            this.resyncing = null;
            this.setState(state);
            return;
          }
        } catch (error) {
          /* try again */
        }
        await new Promise((resolve) => setTimeout(resolve, 200 * 2 ** attempt));
      }
      this.resyncing = null;
      this.emit('error');
    })();
    return this.resyncing;
  }

  addToTimeline(events) {
    if (!events.length) return;
    layerNames(events, this.names);
    this.noteAuthors(events);
    this.events = mergeEvents(this.events, events);
    this.emit('timeline');
  }

  /** Who added each layer: the log says, also of layers added before this page came. */
  noteAuthors(events) {
    for (const event of events) if (event.type === 'layer.added' && event.payload?.layer_id) this.authors.set(event.payload.layer_id, event.actor);
  }

  /** Fetch the whole log for the timeline (after a welcome that brought a state, not events). */
  async loadTimeline() {
    if (this.loadingTimeline) return this.loadingTimeline;
    this.loadingTimeline = (async () => {
      try {
        let after = 0;
        const collected = [];
        for (;;) {
          const page = await this.fetchEvents(after);
          collected.push(...page.events);
          if (!page.events.length || page.events.length < 10000) break;
          after = page.events[page.events.length - 1].seq;
        }
        layerNames(collected, this.names);
        this.noteAuthors(collected);
        this.events = mergeEvents(collected, this.events.filter((e) => e.seq > (collected.at(-1)?.seq ?? 0)));
        this.timelineComplete = true;
        this.emit('timeline');
      } finally {
        this.loadingTimeline = null;
      }
    })();
    return this.loadingTimeline;
  }
}

function queueEntry(item, known, now) {
  const rendering = !!item.rendering;
  return {
    ...(rendering && known.rendering ? known : {}),
    rendering,
    position: item.position,
    step: rendering ? known.step || 0 : 0,
    total: rendering ? known.total || 0 : 0,
    stage: rendering ? known.stage ?? null : null,
    revision: known.revision,
    user: item.user ?? known.user ?? null,
    ahead: item.ahead ?? null,
    aheadElsewhere: item.ahead_elsewhere ?? null,
    etaS: Number.isFinite(item.eta_s) ? item.eta_s : null,
    waitReason: rendering ? null : item.wait_reason || null,
    receivedAt: now,
  };
}

function blockedFrom(blocked, now) {
  if (!blocked) return null;
  const entry = { reason: blocked.reason || '', retryInS: Number.isFinite(blocked.retry_in_s) ? blocked.retry_in_s : null, receivedAt: now };
  if (Number.isFinite(blocked.attempts)) entry.attempts = blocked.attempts;
  return entry;
}
