// The editor: wires the session (state, live connection) to the panels, and turns clicks into commands.

import { h, icon, iconButton, toast, modal, confirmDialog, openMenu, saveBlob, pickFile, slug, fill, paintRange } from './dom.js';
import { Viewport } from './viewport.js';
import { LayerPanel } from './layers.js';
import { OperationForm, OperationPicker, categoryIcon } from './form.js';
import { TimelineBar, HistoryList, colourFor } from './timeline.js';
import { CanvasSession } from '../session.js';
import { LiveConnection, socketUrl } from '../live.js';
import { CommandQueue, newId } from '../commands.js';
import { Backoff } from '../backoff.js';
import { fromServer, historyCounts, stack } from '../state.js';
import { deletionImpact, allowedInputs } from '../dag.js';
import { formModel, groupOperations, initialValues } from '../schema.js';
import { maskParams, touches } from '../mask.js';
import { throttle, debounce } from '../throttle.js';
import { saveToken, updateCanvasInfo, rememberName, knownNames, initials, saveIdentity, editorUrl } from '../identity.js';
import { relativeTime } from '../history.js';
import { blobUrl, setBlobScope } from '../api.js';
import { pillStatus, blockedText, isCancelled } from '../renders.js';
import { rememberImportWarnings, takeImportWarnings, showImportWarnings } from './import-warnings.js';

const ROLE_LABEL = { viewer: 'Viewer', editor: 'Editor', owner: 'Owner', admin: 'Admin' };
const STATUS_LABEL = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', fatal: 'Disconnected', closed: 'Offline', idle: 'Connecting…' };
const REJECT_TEXT = {
  forbidden: 'You can only view this canvas.',
  history_conflict: null,
  nothing_to_undo: 'Nothing to undo.',
  nothing_to_redo: 'Nothing to redo.',
  rate_limited: 'Slow down a little: too many changes at once.',
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
    this.leftTab = 'new';
    this.newOp = this.opsByName.has('txt2img') ? 'txt2img' : this.groups[0]?.operations[0]?.name;
    this.newValues = new Map(); // operation -> values the user typed, kept when switching
    this.newSeeds = new Map();
    this.scrub = null; // {version, state}
    this.tool = 'pan';
    this.brushRadius = 16;
    this.masking = null; // {target, editing}
    this.rightTab = 'layers';
    this.session = new CanvasSession({
      canvasId,
      fetchState: () => this.api.state(canvasId),
      fetchEvents: (after) => this.api.events(canvasId, after),
    });
    this.queue = new CommandQueue();
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
    this.sendPresence = throttle((cursor) => this.live.sendFrame({ type: 'presence', cursor, selected_layer: this.selected }), 50);
    this.sendOpacity = throttle((layer, value) => this.command({ type: 'set_opacity', layer_id: layer.id, opacity: value }, { quiet: true }), 120);
    this.fetchPast = debounce((version) => this.loadPast(version), 90);
    this.build();
    this.bindKeys();
    window.opendream = this; // a handle for debugging and the end-to-end tests
  }

  start() {
    this.live.start();
    window.addEventListener('online', () => this.live.reconnectNow());
    showImportWarnings(takeImportWarnings(this.canvasId)); // a canvas just imported with warnings
  }

  // --- building the page ------------------------------------------------------------------------------

  build() {
    this.viewport = new Viewport({
      onCursor: (world) => {
        this.lastCursor = world ? { x: Math.round(world.x * 10) / 10, y: Math.round(world.y * 10) / 10 } : null;
        this.sendPresence(this.lastCursor);
      },
      onStrokesChanged: () => this.schedule(),
      onDropFiles: (files) => this.uploadFiles(files),
      onNeedMaskTarget: () => this.beginMask(),
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
      remove: (layer) => this.deleteLayer(layer),
      cancel: (layer) => this.cancelRender(layer),
      retry: (layer) => this.command({ type: 'retry_render', layer_id: layer.id }),
      download: (layer) => this.downloadLayer(layer),
    });
    this.timeline = new TimelineBar({
      scrub: (version) => this.scrubTo(version),
      live: () => this.backToLive(),
      fork: (version) => this.fork(version),
      restore: (version) => this.restore(version),
      renderVersion: (version) => this.renderPast(version),
    });
    this.history = new HistoryList({ scrub: (version) => (version >= this.session.version ? this.backToLive() : this.scrubTo(version)) });

    // top bar
    this.nameInput = h('input.canvas-name', {
      type: 'text',
      value: '',
      maxLength: 200,
      'aria-label': 'Canvas name',
      dataset: { testid: 'canvas-name' },
      onkeydown: (e) => {
        if (e.key === 'Enter') e.target.blur();
        if (e.key === 'Escape') {
          e.target.value = this.session.state.name;
          e.target.blur();
        }
      },
      onchange: (e) => {
        const name = e.target.value.trim();
        if (name && name !== this.session.state.name) this.command({ type: 'rename_canvas', name });
        else e.target.value = this.session.state.name;
      },
    });
    this.roleBadge = h('span.badge', { dataset: { testid: 'role' } });
    this.statusPill = h('span.status-pill', { dataset: { testid: 'connection' } });
    this.avatars = h('div.avatars', { dataset: { testid: 'avatars' } });
    this.undoBtn = iconButton('undo', 'Undo (Ctrl+Z)', () => this.undo(), { testid: 'undo' });
    this.redoBtn = iconButton('redo', 'Redo (Ctrl+Shift+Z)', () => this.redo(), { testid: 'redo' });
    this.exportBtn = h('button.btn', { type: 'button', dataset: { testid: 'export' }, onclick: (e) => this.exportMenu(e.currentTarget) }, icon('download'), 'Export', icon('chevronDown', { size: 14 }));
    this.importBtn = h('button.btn.btn-ghost', { type: 'button', dataset: { testid: 'import' }, title: 'Open a workflow (.json or a PNG made by Opendream) as a new canvas', onclick: () => this.importWorkflow() }, icon('upload'), 'Import');
    this.shareBtn = h('button.btn.btn-primary', { type: 'button', dataset: { testid: 'share' }, onclick: () => this.shareDialog() }, icon('share'), 'Share');
    const topbar = h(
      'header.topbar',
      null,
      h('a.brand', { href: './', title: 'All canvases' }, h('span.brand-mark'), h('span.brand-name', null, 'Opendream')),
      h('span.topbar-sep'),
      h('a.back-link', { href: './', title: 'All canvases' }, icon('chevronLeft'), 'Canvases'),
      h('span.topbar-slash', null, '/'),
      this.nameInput,
      this.roleBadge,
      this.statusPill,
      h('div.spacer'),
      this.avatars,
      h('div.btn-group', null, this.undoBtn, this.redoBtn),
      this.importBtn,
      this.exportBtn,
      this.shareBtn,
    );

    // left: new layer / layer properties
    this.tabNew = h('button.tab', { type: 'button', role: 'tab', dataset: { testid: 'tab-new' }, onclick: () => this.setLeftTab('new') }, icon('plus'), 'New layer');
    this.tabLayer = h('button.tab', { type: 'button', role: 'tab', dataset: { testid: 'tab-layer' }, onclick: () => this.setLeftTab('layer') }, icon('edit'), 'Layer');
    this.leftBody = h('div.panel-body');
    this.leftFoot = h('footer.panel-foot');
    this.left = h('aside.sidebar.sidebar-left', { dataset: { testid: 'left-panel' } }, h('div.tabs', { role: 'tablist' }, this.tabNew, this.tabLayer), this.leftBody, this.leftFoot);

    // right: layers / history
    this.tabLayers = h('button.tab', { type: 'button', role: 'tab', dataset: { testid: 'tab-layers' }, onclick: () => this.setRightTab('layers') }, icon('layers'), 'Layers', h('span.tab-count'));
    this.tabHistory = h('button.tab', { type: 'button', role: 'tab', dataset: { testid: 'tab-history' }, onclick: () => this.setRightTab('history') }, icon('history'), 'History');
    this.uploadBtn = h('button.btn.btn-small.btn-ghost', { type: 'button', dataset: { testid: 'upload' }, title: 'Add an image as a layer (or drop it on the canvas)', onclick: () => this.pickUpload() }, icon('upload'), 'Upload image');
    this.rightBody = h('div.panel-body.panel-body-flush');
    this.right = h(
      'aside.sidebar.sidebar-right',
      { dataset: { testid: 'right-panel' } },
      h('div.tabs', { role: 'tablist' }, this.tabLayers, this.tabHistory),
      h('div.panel-toolbar', null, this.uploadBtn, h('div.spacer'), h('span.panel-hint', null, 'Top of the stack first')),
      this.rightBody,
    );

    // centre: tools, canvas, banners, timeline
    this.toolButtons = {
      pan: iconButton('hand', 'Move the view (V / H; hold Space)', () => this.setTool('pan'), { testid: 'tool-pan' }),
      brush: iconButton('brush', 'Paint a mask (B)', () => this.setTool('brush'), { testid: 'tool-brush' }),
      eraser: iconButton('eraser', 'Erase from the mask (E)', () => this.setTool('eraser'), { testid: 'tool-eraser' }),
    };
    this.brushSize = h('input.slider.slider-small', {
      type: 'range',
      min: 1,
      max: 128,
      value: this.brushRadius,
      'aria-label': 'Brush size',
      dataset: { testid: 'brush-size' },
      oninput: (e) => this.setBrushRadius(Number(e.target.value)),
    });
    this.brushSizeValue = h('span.brush-size-value', null, `${this.brushRadius * 2}px`);
    this.brushGroup = h('div.tool-brush-size', null, h('span.tool-label', null, 'Size'), this.brushSize, this.brushSizeValue);
    this.toolbar = h('div.toolbar.floating', { dataset: { testid: 'toolbar' } }, this.toolButtons.pan, this.toolButtons.brush, this.toolButtons.eraser, h('span.sep'), this.brushGroup);
    this.maskBar = h('div.mask-bar.floating', { dataset: { testid: 'mask-bar' } });
    this.scrubBanner = h('div.scrub-banner', { dataset: { testid: 'scrub-banner' } });
    this.renderPill = h('div.render-pill.floating', { dataset: { testid: 'render-pill' } });
    this.blockedBanner = h('div.blocked-banner.floating', { dataset: { testid: 'render-blocked' }, role: 'status', hidden: true });
    this.readOnlyBanner = h('div.readonly-banner.floating', { dataset: { testid: 'readonly-banner' } }, icon('lock', { size: 14 }), h('span', null, 'View only — you can look, scrub the history and export, but not change this canvas.'));
    this.loading = h('div.loading-cover', null, h('span.spinner.spinner-large'), h('span', null, 'Opening canvas…'));
    this.fatal = h('div.fatal-cover', { hidden: true });
    const centre = h(
      'main.centre',
      null,
      h('div.stage-wrap', null, this.viewport.el, this.toolbar, this.maskBar, this.scrubBanner, this.renderPill, this.blockedBanner, this.readOnlyBanner, this.loading, this.fatal),
      this.timeline.el,
    );
    fill(this.root, h('div.app.editor-app', null, topbar, h('div.workspace', null, this.left, centre, this.right)));
    this.setTool('pan');
    this.buildLeft();
    this.setRightTab('layers');
  }

  // --- session and rendering ----------------------------------------------------------------------------

  onStatus(status, detail) {
    this.status = status;
    if (status === 'live' && detail?.you) {
      this.role = detail.you.role;
      this.loading.hidden = true;
      updateCanvasInfo(this.storage, this.canvasId, { role: this.role });
      this.sendPresence(null);
      this.sendPresence.flush();
    }
    if (status === 'fatal') {
      this.loading.hidden = true;
      this.fatal.hidden = false;
      fill(this.fatal, 
        h('div.fatal-card', null, icon('lock', { size: 28 }), h('h3', null, 'Cannot open this canvas'), h('p', null, detail?.message || 'The server closed the connection.'), h('a.btn.btn-primary', { href: './' }, 'All canvases')),
      );
    }
    this.schedule();
  }

  onSession(what) {
    if (what === 'presence') {
      for (const p of this.session.people.values()) {
        if (!p.name) continue;
        rememberName(this.storage, p.user, p.name);
        this.names.set(p.user, p.name);
      }
    }
    if (what?.type === 'state' || what === 'welcome') {
      const state = this.session.state;
      if (this.selected && !state.layers[this.selected] && !this.scrub) this.select(null);
      if (this.masking && !state.layers[this.masking.target.id]) this.endMask();
      updateCanvasInfo(this.storage, this.canvasId, { name: state.name, version: state.version });
    }
    this.schedule();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.render();
    });
  }

  get displayState() {
    return this.scrub?.state || this.session.state;
  }

  get canEdit() {
    return this.role !== null && this.role !== 'viewer';
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
    document.title = `${live.name || 'Canvas'} — Opendream`;
    if (document.activeElement !== this.nameInput) this.nameInput.value = live.name || '';
    this.nameInput.readOnly = !this.canEdit;
    this.roleBadge.textContent = ROLE_LABEL[this.role] || '';
    this.roleBadge.hidden = !this.role;
    this.roleBadge.dataset.role = this.role || '';
    const pending = this.queue.size;
    this.statusPill.dataset.status = this.status;
    fill(this.statusPill, h('span.status-dot'), STATUS_LABEL[this.status] || this.status, pending && this.status !== 'live' ? h('small', null, ` · ${pending} unsent`) : null);
    this.renderAvatars(people);
    const counts = historyCounts(live, this.me);
    this.undoBtn.disabled = !this.canEdit || !!this.scrub || counts.undo === 0;
    this.redoBtn.disabled = !this.canEdit || !!this.scrub || counts.redo === 0;
    this.shareBtn.disabled = !(this.role === 'owner' || this.role === 'admin');
    this.shareBtn.title = this.shareBtn.disabled ? 'Only the owner can share this canvas' : 'Invite people with a link';
    for (const button of Object.values(this.toolButtons)) button.classList.remove('active');
    this.toolButtons[this.tool]?.classList.add('active');
    this.toolButtons.brush.disabled = this.toolButtons.eraser.disabled = this.readOnly;
    this.brushGroup.hidden = this.tool === 'pan';
    this.readOnlyBanner.hidden = this.canEdit || this.role === null;
    this.uploadBtn.disabled = this.readOnly;

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
      readOnly: this.readOnly,
      operations: this.opsByName,
      past: !!this.scrub && !this.scrub.loading,
    });
    this.tabLayers.querySelector('.tab-count').textContent = state.order.length ? String(state.order.length) : '';
    const historyArgs = {
      head: live.version,
      scrubVersion: this.scrub?.version ?? null,
      events: this.session.events,
      people,
      me: this.me,
      names: this.names,
      layerName: this.layerName,
      operationTitle: this.operationTitle,
      canRestore: this.canEdit,
      past: this.pastSummary(),
    };
    this.timeline.update(historyArgs);
    if (this.rightTab === 'history') this.history.update(historyArgs);
    this.renderScrubBanner();
    this.renderMaskBar();
    this.renderRenderPill(state);
    this.renderBlocked();
    this.renderLeft();
    this.tickWhileCounting();
  }

  /** Countdowns (an ETA, a retry) on screen: draw again every second while there is one. */
  tickWhileCounting() {
    const counting = !this.scrub && (!!this.session.blocked || [...this.session.renders.values()].some((r) => r.etaS !== null && r.etaS !== undefined));
    if (counting && !this.ticker) this.ticker = setInterval(() => this.schedule(), 1000);
    if (!counting && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
  }

  renderBlocked() {
    const blocked = this.scrub ? null : this.session.blocked;
    this.blockedBanner.hidden = !blocked;
    if (!blocked) return;
    const text = blockedText(blocked);
    if (text === this.blockedKey) return;
    this.blockedKey = text;
    fill(this.blockedBanner, icon('alert', { size: 14 }), h('span', null, text));
  }

  renderAvatars(people) {
    const byUser = new Map();
    for (const p of people) if (!byUser.has(p.user) && p.user !== this.me) byUser.set(p.user, p);
    const others = [...byUser.values()];
    const key = JSON.stringify([others.map((p) => [p.user, p.name, p.colour]), this.identity.name, this.identity.colour]);
    if (key === this.avatarsKey) return;
    this.avatarsKey = key;
    const me = h(
      'button.avatar.avatar-me',
      { type: 'button', style: { background: this.identity.colour }, title: `You (${this.identity.name}) — click to change your name`, dataset: { testid: 'avatar-me' }, onclick: () => this.renameMe() },
      initials(this.identity.name),
    );
    fill(this.avatars, 
      ...others.slice(0, 5).map((p) => h('span.avatar', { style: { background: p.colour }, title: p.name, dataset: { user: p.user, testid: 'avatar' } }, initials(p.name))),
      others.length > 5 ? h('span.avatar.avatar-more', null, `+${others.length - 5}`) : null,
      me,
    );
  }

  renderScrubBanner() {
    this.scrubBanner.hidden = !this.scrub;
    if (!this.scrub) return;
    fill(this.scrubBanner, 
      icon('history', { size: 14 }),
      h('span', null, `Viewing version ${this.scrub.version} of ${this.session.version} · read-only`),
      this.scrub.loading ? h('span.spinner') : null,
      this.pastNote(),
    );
  }

  renderRenderPill(state) {
    if (this.scrub) {
      this.renderPill.hidden = true;
      return;
    }
    const busy = stack(state).filter((l) => l.status === 'pending' || l.status === 'stale');
    const pill = pillStatus(state.layers, busy, this.session.renders);
    this.renderPill.hidden = !pill;
    if (!pill) return;
    const key = JSON.stringify(pill);
    if (key === this.pillKey && this.renderPill.childNodes.length) return;
    this.pillKey = key;
    fill(this.renderPill, 
      h('span.spinner'),
      h('span.pill-text', null, pill.title, pill.detail ? h('small', null, ` · ${pill.detail}`) : null),
      h('span.pill-progress', null, h('span', { style: { width: `${Math.round(pill.fraction * 100)}%` } })),
    );
  }

  renderMaskBar() {
    this.maskBar.hidden = !this.masking;
    if (!this.masking) return;
    const strokes = this.viewport.mask?.strokes.length || 0;
    const target = this.masking.target;
    fill(this.maskBar, 
      h('span.mask-swatch'),
      h('span.mask-text', null, this.masking.editing ? `Editing “${this.masking.editing.name}”` : `Mask on “${target.name}”`, h('small', null, ` · ${strokes} stroke${strokes === 1 ? '' : 's'}`)),
      iconButton('undo', 'Undo last stroke', () => this.viewport.undoStroke(), { testid: 'mask-undo-stroke', disabled: !strokes }),
      h('button.btn.btn-small', { type: 'button', onclick: () => this.endMask(), dataset: { testid: 'mask-discard' } }, 'Discard'),
      h('button.btn.btn-small.btn-primary', { type: 'button', disabled: !strokes, onclick: () => this.saveMask(), dataset: { testid: 'mask-save' } }, icon('check'), this.masking.editing ? 'Update mask' : 'Save mask'),
    );
  }

  // --- left panel: new layer / layer properties --------------------------------------------------------

  setLeftTab(tab) {
    this.leftTab = tab;
    this.buildLeft();
  }

  setRightTab(tab) {
    this.rightTab = tab;
    this.tabLayers.classList.toggle('active', tab === 'layers');
    this.tabHistory.classList.toggle('active', tab === 'history');
    fill(this.rightBody, tab === 'layers' ? this.layers.el : this.history.el);
    this.right.querySelector('.panel-toolbar').hidden = tab !== 'layers';
    if (tab === 'history') {
      this.history.key = null;
      if (!this.session.timelineComplete) this.session.loadTimeline();
    }
    this.schedule();
  }

  formContext(excludeFor = null) {
    const state = this.displayState;
    return {
      layers: () => stack(this.displayState),
      excluded: excludeFor ? new Set(state.order.filter((id) => !allowedInputs(state, excludeFor).includes(id))) : new Set(),
      uploadBlob: (file) => this.api.uploadBlob(file),
      // the form's operation (the layer's, or the one picked for a new layer) and the server's limits
      operation: this.opsByName.get(excludeFor ? state.layers[excludeFor]?.operation : this.newOp) || null,
      limits: this.limits,
    };
  }

  /** Rebuild the left panel (tab switch, operation change, selection change). */
  buildLeft() {
    this.tabNew.classList.toggle('active', this.leftTab === 'new');
    this.tabLayer.classList.toggle('active', this.leftTab === 'layer');
    this.form = null;
    this.propsKey = null;
    if (this.leftTab === 'new') this.buildNew();
    else this.buildProps();
  }

  buildNew() {
    const op = this.opsByName.get(this.newOp);
    const picker = new OperationPicker({
      groups: this.groups,
      value: this.newOp,
      onPick: (name) => {
        this.saveNewValues();
        this.newOp = name;
        this.buildLeft();
      },
    });
    const body = [h('div.section', null, h('div.section-title', null, 'Operation'), picker.el)];
    fill(this.leftFoot, );
    if (!op) {
      fill(this.leftBody, ...body);
      return;
    }
    const model = formModel(op);
    const selected = this.selected ? this.displayState.layers[this.selected] : null;
    const values = this.newValues.get(op.name) || initialValues(model, { selected, layers: stack(this.displayState), maskOps: this.maskOps });
    this.form = new OperationForm({
      model,
      values,
      seed: this.newSeeds.get(op.name) ?? null,
      context: this.formContext(),
      readOnly: this.readOnly,
      onChange: () => this.saveNewValues(),
    });
    const hint = op.name === 'mask' ? h('div.hint', null, icon('brush', { size: 14 }), h('span', null, 'Tip: pick the brush (B) and paint on the canvas to make a mask.')) : null;
    body.push(h('div.section', null, h('div.section-title', null, 'Settings', h('button.link-btn', { type: 'button', onclick: () => this.resetNew(), dataset: { testid: 'reset-form' } }, 'Reset')), hint, this.form.el));
    fill(this.leftBody, ...body);
    this.generateBtn = h(
      'button.btn.btn-primary.btn-block.btn-large',
      { type: 'button', dataset: { testid: 'generate' }, disabled: this.readOnly, onclick: () => this.addLayer() },
      icon(op.category === 'generate' ? 'sparkles' : 'plus'),
      op.category === 'generate' ? 'Generate' : `Add ${op.title.toLowerCase()} layer`,
    );
    // what the render will be (size, steps, limits) stays in sight next to the button that starts it
    fill(this.leftFoot, this.readOnly ? null : this.form.estimateEl, this.generateBtn, this.readOnly ? h('div.foot-note', null, icon('lock', { size: 12 }), this.scrub ? 'Go back to live to edit.' : 'View only') : h('div.foot-note', null, 'Adds a layer on top. ', h('kbd', null, 'Ctrl'), '+', h('kbd', null, 'Enter')));
  }

  saveNewValues() {
    if (!this.form || this.leftTab !== 'new') return;
    this.newValues.set(this.newOp, this.form.values);
    this.newSeeds.set(this.newOp, this.form.seed);
  }

  resetNew() {
    this.newValues.delete(this.newOp);
    this.newSeeds.delete(this.newOp);
    this.buildLeft();
  }

  buildProps() {
    const state = this.displayState;
    const layer = this.selected ? state.layers[this.selected] : null;
    fill(this.leftFoot, );
    if (!layer) {
      fill(this.leftBody, h('div.panel-empty', null, icon('layers', { size: 22 }), h('p', null, 'No layer selected'), h('small', null, 'Pick a layer on the right to see and change how it was made.')));
      this.propsKey = 'none';
      return;
    }
    this.propsKey = this.layerKey(layer);
    this.propsLayer = layer;
    const op = this.opsByName.get(layer.operation);
    const out = layer.output;
    const info = h(
      'div.layer-info',
      null,
      h('div.layer-info-head', null, h('span.op-icon', { dataset: { category: op?.category || '' } }, icon(categoryIcon(op?.category))), h('div', null, h('strong', { dataset: { testid: 'props-name' } }, layer.name), h('small', null, op?.title || layer.operation)), isCancelled(layer) ? h('span.status-chip.status-cancelled', null, 'cancelled') : h(`span.status-chip.status-${layer.status}`, null, layer.status)),
      h(
        'dl.facts',
        null,
        out ? [h('dt', null, 'Size'), h('dd', null, `${out.width} × ${out.height}`)] : null,
        out ? [h('dt', null, 'Render'), h('dd', null, out.cached ? 'from cache' : `${Math.round(out.duration_ms)} ms`)] : null,
        layer.parents.length ? [h('dt', null, 'Made from'), h('dd', null, layer.parents.map((p) => this.layerName(p)).join(', '))] : null,
        layer.error ? [h('dt', null, isCancelled(layer) ? 'Cancelled' : 'Error'), h(isCancelled(layer) ? 'dd' : 'dd.error-text', null, layer.error)] : null,
      ),
    );
    const sections = [h('div.section', null, info)];
    if (!op) {
      sections.push(h('div.hint', null, `The operation “${layer.operation}” is not installed on this server.`));
      fill(this.leftBody, ...sections);
      return;
    }
    const model = formModel(op);
    this.form = new OperationForm({
      model,
      values: initialValues(model, { existing: layer.params }),
      seed: layer.seed,
      context: this.formContext(layer.id),
      readOnly: this.readOnly,
      onChange: () => this.updatePropsDirty(),
    });
    this.propsOriginal = JSON.stringify([this.form.params(), this.form.seed]);
    sections.push(h('div.section', null, h('div.section-title', null, 'Settings'), this.form.el));
    const actions = [];
    if (this.maskOps.has(layer.operation) && this.opsByName.has('inpaint')) {
      actions.push(h('button.btn.btn-block', { type: 'button', dataset: { testid: 'inpaint-with-mask' }, disabled: this.readOnly, onclick: () => this.startOperation('inpaint') }, icon('sparkles'), 'Inpaint this area'));
    }
    if (layer.output && !this.maskOps.has(layer.operation)) {
      actions.push(h('button.btn.btn-block', { type: 'button', dataset: { testid: 'paint-mask' }, disabled: this.readOnly, onclick: () => this.setTool('brush') }, icon('brush'), 'Paint a mask on it'));
      if (this.opsByName.has('img2img')) actions.push(h('button.btn.btn-block', { type: 'button', disabled: this.readOnly, onclick: () => this.startOperation('img2img') }, icon('wand'), 'Vary with image to image'));
    }
    if (actions.length) sections.push(h('div.section.section-actions', null, ...actions));
    fill(this.leftBody, ...sections);
    this.applyBtn = h('button.btn.btn-primary.btn-block.btn-large', { type: 'button', disabled: true, dataset: { testid: 'apply' }, onclick: () => this.applyChanges() }, icon('check'), 'Apply changes');
    this.revertBtn = h('button.btn', { type: 'button', disabled: true, onclick: () => this.buildLeft() }, 'Revert');
    fill(this.leftFoot, 
      this.readOnly ? null : this.form.estimateEl,
      this.readOnly ? null : h('div.row.gap-8', null, this.revertBtn, this.applyBtn),
      h('div.foot-note', null, this.readOnly ? [icon('lock', { size: 12 }), this.scrub ? 'An old version: read-only.' : 'View only'] : 'Re-renders this layer and the layers made from it.'),
    );
  }

  layerKey(layer) {
    return `${layer.id}:${JSON.stringify(layer.params)}:${layer.seed}`;
  }

  updatePropsDirty() {
    const dirty = this.form && JSON.stringify([this.form.params(), this.form.seed]) !== this.propsOriginal;
    this.propsDirty = dirty;
    if (this.applyBtn) this.applyBtn.disabled = !dirty || this.readOnly;
    if (this.revertBtn) this.revertBtn.disabled = !dirty;
  }

  /** Keep the left panel in step with the state without disturbing what is being typed. */
  renderLeft() {
    const readOnly = this.readOnly;
    if (readOnly !== this.leftReadOnly) {
      this.leftReadOnly = readOnly;
      this.buildLeft();
      return;
    }
    if (this.leftTab === 'layer') {
      const layer = this.selected ? this.displayState.layers[this.selected] : null;
      const key = layer ? this.layerKey(layer) : 'none';
      if (key !== this.propsKey && !this.propsDirty) {
        this.buildLeft();
        return;
      }
      if (layer && this.propsLayer && (layer.status !== this.propsLayer.status || layer.output?.sha256 !== this.propsLayer.output?.sha256)) {
        this.buildLeft();
        return;
      }
    }
    if (this.form) this.form.refresh(this.formContext(this.leftTab === 'layer' ? this.selected : null));
  }

  select(id, { fromPanel = false } = {}) {
    if (this.masking && id !== this.selected) this.endMask();
    const changed = id !== this.selected;
    this.selected = id;
    this.propsDirty = false;
    if (fromPanel) this.leftTab = 'layer';
    if (changed || fromPanel) this.buildLeft();
    this.sendPresence(this.lastCursor ?? null);
    this.schedule();
  }

  /** Open the new-layer form on `operation`, inputs filled from the selection. */
  startOperation(operation) {
    this.newOp = operation;
    this.newValues.delete(operation);
    this.leftTab = 'new';
    this.buildLeft();
  }

  // --- commands -----------------------------------------------------------------------------------------

  command(command, { quiet = false } = {}) {
    if (!this.canEdit) {
      toast('You can only view this canvas.', { kind: 'error' });
      return Promise.resolve(null);
    }
    const { promise } = this.queue.submit(command);
    return promise.catch((error) => {
      if (!quiet || error.code !== 'rate_limited') toast(REJECT_TEXT[error.code] || error.message, { kind: 'error' });
      throw error;
    }).catch(() => null);
  }

  async addLayer() {
    if (this.readOnly || !this.form) return;
    const problems = this.form.problems();
    if (!this.form.showErrors(problems)) {
      toast(`Check the settings: ${problems[0].path.replace(/\./g, ' › ')} — ${problems[0].message}`, { kind: 'error' });
      return;
    }
    const layerId = newId('L').slice(0, 17);
    const command = { type: 'add_layer', layer_id: layerId, operation: this.newOp, params: this.form.params() };
    if (this.form.model.usesSeed && this.form.seed !== null && Number.isFinite(this.form.seed)) command.seed = this.form.seed;
    this.generateBtn.disabled = true;
    const ack = await this.commandWithFieldErrors(command);
    this.generateBtn.disabled = this.readOnly;
    if (ack) {
      this.selected = layerId;
      this.schedule();
    }
  }

  async commandWithFieldErrors(command) {
    if (!this.canEdit) return null;
    try {
      return await this.queue.submit(command).promise;
    } catch (error) {
      if (error.field && this.form) this.form.showErrors([{ path: error.field, message: error.message }]);
      toast(REJECT_TEXT[error.code] || error.message, { kind: 'error' });
      return null;
    }
  }

  async applyChanges() {
    const layer = this.propsLayer;
    if (!layer || !this.form || this.readOnly) return;
    const problems = this.form.problems();
    if (!this.form.showErrors(problems)) return;
    const command = { type: 'change_params', layer_id: layer.id, params: this.form.params() };
    if (this.form.model.usesSeed && this.form.seed !== null && Number.isFinite(this.form.seed)) command.seed = this.form.seed;
    this.applyBtn.disabled = true;
    const ack = await this.commandWithFieldErrors(command);
    if (ack) {
      this.propsDirty = false;
      toast('Re-rendering with the new settings', { kind: 'success', timeout: 2000 });
    } else this.updatePropsDirty();
  }

  async deleteLayer(layer) {
    if (this.readOnly) return;
    const { dependents } = deletionImpact(this.session.state, layer.id);
    const details = dependents.length
      ? h(
          'div.dependents',
          { dataset: { testid: 'dependents' } },
          h('p.muted', null, `${dependents.length === 1 ? 'This layer was' : 'These layers were'} made from it and will be deleted too:`),
          h(
            'ul.dependent-list',
            null,
            dependents.map((d) => h('li', { dataset: { layerId: d.id } }, h('span.dependent-thumb', null, d.output ? h('img', { src: blobUrl(d.output.sha256), alt: '' }) : icon('image', { size: 14 })), h('span', null, d.name), h('small', null, this.operationTitle(d.operation)))),
          ),
        )
      : null;
    const ok = await confirmDialog({
      title: dependents.length ? `Delete “${layer.name}” and ${dependents.length} more?` : `Delete “${layer.name}”?`,
      message: 'You can bring it back with Undo.',
      details,
      confirm: dependents.length ? `Delete ${dependents.length + 1} layers` : 'Delete layer',
      danger: true,
      testid: 'confirm-delete',
    });
    if (!ok) return;
    if (this.selected === layer.id || dependents.some((d) => d.id === this.selected)) this.select(null);
    await this.command({ type: 'delete_layer', layer_id: layer.id });
  }

  cancelRender(layer) {
    if (!this.live.sendFrame({ type: 'cancel', layer_id: layer.id })) toast('Not connected: try again in a moment.', { kind: 'error' });
  }

  undo() {
    if (!this.canEdit || this.scrub) return;
    this.command({ type: 'undo' });
  }

  redo() {
    if (!this.canEdit || this.scrub) return;
    this.command({ type: 'redo' });
  }

  // --- uploads and downloads ---------------------------------------------------------------------------

  async pickUpload() {
    const file = await pickFile('image/png,image/jpeg,image/webp');
    if (file) this.uploadFiles([file]);
  }

  async uploadFiles(files) {
    if (this.readOnly) {
      toast('This canvas is read-only here.', { kind: 'error' });
      return;
    }
    for (const file of files) {
      const dismiss = toast(`Uploading ${file.name}…`, { timeout: 0 });
      try {
        const blob = await this.api.uploadBlob(file);
        const layerId = newId('L').slice(0, 17);
        const name = (file.name || 'Upload').replace(/\.[a-z0-9]+$/i, '').slice(0, 200) || 'Upload';
        const ack = await this.command({ type: 'add_layer', layer_id: layerId, operation: 'upload', params: { blob: blob.sha256 }, name });
        if (ack) this.select(layerId);
      } catch (error) {
        toast(`Upload failed: ${error.message}`, { kind: 'error' });
      } finally {
        dismiss();
      }
    }
  }

  async downloadLayer(layer) {
    try {
      const blob = await this.api.download(this.api.layerPngPath(this.canvasId, layer.id));
      saveBlob(blob, `${slug(this.session.state.name)}-${slug(layer.name)}.png`);
    } catch (error) {
      toast(`Download failed: ${error.message}`, { kind: 'error' });
    }
  }

  exportMenu(anchor) {
    const version = this.scrub?.version ?? null;
    const at = version ? ` (v${version})` : '';
    openMenu(anchor, [
      { label: `Workflow${at}`, hint: 'JSON: replay it anywhere', icon: 'file', testid: 'export-json', run: () => this.exportWorkflow(version) },
      { label: `Image with workflow${at}`, hint: 'PNG of the canvas; the workflow rides inside', icon: 'image', testid: 'export-png', run: () => this.exportPng(version) },
      'separator',
      { label: `Fork${at}`, hint: 'A copy of the canvas that you own', icon: 'fork', testid: 'export-fork', run: () => this.fork(version ?? this.session.version) },
      { label: 'Selected layer as PNG', icon: 'download', testid: 'export-layer', disabled: !this.selected || !this.displayState.layers[this.selected]?.output || !!this.scrub, run: () => this.downloadLayer(this.displayState.layers[this.selected]) },
    ], { align: 'right', testid: 'export-menu' });
  }

  async exportWorkflow(version = null) {
    try {
      const workflow = await this.api.workflow(this.canvasId, version);
      const blob = new Blob([JSON.stringify(workflow, null, 2)], { type: 'application/json' });
      saveBlob(blob, `${slug(this.session.state.name)}${version ? `-v${version}` : ''}.opendream.json`);
    } catch (error) {
      toast(`Export failed: ${error.message}`, { kind: 'error' });
    }
  }

  async exportPng(version = null) {
    try {
      const blob = await this.api.download(this.api.compositePngPath(this.canvasId, version ?? this.session.version));
      saveBlob(blob, `${slug(this.session.state.name)}-v${version ?? this.session.version}.png`);
    } catch (error) {
      toast(`Export failed: ${error.message}`, { kind: 'error' });
    }
  }

  async importWorkflow() {
    const file = await pickFile('.json,.png,application/json,image/png');
    if (!file) return;
    try {
      const created = await this.api.importWorkflow(file);
      if (created.owner_token) saveToken(this.storage, created.id, created.owner_token, { role: 'owner' });
      rememberImportWarnings(created.id, created.warnings);
      toast('Workflow imported as a new canvas', { kind: 'success' });
      location.href = editorUrl(created.id);
    } catch (error) {
      toast(`Import failed: ${error.message}`, { kind: 'error' });
    }
  }

  // --- mask painting ------------------------------------------------------------------------------------

  setTool(tool) {
    if ((tool === 'brush' || tool === 'eraser') && this.readOnly) return;
    this.tool = tool;
    this.viewport.setTool(tool);
    if ((tool === 'brush' || tool === 'eraser') && !this.masking) this.beginMask();
    this.schedule();
  }

  setBrushRadius(radius) {
    this.brushRadius = Math.max(1, Math.min(128, Math.round(radius)));
    this.brushSize.value = String(this.brushRadius);
    paintRange(this.brushSize);
    this.brushSizeValue.textContent = `${this.brushRadius * 2}px`;
    this.viewport.setBrushRadius(this.brushRadius);
  }

  /** Decide what to paint on: the selected layer, or (a mask selected) continue that mask. */
  beginMask() {
    if (this.readOnly) return false;
    const state = this.session.state;
    let layer = this.selected ? state.layers[this.selected] : null;
    if (!layer) {
      const top = stack(state).reverse().find((l) => l.output && !this.maskOps.has(l.operation));
      if (top) layer = top;
    }
    if (!layer) {
      toast('Add or select a layer first, then paint a mask on it.', { kind: 'error' });
      this.setTool('pan');
      return false;
    }
    let target = layer;
    let editing = null;
    if (layer.operation === 'mask') {
      editing = layer;
      target = state.layers[layer.params.layer] || layer;
    } else if (!layer.output) {
      toast('That layer has no picture yet: wait for it to render.', { kind: 'error' });
      this.setTool('pan');
      return false;
    }
    this.masking = { target, editing };
    if (this.selected !== layer.id) {
      this.selected = layer.id;
      this.buildLeft();
    }
    this.viewport.beginMask(target, editing);
    this.schedule();
    return true;
  }

  endMask() {
    this.masking = null;
    this.viewport.endMask();
    if (this.tool !== 'pan') {
      this.tool = 'pan';
      this.viewport.setTool('pan');
    }
    this.schedule();
  }

  async saveMask() {
    if (!this.masking) return;
    const { target, editing } = this.masking;
    const size = target.output || { width: Infinity, height: Infinity };
    const strokes = this.viewport.mask.strokes.filter((s) => touches(s, size.width, size.height));
    if (!strokes.length) {
      toast('Paint on the picture to make a mask.', { kind: 'error' });
      return;
    }
    let ack;
    let id;
    if (editing) {
      id = editing.id;
      ack = await this.command({ type: 'change_params', layer_id: editing.id, params: maskParams(target.id, strokes, editing.params) });
    } else {
      id = newId('L').slice(0, 17);
      ack = await this.command({ type: 'add_layer', layer_id: id, operation: 'mask', params: maskParams(target.id, strokes), name: `Mask on ${target.name}`.slice(0, 200) });
    }
    if (!ack) return;
    this.endMask();
    this.select(id, { fromPanel: true });
    toast(editing ? 'Mask updated' : 'Mask saved as a layer', {
      kind: 'success',
      action: this.opsByName.has('inpaint') ? { label: 'Inpaint it', run: () => this.startOperation('inpaint') } : null,
    });
  }

  // --- time travel ---------------------------------------------------------------------------------------

  scrubTo(version) {
    if (version >= this.session.version) return this.backToLive();
    if (this.masking) this.endMask();
    this.scrub = { version, state: this.scrub?.state || null, loading: true };
    this.fetchPast(version);
    this.schedule();
  }

  async loadPast(version) {
    try {
      const json = await this.api.state(this.canvasId, version);
      if (!this.scrub || this.scrub.version !== version) return;
      this.scrub = { version, state: fromServer(json), loading: false, missing: new Map(), checking: false, rendering: false };
      this.schedule();
      // layers that had no picture yet at that version: the recorded or cached images, if there are any
      if (json.layers.some((l) => l.status !== 'rendered' || !l.output)) {
        this.scrub.checking = true;
        this.fillPastImages(version, () => this.api.images(this.canvasId, version));
      }
    } catch (error) {
      toast(`Cannot show version ${version}: ${error.message}`, { kind: 'error' });
      if (this.scrub?.version === version) this.scrub = { ...this.scrub, loading: false };
    }
    this.schedule();
  }

  /** Fill the past version's layers with the images `request()` answers; note those still missing. */
  async fillPastImages(version, request) {
    let answer;
    try {
      answer = await request();
    } catch (error) {
      if (this.scrub?.version === version) this.scrub = { ...this.scrub, checking: false, rendering: false };
      this.schedule();
      return { error };
    }
    const images = answer?.images || {};
    const found = Object.entries(images).filter(([id, image]) => image?.sha256 && !this.scrub?.state?.layers[id]?.output);
    const sizes = await Promise.all(found.map(([, image]) => imageSize(blobUrl(image.sha256))));
    if (!this.scrub || this.scrub.version !== version || !this.scrub.state) return { stale: true };
    const layers = { ...this.scrub.state.layers };
    found.forEach(([id, image], index) => {
      if (!layers[id] || !sizes[index]) return;
      layers[id] = { ...layers[id], output: { sha256: image.sha256, width: sizes[index].width, height: sizes[index].height, extra: [], rendered_later: image.source || true } };
    });
    const missing = new Map();
    for (const [id, image] of Object.entries(images)) if (image && !image.sha256 && layers[id] && !layers[id].output) missing.set(id, image.missing || 'Not rendered at this version');
    this.scrub = { ...this.scrub, state: { ...this.scrub.state, layers }, missing, checking: false, rendering: false };
    this.schedule();
    return { missing };
  }

  /** What a past version lacks: {version, missing (layers without a picture), renderable (of those, the ones
   * a render can make: not failed or cancelled there), checking, rendering, canRender}, or null live. */
  pastSummary() {
    if (!this.scrub || this.scrub.loading || !this.scrub.state) return null;
    const layers = stack(this.scrub.state);
    const missing = layers.filter((l) => !l.output && l.status !== 'failed');
    return {
      version: this.scrub.version,
      missing: missing.length,
      renderable: missing.length,
      checking: !!this.scrub.checking,
      rendering: !!this.scrub.rendering,
      canRender: this.canEdit,
    };
  }

  pastNote() {
    const past = this.pastSummary();
    if (!past || past.checking || !past.missing) return null;
    const count = past.missing === 1 ? '1 layer' : `${past.missing} layers`;
    const who = past.canRender ? '' : past.missing === 1 ? ' — an editor can render it' : ' — an editor can render them';
    return h('span.scrub-note', { dataset: { testid: 'past-missing' }, title: `${count} not rendered at this version${who}` }, `· ${count} not rendered at this version${who}`);
  }

  /** "Render this version": the server renders what the past version lacks (editors only). */
  async renderPast(version) {
    if (!this.canEdit || !this.scrub || this.scrub.version !== version || this.scrub.rendering) return;
    this.scrub = { ...this.scrub, rendering: true };
    this.schedule();
    const result = await this.fillPastImages(version, () => this.api.renderImages(this.canvasId, version));
    if (result.error) toast(`Cannot render version ${version}: ${result.error.message}`, { kind: 'error' });
    else if (result.missing?.size) {
      const [id, why] = [...result.missing][0];
      toast(`${result.missing.size === 1 ? 'A layer' : `${result.missing.size} layers`} could not be rendered: “${this.layerName(id)}” — ${why}`, { kind: 'error' });
    } else if (!result.stale) toast(`Rendered version ${version}`, { kind: 'success', timeout: 2000 });
  }

  backToLive() {
    if (!this.scrub) return;
    this.fetchPast.cancel();
    this.scrub = null;
    if (this.selected && !this.session.state.layers[this.selected]) this.selected = null;
    this.schedule();
  }

  async fork(version) {
    try {
      const forked = await this.api.fork(this.canvasId, version);
      if (forked.owner_token) saveToken(this.storage, forked.id, forked.owner_token, { role: 'owner' });
      toast(`Forked version ${version} into a new canvas`, { kind: 'success' });
      location.href = editorUrl(forked.id);
    } catch (error) {
      toast(`Fork failed: ${error.message}`, { kind: 'error' });
    }
  }

  async restore(version) {
    if (!this.canEdit) return;
    const ok = await confirmDialog({
      title: `Restore version ${version}?`,
      message: 'The canvas goes back to how it was at this version. Nothing is lost: the history keeps everything, and Undo takes it back.',
      confirm: 'Restore',
      testid: 'confirm-restore',
    });
    if (!ok) return;
    try {
      await this.api.restore(this.canvasId, version, newId('restore-'));
      this.backToLive();
      toast(`Restored version ${version}`, { kind: 'success' });
    } catch (error) {
      toast(`Restore failed: ${error.message}`, { kind: 'error' });
    }
  }

  // --- sharing and people ----------------------------------------------------------------------------------

  renameMe() {
    modal({
      title: 'Your name',
      testid: 'rename-me',
      build: (close) => {
        const input = h('input.input', { type: 'text', value: this.identity.name, maxLength: 64, autofocus: true });
        const colours = h('div.colour-row');
        let colour = this.identity.colour;
        const drawColours = () =>
          fill(colours, 
            ...['#e4572e', '#17bebb', '#ffc914', '#76b041', '#7c5cff', '#ff6392', '#3a86ff', '#fb8500'].map((c) => h('button.colour-dot', { type: 'button', class: c === colour ? 'selected' : '', style: { background: c }, title: c, onclick: () => { colour = c; drawColours(); } })),
          );
        drawColours();
        return h(
          'form',
          {
            onsubmit: (e) => {
              e.preventDefault();
              this.identity = saveIdentity(this.storage, { ...this.identity, name: input.value, colour });
              close(true);
              toast('Saved: others see the new name when you reconnect', { kind: 'success' });
              this.live.drop();
              this.schedule();
            },
          },
          h('div.modal-body', null, h('label.field-label', null, 'Shown to others next to your cursor'), input, h('label.field-label', null, 'Colour'), colours),
          h('footer.modal-foot', null, h('button.btn', { type: 'button', onclick: () => close(false) }, 'Cancel'), h('button.btn.btn-primary', { type: 'submit' }, 'Save')),
        );
      },
    });
  }

  shareDialog() {
    if (!(this.role === 'owner' || this.role === 'admin')) return;
    modal({
      title: `Share “${this.session.state.name || 'canvas'}”`,
      testid: 'share-dialog',
      wide: true,
      build: () => {
        const role = h('select.input.select', { 'aria-label': 'Role', dataset: { testid: 'share-role' } }, h('option', { value: 'editor' }, 'can edit'), h('option', { value: 'viewer' }, 'can view'));
        const result = h('div.share-result');
        const list = h('ul.share-list', { dataset: { testid: 'share-list' } });
        const refresh = async () => {
          try {
            const { shares } = await this.api.shares(this.canvasId);
            const active = shares.filter((s) => !s.revoked && s.role !== 'owner'); // the owner's own token is not a link to hand out
            fill(list, 
              ...active.map((s) =>
                h(
                  'li.share-item',
                  { dataset: { shareId: s.id } },
                  h(`span.badge.role-${s.role}`, null, ROLE_LABEL[s.role] || s.role),
                  h('span.share-label', null, s.label || s.role),
                  h('small.muted', null, s.created_at ? relativeTime(s.created_at) : ''),
                  h('button.btn.btn-small.btn-ghost', { type: 'button', dataset: { testid: 'revoke' }, onclick: async () => { try { await this.api.revokeShare(this.canvasId, s.id); toast('Link revoked: it no longer opens the canvas', { kind: 'success' }); refresh(); } catch (error) { toast(error.message, { kind: 'error' }); } } }, 'Revoke'),
                ),
              ),
            );
            if (!active.length) list.append(h('li.muted.share-none', null, 'No links yet.'));
          } catch (error) {
            fill(list, h('li.error-text', null, error.message));
          }
        };
        const create = async () => {
          try {
            const share = await this.api.createShare(this.canvasId, role.value);
            const url = new URL(share.path, location.href).href;
            const input = h('input.input.input-mono', { type: 'text', readOnly: true, value: url, dataset: { testid: 'share-url' } });
            fill(result, 
              h('div.share-link', null, icon('link'), input, h('button.btn.btn-small', { type: 'button', onclick: async () => { input.select(); try { await navigator.clipboard.writeText(url); toast('Link copied', { kind: 'success' }); } catch { document.execCommand('copy'); } } }, icon('copy'), 'Copy')),
              h('small.muted', null, `Anyone with this link ${share.role === 'viewer' ? 'can view' : 'can edit'} this canvas, until you revoke it.`),
            );
            input.select();
            refresh();
          } catch (error) {
            toast(error.message, { kind: 'error' });
          }
        };
        refresh();
        return h(
          'div.modal-body',
          null,
          h('div.share-create', null, h('span', null, 'Anyone with the link'), role, h('button.btn.btn-primary', { type: 'button', onclick: create, dataset: { testid: 'share-create' } }, icon('link'), 'Create link')),
          result,
          h('h3.modal-sub', null, 'Active links'),
          list,
        );
      },
    });
  }

  // --- keyboard ---------------------------------------------------------------------------------------------

  bindKeys() {
    document.addEventListener('keydown', (event) => {
      const typing = event.target.closest?.('input, textarea, select, [contenteditable]');
      const mod = event.ctrlKey || event.metaKey;
      if (mod && event.key === 'Enter' && this.leftTab === 'new') {
        event.preventDefault();
        this.addLayer();
        return;
      }
      if (typing || document.querySelector('.modal-backdrop')) return;
      const key = event.key.toLowerCase();
      if (mod && key === 'z') {
        event.preventDefault();
        if (this.masking && this.viewport.mask?.strokes.length) return this.viewport.undoStroke();
        if (event.shiftKey) this.redo();
        else this.undo();
      } else if (mod && key === 'y') {
        event.preventDefault();
        this.redo();
      } else if (mod) {
        /* leave the browser's shortcuts alone */
      } else if (key === 'v' || key === 'h') this.setTool('pan');
      else if (key === 'b') this.setTool('brush');
      else if (key === 'e') this.setTool('eraser');
      else if (key === '[') this.setBrushRadius(this.brushRadius / 1.25);
      else if (key === ']') this.setBrushRadius(this.brushRadius * 1.25 + 1);
      else if (key === '+' || key === '=') this.viewport.zoomStep(1);
      else if (key === '-') this.viewport.zoomStep(-1);
      else if (event.key === '!' || (event.shiftKey && key === '1') || key === '0') this.viewport.fitToScreen();
      else if (key === 'escape') {
        if (this.masking) this.endMask();
        else if (this.scrub) this.backToLive();
        else this.select(null);
      } else if (key === 'enter' && this.masking) this.saveMask();
      else if ((key === 'delete' || key === 'backspace') && this.selected && !this.readOnly) {
        const layer = this.session.state.layers[this.selected];
        if (layer) this.deleteLayer(layer);
      } else if (key === ' ') {
        this.viewport.spaceHeld = true;
        this.viewport.el.classList.add('space');
        event.preventDefault();
      } else return;
    });
    document.addEventListener('keyup', (event) => {
      if (event.key === ' ') {
        this.viewport.spaceHeld = false;
        this.viewport.el.classList.remove('space');
      }
    });
  }
}

function imageSize(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve({ width: img.naturalWidth, height: img.naturalHeight });
    img.onerror = () => resolve(null);
    img.src = url;
  });
}
