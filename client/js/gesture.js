// One gesture, one history entry: the commands sent while a pointer is held down (a slider drag, a stroke,
// a layer dragged), or in one burst of keys (arrow presses on a slider, nudges), share a gesture id, and the
// server's history makes them one step that one undo takes back (docs/protocol.md, "Gestures").
//
// A gesture begins with a press or the first key of a burst and ends `idleMs` after the last input (so the
// `change` a slider fires just after the release still belongs to its drag). Undo and redo end it: what
// follows them is a new step.

import { newId } from './commands.js';

const BURST_KEYS = new Set(['ArrowUp', 'ArrowDown', 'ArrowLeft', 'ArrowRight', 'PageUp', 'PageDown', 'Home', 'End']);

export class Gestures {
  constructor({ idleMs = 700, now = () => Date.now(), makeId = () => newId('g-') } = {}) {
    this.idleMs = idleMs;
    this.now = now;
    this.makeId = makeId;
    this.id = null;
    this.pressed = false;
    this.lastInput = -Infinity;
  }

  /** Listen on `target` (the document), in the capture phase: before any handler sends a command. */
  attach(target) {
    const options = { capture: true, passive: true };
    target.addEventListener('pointerdown', () => this.press(), options);
    target.addEventListener('pointerup', () => this.release(), options);
    target.addEventListener('pointercancel', () => this.release(), options);
    target.addEventListener('keydown', (event) => this.key(event), options);
    return this;
  }

  press() {
    this.id = this.makeId();
    this.pressed = true;
    this.lastInput = this.now();
  }

  release() {
    this.pressed = false;
    this.lastInput = this.now();
  }

  key(event) {
    if (event.ctrlKey || event.metaKey) {
      this.end(); // Ctrl+Z, Ctrl+Y…: a step of their own
      return;
    }
    if (!BURST_KEYS.has(event.key)) return;
    if (!this.current()) this.id = this.makeId();
    this.lastInput = this.now();
  }

  end() {
    this.id = null;
    this.pressed = false;
    this.lastInput = -Infinity;
  }

  /** The gesture a command sent now belongs to, or null. */
  current() {
    if (this.id === null) return null;
    if (this.pressed || this.now() - this.lastInput <= this.idleMs) return this.id;
    this.id = null;
    return null;
  }
}
