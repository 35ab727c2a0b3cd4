// The editor: wires the session (state, live connection) to the panels, and turns clicks into commands. This
// is the composition root: it holds what the parts share (the session, the role, the selection), lays the page
// out, and draws every part once per animation frame; each concern lives in its own module:
//   topbar.js (name, role, connection, people, undo/redo, import/export/share), share-dialog.js, name-dialog.js,
//   left-panel.js (the generation forms), right-panel.js (layers / history tabs), mask-mode.js (tools, masks),
//   time-travel.js (past versions, fork, restore), stage-status.js (notices over the stage),
//   layer-actions.js (commands, delete, cancel), transfers.js (upload, download, export, import),
//   shortcuts.js (the keyboard).

import { h, fill, toast } from './dom.js';
import { Viewport } from './viewport.js';
import { LayerPanel } from './layers.js';
import { TimelineBar, HistoryList, colourFor } from './timeline.js';
import { actorLabel, SYSTEM_ACTOR } from '../history.js';
import { TopBar } from './topbar.js';
import { LeftPanel } from './left-panel.js';
import { RightPanel } from './right-panel.js';
import { MaskMode } from './mask-mode.js';
import { TimeTravel } from './time-travel.js';
import { StageStatus } from './stage-status.js';
import { ModelNotice } from './model-notice.js';
import { LayerActions } from './layer-actions.js';
import { Transfers } from './transfers.js';
import { bindShortcuts } from './shortcuts.js';
import { CanvasSession } from '../session.js';
import { LiveConnection, socketUrl } from '../live.js';
import { CommandQueue } from '../commands.js';
import { Gestures } from '../gesture.js';
import { movedBy, placementOf } from '../placement.js';
import { openCheckpointDialog } from './checkpoint-dialog.js';
import { Backoff } from '../backoff.js';
import { groupOperations } from '../schema.js';
import { throttle } from '../throttle.js';
import { updateCanvasInfo, rememberName, knownNames } from '../identity.js';
import { setBlobScope } from '../api.js';
import { takeImportWarnings, showImportWarnings } from './import-warnings.js';

/** Why this page may not change the canvas (Editor.editBlock), as the banner over the stage says it. */
export const EDIT_BLOCK_TEXT = {
  viewer: 'View only — you can look, scrub the history and export, but not change this canvas.',
  revoked: 'Your access was revoked — this page can no longer change the canvas.',
  closed: 'Disconnected — this page can no longer change the canvas. Reload to try again.',
  offline: 'Reconnecting — editing is paused until the connection is back.',
};

export class Editor {
  /** Whom the server attributes this browser's edits to (its token's id and this browser's): the welcome says. */
  get me() {
    return this.session?.me?.user || this.identity.id;
  }

  constructor(root, { api, storage, identity, canvasId, token, catalogue }) {
    Object.assign(this, { root, api, storage, identity, canvasId, token });
    setBlobScope(canvasId, token); // every image of this canvas is fetched under its access
    this.operations = catalogue.operations;
    this.limits = catalogue.limits || null; // {working_pixels, max_pixels, max_work, device}, from newer servers
    this.opsByName = new Map(this.operations.map((o) => [o.name, o]));
    this.groups = groupOperations(catalogue.operations, catalogue.unavailable);
    this.maskOps = new Set(this.operations.filter((o) => o.category === 'mask').map((o) => o.name));
    this.names = knownNames(storage);
    this.role = null;
    this.status = 'connecting';
    this.selected = null;
    this.session = new CanvasSession({
      canvasId,
      fetchState: () => this.api.state(canvasId),
      fetchEvents: (after) => this.api.events(canvasId, after),
    });
    this.gestures = new Gestures().attach(document); // one drag or key burst = one history entry
    this.queue = new CommandQueue({ gesture: () => this.gestures.current() });
    this.live = new LiveConnection({
      url: socketUrl(location, canvasId),
      hello: () => {
        const since = this.session.since();
        return { token: this.token, ...(since !== undefined ? { since } : {}), user: this.identity.id, name: this.identity.name, colour: this.identity.colour };
      },
      queue: this.queue,
      onMessage: (message) => this.session.handle(message),
      onStatus: (status, detail) => this.onStatus(status, detail),
      backoff: new Backoff({ base: 500, max: 15000 }),
    });
    this.queue.onChange(() => this.schedule());
    this.session.subscribe((what) => this.onSession(what));
    // with what this page looks at, so that others can follow it (follow.js)
    this.sendPresence = throttle((cursor) => this.live.sendFrame({ type: 'presence', cursor, selected_layer: this.selected, viewport: this.viewport.sharedView() }), 50);
    // a drag sends where the layer is every 80 ms; its commands share the drag's gesture: one undo
    this.sendTransform = throttle((layerId, p) => this.command({ type: 'transform_layer', layer_id: layerId, x: p.x, y: p.y, scale: p.scale, rotation: p.rotation, flip_x: p.flip_x, flip_y: p.flip_y }, { quiet: true }), 80);
    this.sendOpacity = throttle((layer, value) => this.command({ type: 'set_opacity', layer_id: layer.id, opacity: value }, { quiet: true }), 120);
    this.build();
    bindShortcuts(this);
    window.opendream = this; // a handle for debugging and the end-to-end tests
  }

  start() {
    this.live.start();
    window.addEventListener('online', () => this.live.reconnectNow());
    showImportWarnings(takeImportWarnings(this.canvasId)); // a canvas just imported with warnings
  }

  // --- building the page ------------------------------------------------------------------------------

  build() {
    this.actions = new LayerActions(this);
    this.transfers = new Transfers(this);
    this.timeTravel = new TimeTravel(this);
    this.mask = new MaskMode(this);
    this.viewport = new Viewport({
      onCursor: (world) => {
        this.lastCursor = world ? { x: Math.round(world.x * 10) / 10, y: Math.round(world.y * 10) / 10 } : null;
        this.sendPresence(this.lastCursor);
      },
      onStrokesChanged: () => this.schedule(),
      onDropFiles: (files) => this.transfers.uploadFiles(files),
      onNeedMaskTarget: () => this.mask.beginMask(),
      onView: () => this.sendPresence?.(this.lastCursor ?? null),
      onSelect: (id) => this.select(id),
      canMoveLayers: () => this.canEdit,
      onMoveLayer: (layerId, placement, final) => {
        this.sendTransform(layerId, placement);
        if (final) this.sendTransform.flush();
      },
    });
    this.layers = new LayerPanel({
      select: (id) => this.select(id, { fromPanel: true }),
      toggleVisible: (layer) => this.command({ type: 'set_visibility', layer_id: layer.id, visible: !layer.visible }),
      setOpacity: (layer, value, final) => {
        this.sendOpacity(layer, value);
        if (final) this.sendOpacity.flush();
      },
      rename: (layer, name) => this.command({ type: 'rename_layer', layer_id: layer.id, name }),
      move: (layer, index) => this.command({ type: 'move_layer', layer_id: layer.id, index }),
      remove: (layer) => this.actions.deleteLayer(layer),
      cancel: (layer) => this.actions.cancelRender(layer),
      retry: (layer) => this.command({ type: 'retry_render', layer_id: layer.id }),
      download: (layer) => this.transfers.downloadLayer(layer),
    });
    this.timeline = new TimelineBar({
      scrub: (version) => this.timeTravel.scrubTo(version),
      live: () => this.timeTravel.backToLive(),
      fork: (version) => this.timeTravel.fork(version),
      restore: (version) => this.timeTravel.restore(version),
      renderVersion: (version) => this.timeTravel.renderPast(version),
      thumbnail: (version) => this.timeTravel.thumbnailUrl(version),
      nameVersion: (version) => openCheckpointDialog(this, version, this.session.state?.checkpoints?.[version] ?? ''),
    });
    this.history = new HistoryList({ scrub: (version) => (version >= this.session.version ? this.timeTravel.backToLive() : this.timeTravel.scrubTo(version)) });
    this.topbar = new TopBar(this);
    this.panel = new LeftPanel(this);
    this.right = new RightPanel(this);
    this.stage = new StageStatus(this);
    this.modelNotice = new ModelNotice(this);

    // centre: tools, canvas, banners, timeline
    const { stage, mask } = this;
    const centre = h(
      'main.centre',
      null,
      h('div.stage-wrap', null, this.viewport.el, mask.toolbar, mask.maskBar, this.timeTravel.banner, stage.renderPill, stage.blockedBanner, stage.readOnlyBanner, this.modelNotice.el, stage.loading, stage.fatal),
      this.timeline.el,
    );
    fill(this.root, h('div.app.editor-app', null, this.topbar.el, h('div.workspace', null, this.panel.el, centre, this.right.el)));
    this.mask.setTool('pan');
    this.panel.build();
    this.right.setTab('layers');
    this.modelNotice.load();
  }

  // --- session and rendering ----------------------------------------------------------------------------

  onStatus(status, detail) {
    this.status = status;
    if (status === 'fatal') this.fatalCode = detail?.code ?? null; // 4401: the link was revoked
    if (status === 'live' && detail?.you) {
      this.role = detail.you.role;
      updateCanvasInfo(this.storage, this.canvasId, { role: this.role });
      this.sendPresence(null);
      this.sendPresence.flush();
    }
    this.stage.onStatus(status, detail);
    if (status === 'fatal' && this.editBlock === 'revoked') this.explainRevocation();
    this.schedule();
  }

  /** The cover over the stage says "Cannot open this canvas"; for a page that was open, say what happened. */
  explainRevocation() {
    const title = this.stage.fatal.querySelector('h3');
    const text = this.stage.fatal.querySelector('p');
    if (title) title.textContent = 'Your access was revoked';
    if (text) text.textContent = 'The owner revoked the link this page was opened with: nothing here can change the canvas any more. Ask them for a new link to keep editing.';
  }

  onSession(what) {
    const learnt = (what === 'presence' || what === 'people' || what === 'welcome') && this.learnPeople();
    if (learnt || what === 'people') {
      // a new name or colour for someone (you too, after the name dialog): the history and the ticks draw again
      this.history.key = null;
      this.timeline.ticksKey = null;
    }
    if (what?.type === 'state' || what === 'welcome') {
      const state = this.session.state;
      if (this.selected && !state.layers[this.selected] && !this.scrub) this.select(null);
      if (this.masking && !state.layers[this.masking.target.id]) this.mask.endMask();
      updateCanvasInfo(this.storage, this.canvasId, { name: state.name, version: state.version });
    }
    this.schedule();
  }

  /** Names the canvas knows (its people as the server stores them, and presence): kept in this browser too.
   * Whether any was new. */
  learnPeople() {
    let changed = false;
    for (const p of this.session.directory.values()) {
      if (this.names.get(p.user) === p.name) continue;
      rememberName(this.storage, p.user, p.name);
      this.names.set(p.user, p.name);
      changed = true;
    }
    return changed;
  }

  /** Who added layer `id`, as its row says it ({name, colour}: "You" for this page), or null when unknown. */
  authorOf(id) {
    const actor = this.session.authors.get(id);
    if (!actor || actor === SYSTEM_ACTOR) return null;
    return { name: actorLabel(actor, { me: this.me, names: this.names }), colour: colourFor(actor, this.everyone()) };
  }

  /** Everyone the history names and colours: this page first (its own colour), who is here, who the canvas
   * knows. */
  everyone() {
    return this.session.everyone({ user: this.me, name: this.identity.name, colour: this.identity.colour });
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.render();
    });
  }

  /** The past version being looked at ({version, state, loading, …}), or null live. */
  get scrub() {
    return this.timeTravel.scrub;
  }

  /** The mask being painted ({target, editing}), or null. */
  get masking() {
    return this.mask.masking;
  }

  get displayState() {
    return this.scrub?.state || this.session.state;
  }

  /** Why this page may not change the canvas now, or null when it may: no welcome yet, a view-only role, a
   * revoked link (or another refusal), or no live connection — edits made offline would only pile up. */
  get editBlock() {
    if (this.role === null) return 'connecting';
    if (this.status === 'fatal') return this.fatalCode === 4401 ? 'revoked' : 'closed';
    if (this.role === 'viewer') return 'viewer';
    if (this.status !== 'live') return 'offline';
    return null;
  }

  get canEdit() {
    return this.editBlock === null;
  }

  get readOnly() {
    return !this.canEdit || !!this.scrub;
  }

  people() {
    return [...this.session.people.values()];
  }

  layerName = (id) => this.displayState.layers[id]?.name || this.session.names.get(id) || id;

  operationTitle = (name) => this.opsByName.get(name)?.title || name;

  render() {
    const state = this.displayState;
    const live = this.session.state;
    const people = this.people();
    this.topbar.render(people);
    this.mask.renderTools();
    this.stage.renderReadOnly();
    this.renderEditBlock();
    this.right.uploadBtn.disabled = this.readOnly;

    this.viewport.setPreviews(this.scrub ? new Map() : this.session.previews);
    this.viewport.setState(state, { maskOps: this.maskOps });
    this.viewport.setSelected(this.selected);
    this.viewport.setPeople(this.scrub ? [] : people);
    this.layers.update({
      state,
      selected: this.selected,
      renders: this.scrub ? new Map() : this.session.renders,
      previews: this.scrub ? new Map() : this.session.previews,
      people: this.scrub ? [] : people,
      author: (id) => this.authorOf(id),
      readOnly: this.readOnly,
      operations: this.opsByName,
      past: !!this.scrub, // while the next version loads, the one shown is still a past one: no spinners
    });
    this.right.tabLayers.querySelector('.tab-count').textContent = state.order.length ? String(state.order.length) : '';
    const historyArgs = {
      head: live.version,
      scrubVersion: this.scrub?.version ?? null,
      events: this.session.events,
      people: this.everyone(),
      me: this.me,
      names: this.names,
      layerName: this.layerName,
      operationTitle: this.operationTitle,
      canRestore: this.canEdit,
      past: this.timeTravel.pastSummary(),
      checkpoints: live.checkpoints || {},
    };
    this.timeline.update(historyArgs);
    if (this.right.tab === 'history') this.history.update(historyArgs);
    this.right.render(state); // the Graph tab, when open
    this.timeTravel.renderBanner();
    this.mask.renderBar();
    this.stage.renderRenderPill(state);
    this.stage.renderBlocked();
    this.panel.render();
    this.stage.tickWhileCounting();
  }

  // --- selection and commands ---------------------------------------------------------------------------

  /** Shift+H / Shift+V with the move tool: the selected picture mirrored about its centre. */
  flipLayer(id, axis) {
    const layer = this.session.state.layers[id];
    if (!layer?.output || !this.canEdit) return;
    const from = this.viewport.moving?.layerId === id ? this.viewport.moving.placement : placementOf(layer);
    const placement = { ...from, [axis]: !from[axis] };
    this.viewport.moving = { layerId: id, placement, active: false, since: Date.now() };
    this.viewport.invalidate();
    this.sendTransform(id, placement);
    this.sendTransform.flush();
  }

  /** Arrow keys with the move tool: the selected picture by (dx, dy), shown at once, sent throttled. */
  nudgeLayer(id, dx, dy) {
    const layer = this.session.state.layers[id];
    if (!layer?.output || !this.canEdit) return;
    const moving = this.viewport.moving;
    const placement = movedBy(moving?.layerId === id ? moving.placement : placementOf(layer), dx, dy);
    this.viewport.moving = { layerId: id, placement, active: false, since: Date.now() };
    this.viewport.invalidate();
    this.sendTransform(id, placement);
  }

  select(id, { fromPanel = false } = {}) {
    if (this.masking && id !== this.selected) this.mask.endMask();
    const changed = id !== this.selected;
    this.selected = id;
    this.panel.propsDirty = false;
    if (fromPanel) this.panel.tab = 'layer';
    if (changed || fromPanel) this.panel.build();
    this.sendPresence(this.lastCursor ?? null);
    this.schedule();
  }

  /** The stage's banner says why editing is off (the role, a revoked link, the connection), and the page says
   * it too (`data-edit-block`), for styles and tests. */
  renderEditBlock() {
    const block = this.editBlock;
    this.root.dataset.editBlock = block || '';
    const text = EDIT_BLOCK_TEXT[block];
    const words = this.stage.readOnlyBanner.lastElementChild; // after the lock icon
    if (text && words && words.textContent !== text) words.textContent = text;
    this.stage.readOnlyBanner.dataset.reason = block || '';
  }

  /** Send `command` (see LayerActions.command): the ack, or null when refused — at once, unqueued, when this
   * page may not edit (a control left enabled, a shortcut, a throttled slider firing after the fact). */
  command(command, options) {
    const block = this.editBlock;
    if (block) {
      if (!options?.quiet) toast(block === 'viewer' ? 'You can only view this canvas.' : EDIT_BLOCK_TEXT[block] || 'Not connected yet.', { kind: 'error' });
      return Promise.resolve(null);
    }
    return this.actions.command(command, options);
  }
}
