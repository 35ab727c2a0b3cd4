// The viewport's input: pointer (pan with the hand tool, the middle button or Space held; paint and erase
// mask strokes; the cursor position for presence), the wheel (zoom at the pointer; Shift pans), and image
// files dropped on the canvas.

import { toWorld, zoomAt } from '../view.js';
import { startStroke, extendStroke } from '../mask.js';
import { layerAt, movedBy, placementOf } from '../placement.js';

function local(viewport, event) {
  const rect = viewport.canvas.getBoundingClientRect();
  return { x: event.clientX - rect.left, y: event.clientY - rect.top };
}

export function bindPointer(viewport) {
  const c = viewport.canvas;
  let drag = null;
  c.addEventListener('pointerdown', (event) => {
    const p = local(viewport, event);
    const panning = event.button === 1 || viewport.spaceHeld || (viewport.tool === 'pan' && event.button === 0);
    if (panning) {
      drag = { kind: 'pan', x: p.x, y: p.y };
      viewport.el.classList.add('panning');
    } else if (event.button === 0 && viewport.tool === 'move') {
      drag = startMove(viewport, toWorld(viewport.view, p.x, p.y));
      if (!drag) return;
    } else if (event.button === 0 && (viewport.tool === 'brush' || viewport.tool === 'eraser')) {
      if (!viewport.mask && !viewport.cb.onNeedMaskTarget?.()) return;
      const w = toWorld(viewport.view, p.x, p.y);
      viewport.mask.current = startStroke(w.x, w.y, viewport.brushRadius, viewport.tool === 'eraser');
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
      viewport.moving.placement = movedBy(drag.from, w.x - drag.start.x, w.y - drag.start.y);
      viewport.invalidate();
      viewport.cb.onMoveLayer?.(drag.layerId, viewport.moving.placement, false);
    } else if (drag?.kind === 'paint' && viewport.mask?.current) {
      const w = toWorld(viewport.view, p.x, p.y);
      const next = extendStroke(viewport.mask.current, w.x, w.y);
      if (next !== viewport.mask.current) {
        viewport.mask.current = next;
        viewport.invalidate();
      }
    }
    viewport.cb.onCursor?.(toWorld(viewport.view, p.x, p.y));
  });
  const finish = () => {
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
function startMove(viewport, w) {
  if (!viewport.cb.canMoveLayers?.()) return null;
  const pictures = viewport.visibleLayers().filter((l) => l.output && !viewport.maskOps.has(l.operation));
  const selected = pictures.find((l) => l.id === viewport.selected);
  const target = (selected && layerAt([selected], w.x, w.y)) || layerAt(pictures, w.x, w.y);
  if (!target) return null;
  if (target.id !== viewport.selected) viewport.cb.onSelect?.(target.id);
  const from = placementOf(target);
  viewport.moving = { layerId: target.id, placement: from, active: true, since: Date.now() };
  return { kind: 'move', layerId: target.id, start: w, from };
}
