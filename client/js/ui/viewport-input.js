// The viewport's input: pointer (pan with the hand tool, the middle button or Space held; move a layer; draw,
// move and resize the generation frame; drag a crop region or click a magic-wand point on the source picture
// while the New-layer form asks for one (`viewport.picker`); paint and erase mask strokes; the cursor position
// for presence), the wheel (zoom at the pointer; Shift pans), and image files dropped on the canvas.

import { toWorld, zoomAt } from '../view.js';
import { startStroke, extendStroke } from '../mask.js';
import { layerAt, movedBy, placementOf, scaledTo, toPicture, turnedTo } from '../placement.js';
import { handlePoints } from './layer-drawing.js';
import { cropRegion, frameFromDrag, frameHit, frameMovedBy, frameResized, picturePixel } from '../frame.js';

function local(viewport, event) {
  const rect = viewport.canvas.getBoundingClientRect();
  return { x: event.clientX - rect.left, y: event.clientY - rect.top };
}

export function bindPointer(viewport) {
  const c = viewport.canvas;
  let drag = null;
  c.addEventListener('pointerdown', (event) => {
    const p = local(viewport, event);
    const picking = viewport.picker && event.button === 0 && !viewport.spaceHeld && (viewport.tool === 'pan' || viewport.tool === 'move');
    // a press off every picture while the form asks for a place on one pans (or moves) as the tool does
    const picked = picking ? startPick(viewport, toWorld(viewport.view, p.x, p.y), p) : null;
    const panning = !picked && (event.button === 1 || viewport.spaceHeld || (viewport.tool === 'pan' && event.button === 0));
    if (picked) {
      drag = picked;
    } else if (event.button === 0 && viewport.tool === 'frame') {
      drag = startFrame(viewport, toWorld(viewport.view, p.x, p.y));
    } else if (panning) {
      drag = { kind: 'pan', x: p.x, y: p.y };
      viewport.el.classList.add('panning');
    } else if (event.button === 0 && viewport.tool === 'move') {
      drag = startMove(viewport, toWorld(viewport.view, p.x, p.y), p);
      if (!drag) return;
    } else if (event.button === 0 && (viewport.tool === 'brush' || viewport.tool === 'eraser')) {
      if (!viewport.mask && !viewport.cb.onNeedMaskTarget?.()) return;
      const w = onMaskTarget(viewport, p);
      viewport.mask.current = startStroke(w.x, w.y, w.radius, viewport.tool === 'eraser');
      drag = { kind: 'paint' };
      viewport.invalidate();
    } else return;
    c.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  c.addEventListener('pointermove', (event) => {
    const p = local(viewport, event);
    viewport.brush.style.transform = `translate(${p.x}px, ${p.y}px)`;
    if (drag?.kind === 'pan') {
      viewport.view = { ...viewport.view, x: viewport.view.x + p.x - drag.x, y: viewport.view.y + p.y - drag.y };
      drag.x = p.x;
      drag.y = p.y;
      viewport.userViewChanged(); // ends following someone
    } else if (drag?.kind === 'move') {
      const w = toWorld(viewport.view, p.x, p.y);
      const { width, height } = drag.size;
      if (drag.handle === 'corner') viewport.moving.placement = scaledTo(drag.from, width, height, drag.start, w);
      else if (drag.handle === 'knob') viewport.moving.placement = turnedTo(drag.from, width, height, drag.start, w, event.shiftKey ? 15 : 0);
      else viewport.moving.placement = movedBy(drag.from, w.x - drag.start.x, w.y - drag.start.y);
      viewport.invalidate();
      viewport.cb.onMoveLayer?.(drag.layerId, viewport.moving.placement, false);
    } else if (drag?.kind === 'frame') {
      const w = toWorld(viewport.view, p.x, p.y);
      viewport.generationFrame = drag.change(w);
      viewport.invalidate();
      viewport.onFrameChange?.(viewport.generationFrame, false);
    } else if (drag?.kind === 'crop') {
      pickRegion(viewport, drag, p, false);
    } else if (drag?.kind === 'paint' && viewport.mask?.current) {
      const w = onMaskTarget(viewport, p);
      const next = extendStroke(viewport.mask.current, w.x, w.y);
      if (next !== viewport.mask.current) {
        viewport.mask.current = next;
        viewport.invalidate();
      }
    }
    viewport.cb.onCursor?.(toWorld(viewport.view, p.x, p.y));
  });
  const finish = (event) => {
    if (drag?.kind === 'frame') viewport.onFrameChange?.(viewport.generationFrame, true);
    if (drag?.kind === 'crop' && event.type === 'pointerup') pickRegion(viewport, drag, local(viewport, event), true);
    if (drag?.kind === 'move') {
      viewport.moving.active = false; // shown where it was dropped until the server's state has it there
      viewport.cb.onMoveLayer?.(drag.layerId, viewport.moving.placement, true);
    }
    if (drag?.kind === 'paint' && viewport.mask?.current) {
      viewport.mask.strokes.push(viewport.mask.current);
      viewport.mask.current = null;
      viewport.cb.onStrokesChanged?.();
      viewport.invalidate();
    }
    drag = null;
    viewport.el.classList.remove('panning');
  };
  c.addEventListener('pointerup', finish);
  c.addEventListener('pointercancel', finish);
  c.addEventListener('pointerenter', () => {
    viewport.pointerInside = true;
    viewport.updateBrushCursor();
  });
  c.addEventListener('pointerleave', () => {
    viewport.pointerInside = false;
    viewport.updateBrushCursor();
    viewport.cb.onCursor?.(null);
  });
  c.addEventListener(
    'wheel',
    (event) => {
      event.preventDefault();
      const p = local(viewport, event);
      if (event.shiftKey && !event.ctrlKey) {
        viewport.view = { ...viewport.view, x: viewport.view.x - event.deltaY, y: viewport.view.y - event.deltaX };
      } else {
        const factor = Math.exp(-event.deltaY * (event.ctrlKey ? 0.01 : 0.0015));
        viewport.view = zoomAt(viewport.view, factor, p.x, p.y);
      }
      viewport.userViewChanged();
    },
    { passive: false },
  );
}

export function bindDrop(viewport) {
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes('Files');
  viewport.el.addEventListener('dragenter', (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    viewport.el.classList.add('dropping');
  });
  viewport.el.addEventListener('dragleave', () => {
    depth = Math.max(0, depth - 1);
    if (!depth) viewport.el.classList.remove('dropping');
  });
  viewport.el.addEventListener('dragover', (event) => {
    if (hasFiles(event)) event.preventDefault();
  });
  viewport.el.addEventListener('drop', (event) => {
    event.preventDefault();
    depth = 0;
    viewport.el.classList.remove('dropping');
    // every file goes on, not only images: the upload says why a PDF or a GIF cannot be added rather than
    // dropping it without a word
    const files = [...(event.dataTransfer?.files || [])];
    if (files.length) viewport.cb.onDropFiles?.(files);
  });
}

/** The move tool's press: the selected picture if the press is on it, else the topmost one under it (which
 * becomes selected); null when there is none or the canvas cannot be edited. */
function startMove(viewport, w, screen) {
  if (!viewport.cb.canMoveLayers?.()) return null;
  const pictures = viewport.visibleLayers().filter((l) => l.output && !viewport.maskOps.has(l.operation));
  const selected = pictures.find((l) => l.id === viewport.selected);
  const handle = selected ? handleAt(viewport, selected, screen) : null; // a corner scales, the knob turns
  const target = handle ? selected : (selected && layerAt([selected], w.x, w.y)) || layerAt(pictures, w.x, w.y);
  if (!target) return null;
  if (target.id !== viewport.selected) viewport.cb.onSelect?.(target.id);
  const from = placementOf(target);
  viewport.moving = { layerId: target.id, placement: from, active: true, since: Date.now() };
  return { kind: 'move', layerId: target.id, start: w, from, handle, size: target.output };
}

/** Which of the selected picture's handles is under the screen point, if any. */
function handleAt(viewport, layer, screen) {
  const near = (p) => Math.hypot(p.x - screen.x, p.y - screen.y) <= 8;
  const points = handlePoints(viewport, layer);
  if (near(points.knob)) return 'knob';
  return points.corners.some(near) ? 'corner' : null;
}

/** The frame tool's press: a corner handle resizes the frame, inside it moves it, elsewhere draws a new one. */
function startFrame(viewport, w) {
  const from = viewport.generationFrame;
  const hit = frameHit(from, w, 8 / viewport.view.scale);
  let change;
  if (hit === 'inside') change = (to) => frameMovedBy(from, to.x - w.x, to.y - w.y);
  else if (hit) change = (to) => frameResized(from, hit, to);
  else change = (to) => frameFromDrag(w, to);
  if (!hit) {
    viewport.generationFrame = change(w); // a click alone makes the smallest frame there
    viewport.invalidate();
    viewport.onFrameChange?.(viewport.generationFrame, false);
  }
  return { kind: 'frame', change };
}

/** A press while the form asks for a place on the picture: the topmost picture under it (the form's source
 * when the press is on it; for a crop, the source anyway), a wand point at once, a crop region as it drags. */
function startPick(viewport, w, screen) {
  const picker = viewport.picker;
  const excluded = picker.excluded?.() || new Set();
  const pictures = viewport.visibleLayers().filter((l) => l.output && !viewport.maskOps.has(l.operation) && !excluded.has(l.id));
  const source = pictures.find((l) => l.id === picker.source());
  const under = (source && layerAt([source], w.x, w.y)) || layerAt(pictures, w.x, w.y);
  const layer = under || (picker.kind === 'crop' ? source : null);
  if (!layer) return null;
  const { width, height } = layer.output;
  const placement = viewport.placementOf(layer);
  if (picker.kind === 'wand') {
    const point = picturePixel(placement, width, height, w);
    if (point) picker.onPoint(layer.id, point);
    return { kind: 'wand' };
  }
  return { kind: 'crop', layer, placement, start: w, screen };
}

function pickRegion(viewport, drag, p, final) {
  if (Math.hypot(p.x - drag.screen.x, p.y - drag.screen.y) < 3) return; // a click is not a region
  const w = toWorld(viewport.view, p.x, p.y);
  const region = cropRegion(drag.placement, drag.layer.output.width, drag.layer.output.height, drag.start, w);
  if (region) viewport.picker.onRegion(drag.layer.id, region, final);
}

/** A stage point in the mask target's own pixels, with the brush's radius there: a mask belongs to its
 * picture wherever that picture is placed (moved, scaled, turned), as the mask operation reads it. */
function onMaskTarget(viewport, p) {
  const w = toWorld(viewport.view, p.x, p.y);
  const target = viewport.mask?.target;
  if (!target?.output) return { x: w.x, y: w.y, radius: viewport.brushRadius };
  const placement = placementOf(target);
  const { u, v } = toPicture(placement, target.output.width, target.output.height, w.x, w.y);
  return { x: u, y: v, radius: viewport.brushRadius / placement.scale };
}
