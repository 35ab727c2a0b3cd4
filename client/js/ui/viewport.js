// The canvas view: the visible layers composited in stack order with their opacity (a render in progress as
// its latest preview), zoom and pan, the collaborators' cursors, and the mask being painted over a layer.
// Its pictures come from image-cache.js, the mask from mask-overlay.js, pointer and drop from viewport-input.js.
// What it looks at is shared in presence so that others can follow it (shared-view.js, follow.js).

import { h, icon, iconButton, fill } from './dom.js';
import { zoomAt, toScreen, fit, contentSize, nextZoom, clampScale } from '../view.js';
import { sharedView, viewShowing, sameView } from './shared-view.js';
import { placementOf, samePlace } from '../placement.js';
import { drawLayer, drawMaskOverlay, drawSelection, stackToDraw } from './layer-drawing.js';
import { initials } from '../identity.js';
import { ImageCache } from './image-cache.js';
import { MaskOverlay } from './mask-overlay.js';
import { bindPointer, bindDrop } from './viewport-input.js';
import { drawOverlays } from './frame-overlay.js'; // the generation frame, a crop region, a wand point

export class Viewport {
  /**
   * callbacks: onCursor(world|null), onStrokesChanged(), onDropFiles(files), onNeedMaskTarget(), onZoom(scale),
   * onToolChange(tool), onView({x, y, zoom}); `onUserView` (follow mode) hears only this person's pan and zoom
   */
  constructor(callbacks) {
    this.cb = callbacks;
    this.state = null;
    this.maskOps = new Set(['mask', 'magic_wand', 'segment']);
    this.selected = null;
    this.view = { scale: 1, x: 0, y: 0 };
    this.userMoved = false;
    this.lastContent = { width: 0, height: 0 };
    this.tool = 'pan';
    this.brushRadius = 12;
    this.mask = null; // {target: layer, editing: mask layer | null, strokes: [], current: stroke | null}
    this.people = [];
    this.spaceHeld = false;
    this.cache = new ImageCache(() => this.invalidate());
    this.maskOverlay = new MaskOverlay(this.cache);
    this.previews = new Map(); // layer id -> {url, img, loaded, width, height, shown: the last loaded one}
    this.dirty = true;
    this.build();
  }

  build() {
    this.canvas = h('canvas.stage', { dataset: { testid: 'stage' } });
    this.ctx = this.canvas.getContext('2d');
    this.cursors = h('div.cursors');
    this.brush = h('div.brush-cursor');
    this.empty = h(
      'div.stage-empty',
      { dataset: { testid: 'stage-empty' } },
      h('div.stage-empty-art', null, icon('sparkles', { size: 28 })),
      h('h3', null, 'An empty canvas'),
      h('p', null, 'Describe a picture on the left and press ', h('kbd', null, 'Generate'), ', or drop an image here.'),
    );
    this.dropHint = h('div.drop-hint', null, icon('upload', { size: 28 }), h('span', null, 'Drop to add as a layer'));
    this.zoomLabel = h('button.zoom-label', { type: 'button', title: 'Fit to screen (Shift+1)', onclick: () => this.fitToScreen(), dataset: { testid: 'zoom-label' } }, '100%');
    this.zoomBar = h(
      'div.zoom-bar.floating',
      null,
      iconButton('minus', 'Zoom out (−)', () => this.zoomStep(-1), { testid: 'zoom-out' }),
      this.zoomLabel,
      iconButton('plus', 'Zoom in (+)', () => this.zoomStep(1), { testid: 'zoom-in' }),
      h('span.sep'),
      iconButton('fit', 'Fit to screen (Shift+1)', () => this.fitToScreen(), { testid: 'zoom-fit' }),
    );
    this.el = h('div.viewport', { dataset: { tool: this.tool } }, this.canvas, this.cursors, this.brush, this.empty, this.dropHint, this.zoomBar);
    bindPointer(this);
    bindDrop(this);
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(this.el);
  }

  destroy() {
    this.resizeObserver.disconnect();
    cancelAnimationFrame(this.frame);
  }

  // --- inputs from the editor -----------------------------------------------------------------------

  setState(state, { maskOps } = {}) {
    this.state = state;
    const moved = this.moving && !this.moving.active && state?.layers[this.moving.layerId];
    // a dropped layer is drawn where it was dropped until the state has it there (or the move was refused)
    if (moved && (samePlace(placementOf(moved), this.moving.placement) || Date.now() - this.moving.since > 5000)) this.moving = null;
    if (maskOps) this.maskOps = maskOps;
    let size = this.contentSize();
    if (!size.width && state) size = plannedSize(state); // nothing rendered yet: the size the first layer asks for
    this.empty.hidden = !!(size.width || (state && state.order.length));
    if (size.width !== this.lastContent.width || size.height !== this.lastContent.height) {
      const first = !this.lastContent.width;
      this.lastContent = size;
      if (first || !this.userMoved) this.fitToScreen(false);
    }
    this.invalidate();
  }

  /**
   * The latest preview of each render in progress (CanvasSession.previews): drawn where the finished image
   * will be, at its size, in place of the layer's older picture. A layer missing here has no preview (any
   * more): it is never drawn again.
   */
  setPreviews(previews) {
    let changed = false;
    for (const id of [...this.previews.keys()]) {
      if (!previews.has(id)) {
        this.previews.delete(id);
        changed = true;
      }
    }
    for (const [id, preview] of previews) {
      const known = this.previews.get(id);
      if (known?.url === preview.image) continue;
      const entry = { url: preview.image, img: new Image(), loaded: false, width: preview.renderWidth, height: preview.renderHeight, shown: known?.loaded ? known : known?.shown || null };
      entry.img.decoding = 'async';
      entry.img.onload = () => {
        entry.loaded = true;
        entry.shown = null;
        if (this.previews.get(id) === entry) this.invalidate();
      };
      entry.img.src = preview.image;
      this.previews.set(id, entry);
      changed = true;
    }
    if (changed) this.invalidate(); // the editor's next setState sizes the artboard
  }

  /** The preview to draw for a layer (the newest that has loaded), or null. */
  previewOf(id) {
    const entry = this.previews.get(id);
    if (!entry) return null;
    return entry.loaded ? entry : entry.shown;
  }

  setSelected(id) {
    this.selected = id;
    this.invalidate();
  }

  setPeople(people) {
    this.people = people;
    this.drawCursors();
  }

  setTool(tool) {
    this.tool = tool;
    this.el.dataset.tool = tool;
    this.updateBrushCursor();
  }

  setBrushRadius(radius) {
    this.brushRadius = radius;
    this.updateBrushCursor();
  }

  /** Start painting a mask over `target` (a layer with an image), continuing `editing` (a mask layer) if given. */
  beginMask(target, editing = null) {
    this.mask = { target, editing, strokes: [], current: null };
    this.maskOverlay.reset();
    this.invalidate();
  }

  endMask() {
    this.mask = null;
    this.maskOverlay.reset();
    this.invalidate();
  }

  undoStroke() {
    if (!this.mask || !this.mask.strokes.length) return;
    this.mask.strokes.pop();
    this.maskOverlay.reset();
    this.cb.onStrokesChanged?.();
    this.invalidate();
  }

  visibleLayers() {
    if (!this.state) return [];
    return this.state.order.map((id) => this.state.layers[id]).filter((l) => l && l.visible && (l.output || this.previews.has(l.id)));
  }

  /** The artboard: the document frame; before it has a size, the largest visible picture, previews at the
   * size their render will have. */
  contentSize() {
    const frame = this.state?.document;
    if (frame?.width && frame?.height) return { width: frame.width, height: frame.height };
    const size = contentSize(this.visibleLayers());
    for (const [id, preview] of this.previews) {
      if (!this.state?.layers[id]?.visible) continue;
      size.width = Math.max(size.width, preview.width || 0);
      size.height = Math.max(size.height, preview.height || 0);
    }
    return size;
  }

  // --- view -------------------------------------------------------------------------------------------

  resize() {
    const rect = this.el.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.width = rect.width;
    this.height = rect.height;
    this.canvas.width = Math.max(1, Math.round(rect.width * dpr));
    this.canvas.height = Math.max(1, Math.round(rect.height * dpr));
    this.canvas.style.width = `${rect.width}px`;
    this.canvas.style.height = `${rect.height}px`;
    if (!this.userMoved) this.fitToScreen(false);
    this.invalidate();
  }

  fitToScreen(byUser = true) {
    const { width, height } = this.lastContent.width ? this.lastContent : { width: 512, height: 512 };
    if (!this.width) return;
    this.view = fit(width, height, this.width, this.height, { padding: 56, maxScale: 8 });
    if (byUser) {
      this.userMoved = false;
      this.onUserView?.();
    }
    this.viewChanged();
  }

  zoomStep(direction) {
    const scale = nextZoom(this.view.scale, direction);
    this.view = zoomAt(this.view, scale / this.view.scale, this.width / 2, this.height / 2);
    this.userViewChanged();
  }

  setZoom(scale) {
    this.view = zoomAt(this.view, clampScale(scale) / this.view.scale, this.width / 2, this.height / 2);
    this.userViewChanged();
  }

  /** This person moved the view (pan, wheel, zoom buttons): it stays where they put it; following stops. */
  userViewChanged() {
    this.userMoved = true;
    this.onUserView?.();
    this.viewChanged();
  }

  /** What this view looks at, for presence: the canvas point at its centre and its zoom. */
  sharedView() {
    return this.width ? sharedView(this.view, this.width, this.height) : null;
  }

  /** Look at what another person looks at (`{x, y, zoom}` from their presence), centred on this screen. */
  showView(shared) {
    const view = this.width ? viewShowing(shared, this.width, this.height) : null;
    this.userMoved = true; // a picture that grows later must not refit what is being followed
    if (!view || sameView(view, this.view)) return; // already there: no presence sent (no echo between two)
    this.view = view;
    this.viewChanged();
  }

  viewChanged() {
    this.zoomLabel.textContent = `${Math.round(this.view.scale * 100)}%`;
    this.updateBrushCursor();
    this.drawCursors();
    this.invalidate();
    this.cb.onView?.(this.sharedView());
  }

  invalidate() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.draw();
    });
  }

  // --- drawing ----------------------------------------------------------------------------------------

  draw() {
    const ctx = this.ctx;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.state) return;
    const { width, height } = this.lastContent;
    const v = this.view;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (width && height) {
      // the artboard: shadow, then a checkerboard for transparency
      ctx.save();
      ctx.shadowColor = 'rgba(0,0,0,0.45)';
      ctx.shadowBlur = 24;
      ctx.shadowOffsetY = 6;
      ctx.fillStyle = '#2a2b30';
      ctx.fillRect(v.x, v.y, width * v.scale, height * v.scale);
      ctx.restore();
      ctx.save();
      ctx.beginPath();
      ctx.rect(v.x, v.y, width * v.scale, height * v.scale);
      ctx.clip();
      ctx.fillStyle = this.checker();
      ctx.fillRect(v.x, v.y, width * v.scale, height * v.scale);
      ctx.restore();
    }
    ctx.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.x, dpr * v.y);
    ctx.imageSmoothingEnabled = v.scale < 2;
    ctx.imageSmoothingQuality = 'high';
    ctx.save();
    if (width && height) {
      // only the document frame shows, as in the composite the server exports
      ctx.beginPath();
      ctx.rect(0, 0, width, height);
      ctx.clip();
      if (this.state.document?.background) {
        ctx.fillStyle = this.state.document.background;
        ctx.fillRect(0, 0, width, height);
      }
    }
    for (const { layer, alpha } of stackToDraw(this)) {
      ctx.save();
      ctx.globalAlpha = alpha;
      drawLayer(this, ctx, layer);
      ctx.restore();
    }
    ctx.restore();
    ctx.globalAlpha = 1;
    if (this.mask) drawMaskOverlay(this, ctx); // over its target, where the target is placed
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    drawSelection(this, ctx); // its outline where it is placed; with the move tool, its handles
    drawOverlays(this, ctx);
  }

  /** A layer's placement, or the one a move in progress gives it before the server has it. */
  placementOf(layer) {
    return this.moving?.layerId === layer.id ? this.moving.placement : placementOf(layer);
  }

  checker() {
    if (!this.pattern) {
      const tile = document.createElement('canvas');
      tile.width = tile.height = 16;
      const t = tile.getContext('2d');
      t.fillStyle = '#3a3b41';
      t.fillRect(0, 0, 16, 16);
      t.fillStyle = '#45464d';
      t.fillRect(0, 0, 8, 8);
      t.fillRect(8, 8, 8, 8);
      this.pattern = this.ctx.createPattern(tile, 'repeat');
    }
    return this.pattern;
  }

  drawCursors() {
    const items = [];
    for (const person of this.people) {
      if (!person.cursor) continue;
      const p = toScreen(this.view, person.cursor.x, person.cursor.y);
      if (p.x < -20 || p.y < -20 || p.x > this.width + 20 || p.y > this.height + 20) continue;
      items.push(
        h(
          'div.remote-cursor',
          { style: { transform: `translate(${p.x}px, ${p.y}px)`, '--colour': person.colour }, dataset: { user: person.user, testid: 'remote-cursor' } },
          h('span.remote-cursor-arrow', { html: '<svg width="18" height="18" viewBox="0 0 24 24"><path d="M4 3l7.5 18 2.4-7.6L21.5 11z" fill="currentColor" stroke="white" stroke-width="1.5" stroke-linejoin="round"/></svg>' }),
          h('span.remote-cursor-name', null, person.name || initials(person.user)),
        ),
      );
    }
    fill(this.cursors, ...items);
  }

  updateBrushCursor() {
    const painting = this.tool === 'brush' || this.tool === 'eraser';
    this.brush.hidden = !painting || !this.pointerInside;
    const size = Math.max(4, this.brushRadius * 2 * this.view.scale);
    this.brush.style.width = `${size}px`;
    this.brush.style.height = `${size}px`;
    this.brush.classList.toggle('erasing', this.tool === 'eraser');
  }
}

/** The artboard before anything has rendered: the largest width × height the layers' params ask for. */
function plannedSize(state) {
  let width = 0;
  let height = 0;
  for (const id of state.order) {
    const p = state.layers[id]?.params || {};
    if (Number.isFinite(p.width) && Number.isFinite(p.height)) {
      width = Math.max(width, p.width);
      height = Math.max(height, p.height);
    }
  }
  return { width, height };
}
