// The editor's keyboard shortcuts: Ctrl+Enter generates, Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y undo and redo (a
// stroke first while masking), V H M F B E pick a tool, [ ] size the brush, + - 0 zoom, Escape steps back, Enter
// saves a mask (with the frame tool, Escape clears the generation frame), Delete deletes the selected layer, Space held pans.

export function bindShortcuts(editor) {
  const { viewport } = editor;
  document.addEventListener('keydown', (event) => {
    const field = event.target.closest?.('input, textarea, select, [contenteditable]');
    const mod = event.ctrlKey || event.metaKey;
    // a slider or a checkbox keeps the focus after it is used: Ctrl+Z there still undoes the canvas, but its
    // own keys (arrows, Delete…) stay its own
    const control = field?.matches?.('input[type=range], input[type=checkbox], input[type=radio], input[type=color]');
    const typing = field && !(control && mod);
    if (mod && event.key === 'Enter' && editor.panel.tab === 'new') {
      event.preventDefault();
      editor.panel.addLayer();
      return;
    }
    if (typing || document.querySelector('.modal-backdrop')) return;
    const key = event.key.toLowerCase();
    if (mod && key === 'z') {
      event.preventDefault();
      if (editor.masking && viewport.mask?.strokes.length) return viewport.undoStroke();
      if (event.shiftKey) editor.actions.redo();
      else editor.actions.undo();
    } else if (mod && key === 'y') {
      event.preventDefault();
      editor.actions.redo();
    } else if (mod) {
      /* leave the browser's shortcuts alone */
    } else if (event.shiftKey && (key === 'v' || key === 'h') && editor.mask.tool === 'move' && editor.selected && !editor.readOnly) {
      editor.flipLayer(editor.selected, key === 'h' ? 'flip_x' : 'flip_y'); // Shift+H / Shift+V, as in Krita and Figma
    } else if (key === 'v' || key === 'h') editor.mask.setTool('pan');
    else if (key === 'm') editor.mask.setTool('move');
    else if (key === 'f') editor.mask.setTool('frame');
    else if (key.startsWith('arrow') && editor.mask.tool === 'move' && editor.selected && !editor.readOnly) {
      event.preventDefault(); // a burst of nudges is one gesture: one undo (client/js/gesture.js)
      const step = event.shiftKey ? 10 : 1;
      const [dx, dy] = { arrowleft: [-step, 0], arrowright: [step, 0], arrowup: [0, -step], arrowdown: [0, step] }[key];
      editor.nudgeLayer(editor.selected, dx, dy);
    } else if (key === 'b') editor.mask.setTool('brush');
    else if (key === 'e') editor.mask.setTool('eraser');
    else if (key === '[') editor.mask.setBrushRadius(editor.mask.brushRadius / 1.25);
    else if (key === ']') editor.mask.setBrushRadius(editor.mask.brushRadius * 1.25 + 1);
    else if (key === '+' || key === '=') viewport.zoomStep(1);
    else if (key === '-') viewport.zoomStep(-1);
    else if (event.key === '!' || (event.shiftKey && key === '1') || key === '0') viewport.fitToScreen();
    else if (key === 'escape') {
      if (editor.masking) editor.mask.endMask();
      else if (editor.mask.tool === 'frame' && editor.mask.frames.frame) editor.mask.frames.clear();
      else if (editor.scrub) editor.timeTravel.backToLive();
      else editor.select(null);
    } else if (key === 'enter' && editor.masking) editor.mask.saveMask();
    else if ((key === 'delete' || key === 'backspace') && editor.selected && !editor.readOnly) {
      const layer = editor.session.state.layers[editor.selected];
      if (layer) editor.actions.deleteLayer(layer);
    } else if (key === ' ') {
      viewport.spaceHeld = true;
      viewport.el.classList.add('space');
      event.preventDefault();
    } else return;
  });
  document.addEventListener('keyup', (event) => {
    if (event.key === ' ') {
      viewport.spaceHeld = false;
      viewport.el.classList.remove('space');
    }
  });
}
