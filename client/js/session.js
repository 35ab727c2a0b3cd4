// A canvas as this client knows it: the folded state, the history of events (for the timeline), and the
// ephemeral news (who is here, what is rendering). Fed by LiveConnection's messages; DOM-free.

import { applyEvent, applyEvents, fromServer, emptyState } from './state.js';
import { mergeEvents, layerNames } from './history.js';

export class CanvasSession {
  /** `fetchState()` → GET …/state JSON; `fetchEvents(after)` → GET …/events JSON (a page). */
  constructor({ canvasId, fetchState, fetchEvents, me = null }) {
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
    this.renders = new Map(); // layer id -> {rendering, position, step, total}
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
        return this.emit('presence');
      case 'presence_left':
        this.people.delete(message.conn);
        return this.emit('presence');
      case 'render_started':
        this.renders.set(message.layer_id, { ...(this.renders.get(message.layer_id) || {}), rendering: true, step: 0, total: 0 });
        return this.emit('renders');
      case 'progress': {
        // only for a render this client knows is running (render_started, or the welcome's queue): progress
        // that trails a cancellation must not bring the layer back to "rendering"
        const known = this.renders.get(message.layer_id);
        if (!known) return undefined;
        this.renders.set(message.layer_id, { ...known, rendering: true, step: message.step, total: message.total });
        return this.emit('renders');
      }
      case 'render_finished':
      case 'render_failed':
      case 'render_cancelled':
        this.renders.delete(message.layer_id);
        return this.emit('renders');
      default:
        return undefined;
    }
  }

  welcome(message) {
    this.me = message.you;
    this.people.clear();
    for (const presence of message.presence || []) if (presence.conn !== message.you.conn) this.people.set(presence.conn, presence);
    this.renders.clear();
    for (const item of message.queue || []) this.renders.set(item.layer_id, { rendering: !!item.rendering, position: item.position, step: 0, total: 0 });
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
    for (const id of [...this.renders.keys()]) {
      const layer = state.layers[id];
      if (!layer || layer.status === 'rendered' || layer.status === 'failed') this.renders.delete(id);
    }
    this.emit({ type: 'state', event });
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
    this.events = mergeEvents(this.events, events);
    this.emit('timeline');
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
