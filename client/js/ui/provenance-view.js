// The right panel's Graph tab: the layer DAG drawn as small nodes (thumbnail, name, operation, status colour)
// with edges parent → child, laid out by js/provenance.js. Hovering or focusing a node marks what re-renders
// when it changes; "What does deleting take?" marks what a delete of the selected layer takes with it, and so
// does hovering a delete button in the Layers tab (on its rows, since the graph is hidden then). Clicking a
// node or pressing Enter on it selects the layer; the arrow keys walk the graph.

import { h, icon, fill } from './dom.js';
import { blobUrl } from '../api.js';
import { isCancelled } from '../renders.js';
import { NODE, layoutDag, changeRerenders, deleteTakes, impactSentence, neighbour } from '../provenance.js';

const SVG = 'http://www.w3.org/2000/svg';
const svg = (tag, attrs = {}) => {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  return el;
};

/** An edge's SVG path: a curve to the next row, or, for one that skips rows, out into its lane between the
 * columns, down it, and into the child, so it never hides under a node of the rows between. */
export function edgePath({ x1, y1, x2, y2, gutter }) {
  const end = y2 - 2;
  if (gutter === null || gutter === undefined) {
    const bend = (end - y1) / 2;
    return `M${x1} ${y1} C${x1} ${y1 + bend} ${x2} ${end - bend} ${x2} ${end}`;
  }
  const half = NODE.gapY / 2;
  return `M${x1} ${y1} C${x1} ${y1 + half} ${gutter} ${y1} ${gutter} ${y1 + half} L${gutter} ${y2 - half} C${gutter} ${y2} ${x2} ${y2 - half} ${x2} ${end}`;
}

/** The words for a node's status colour (also read out by screen readers). */
const STATUS_TEXT = { rendered: 'rendered', rendering: 'rendering', pending: 'waiting to render', stale: 'out of date', failed: 'failed', cancelled: 'cancelled', missing: 'not rendered at this version' };

export class ProvenanceView {
  constructor(editor) {
    this.editor = editor;
    this.hovered = null; // the node under the pointer or the focus: what re-renders when it changes
    this.deleting = false; // "What does deleting take?" is pressed: the selected layer's delete is shown
    this.nodes = new Map(); // id -> {el, img, glyph, name, op, signature}
    this.edges = new Map(); // "from>to" -> path
    this.structure = null;
    this.edgeLayer = svg('svg', { class: 'prov-edges', 'aria-hidden': 'true' });
    this.canvas = h('div.prov-canvas', { role: 'group', 'aria-label': 'Layer graph: what was made from what' }, this.edgeLayer);
    this.scroller = h('div.prov-scroll', { dataset: { testid: 'prov-graph' } }, this.canvas);
    this.empty = h('div.panel-empty', null, icon('fork', { size: 22 }), h('p', null, 'No layers yet'), h('small', null, 'Layers appear here linked to the layers they were made from.'));
    this.caption = h('p.prov-caption', { 'aria-live': 'polite', dataset: { testid: 'prov-caption' } });
    this.deleteToggle = h('button.btn.btn-small.btn-ghost.prov-delete-toggle', { type: 'button', 'aria-pressed': 'false', dataset: { testid: 'prov-delete-preview' }, onclick: () => this.toggleDeleting() }, icon('trash', { size: 14 }), 'What does deleting take?');
    this.deleteNow = h('button.btn.btn-small.btn-danger', { type: 'button', hidden: true, dataset: { testid: 'prov-delete' }, onclick: () => this.deleteSelected() }, 'Delete…');
    const swatch = (kind, text) => h('span.prov-key', null, h(`span.prov-swatch.prov-swatch-${kind}`), text);
    this.el = h(
      'div.prov-panel',
      null,
      h('div.prov-head', null, this.caption, h('div.prov-legend', null, swatch('change', 'Re-renders on change'), swatch('delete', 'Deleted with it'))),
      this.scroller,
      this.empty,
      h('div.prov-foot', null, this.deleteToggle, this.deleteNow),
    );
    this.bindGraph();
    this.bindLayerRows(editor.layers.list);
  }

  // --- input ------------------------------------------------------------------------------------------

  bindGraph() {
    const nodeOf = (event) => event.target.closest?.('.prov-node')?.dataset.layerId ?? null;
    this.canvas.addEventListener('pointerover', (event) => this.setHovered(nodeOf(event)));
    this.canvas.addEventListener('pointerleave', () => this.setHovered(this.focusedId()));
    this.canvas.addEventListener('focusin', (event) => {
      this.setRoving(nodeOf(event));
      this.setHovered(nodeOf(event));
    });
    this.canvas.addEventListener('focusout', () => setTimeout(() => this.setHovered(this.focusedId()), 0));
    this.canvas.addEventListener('click', (event) => {
      const id = nodeOf(event);
      if (id) this.editor.select(id, { fromPanel: true });
    });
    this.canvas.addEventListener('keydown', (event) => {
      const id = nodeOf(event);
      if (!id || !this.layout) return;
      if (event.key.startsWith('Arrow')) {
        event.preventDefault();
        const next = neighbour(this.layout, this.state.layers, id, event.key);
        this.nodes.get(next)?.el.focus();
      }
    });
    this.el.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.deleting) {
        event.stopPropagation(); // Escape ends the delete preview before it deselects
        this.toggleDeleting(false);
      }
    });
  }

  /** A delete button hovered or focused in the Layers tab marks, on its rows, every layer the delete takes. */
  bindLayerRows(list) {
    const mark = (event) => {
      const leaving = event.type === 'focusout' || event.type === 'pointerleave';
      const button = leaving ? null : event.target.closest?.('[data-testid=delete-layer]');
      const id = button?.closest('.layer-row')?.dataset.layerId;
      const doomed = new Set(id ? deleteTakes(this.editor.displayState, id) : []);
      for (const row of list.querySelectorAll('.layer-row')) row.classList.toggle('prov-doomed', doomed.has(row.dataset.layerId));
    };
    list.addEventListener('pointerover', mark);
    list.addEventListener('pointerleave', mark);
    list.addEventListener('focusin', mark);
    list.addEventListener('focusout', mark);
  }

  /** One tab stop for the whole graph (the ARIA composite pattern): Tab enters at the selected node, or the
   * last one visited, and the arrow keys move inside; 500 nodes are not 500 presses of Tab. */
  setRoving(id) {
    if (!id || id === this.roving || !this.nodes.has(id)) return;
    if (this.nodes.has(this.roving)) this.nodes.get(this.roving).el.tabIndex = -1;
    this.nodes.get(id).el.tabIndex = 0;
    this.roving = id;
  }

  focusedId() {
    return this.canvas.contains(document.activeElement) ? document.activeElement.dataset?.layerId ?? null : null;
  }

  setHovered(id) {
    if (id === this.hovered) return;
    this.hovered = id;
    this.paint();
  }

  toggleDeleting(on = !this.deleting) {
    if (on && !this.selected) return;
    this.deleting = on;
    this.paint();
  }

  deleteSelected() {
    const layer = this.state?.layers[this.selected];
    if (layer) this.editor.actions.deleteLayer(layer);
  }

  // --- drawing ------------------------------------------------------------------------------------------

  /** Called on each editor frame while the tab is open; touches the DOM only for what changed. */
  update({ state, selected, renders, readOnly, past }) {
    const selectionMoved = selected !== this.selected;
    Object.assign(this, { state, selected, renders, readOnly, past });
    if (!selected || !state.layers[selected]) this.deleting = false;
    const ids = state.order.filter((id) => state.layers[id]);
    const structure = ids.map((id) => `${id}<${state.layers[id].parents.join(',')}`).join(';');
    if (structure !== this.structure) {
      this.structure = structure;
      this.layout = layoutDag(state.layers, state.order);
      // how many layers each one's change re-renders: once per shape of the DAG, not once per frame
      this.made = new Map(ids.map((id) => [id, changeRerenders(state, id).length]));
      this.place();
    }
    for (const id of ids) this.updateNode(id, state.layers[id]);
    if (this.hovered && !state.layers[this.hovered]) this.hovered = null;
    this.paint();
    const inside = this.canvas.contains(document.activeElement);
    if (selectionMoved && selected && !inside) {
      this.setRoving(selected);
      this.nodes.get(selected)?.el.scrollIntoView?.({ block: 'nearest', inline: 'nearest' });
    }
    if (!this.nodes.has(this.roving)) {
      this.roving = null;
      this.setRoving(this.nodes.has(selected) ? selected : this.layout.nodes[0]?.id);
    }
  }

  /** Nodes and edges where the layout puts them: created, moved or removed. */
  place() {
    const { layout } = this;
    this.empty.hidden = layout.nodes.length > 0;
    this.scroller.hidden = layout.nodes.length === 0;
    Object.assign(this.canvas.style, { width: `${layout.width}px`, height: `${layout.height}px` });
    this.edgeLayer.setAttribute('width', layout.width);
    this.edgeLayer.setAttribute('height', layout.height);
    for (const [id, node] of this.nodes) {
      if (!layout.byId.has(id)) {
        node.el.remove();
        this.nodes.delete(id);
      }
    }
    for (const { id, x, y } of layout.nodes) {
      const node = this.nodes.get(id) || this.createNode(id);
      Object.assign(node.el.style, { left: `${x}px`, top: `${y}px` });
    }
    const seen = new Set();
    for (const e of layout.edges) {
      const key = `${e.from}>${e.to}`;
      seen.add(key);
      let path = this.edges.get(key);
      if (!path) {
        path = svg('path', { class: 'prov-edge' });
        path.dataset.from = e.from;
        path.dataset.to = e.to;
        this.edges.set(key, path);
        this.edgeLayer.append(path);
      }
      path.setAttribute('d', edgePath(e));
    }
    for (const [key, path] of this.edges) {
      if (seen.has(key)) continue;
      path.remove();
      this.edges.delete(key);
    }
  }

  createNode(id) {
    const img = h('img', { alt: '', draggable: false, loading: 'lazy' });
    const glyph = h('span.prov-glyph');
    const name = h('span.prov-name');
    const op = h('span.prov-op');
    const el = h(
      'button.prov-node',
      { type: 'button', tabIndex: -1, dataset: { layerId: id, testid: 'prov-node' }, style: { width: `${NODE.width}px`, height: `${NODE.height}px` } },
      h('span.prov-thumb', null, img, glyph),
      h('span.prov-text', null, name, op),
      h('span.prov-dot'),
    );
    const node = { el, img, glyph, name, op, signature: null };
    this.nodes.set(id, node);
    this.canvas.append(el);
    return node;
  }

  updateNode(id, layer) {
    const node = this.nodes.get(id);
    const render = this.past ? null : this.renders?.get(id);
    const status = this.past && !layer.output && layer.status !== 'failed' ? 'missing' : render?.rendering ? 'rendering' : isCancelled(layer) ? 'cancelled' : layer.status;
    const operation = this.editor.operationTitle(layer.operation);
    const made = this.made.get(id) ?? 0;
    const signature = [layer.name, layer.output?.sha256, status, operation, layer.parents.join(','), made].join('|');
    if (signature === node.signature) return;
    node.signature = signature;
    node.el.dataset.status = status;
    node.name.textContent = layer.name;
    node.op.textContent = operation;
    const from = layer.parents.map((p) => this.state.layers[p]?.name).filter(Boolean);
    node.el.title = `${layer.name} — ${operation}${from.length ? `, made from ${from.join(', ')}` : ''}`;
    node.el.setAttribute('aria-label', `${layer.name}, ${operation}, ${STATUS_TEXT[status] || status}${from.length ? `, made from ${from.join(', ')}` : ''}; ${made ? `${made} made from it` : 'nothing made from it'}`);
    if (layer.output) {
      const src = blobUrl(layer.output.sha256);
      if (node.img.getAttribute('src') !== src) node.img.src = src;
      node.img.hidden = false;
      fill(node.glyph);
    } else {
      node.img.hidden = true;
      node.img.removeAttribute('src');
      fill(node.glyph, icon(this.editor.maskOps?.has(layer.operation) ? 'mask' : 'image', { size: 16 }));
    }
  }

  /** The marks: the selected node; the hovered one and what re-renders with it, or the selected one's delete;
   * the other nodes dimmed so the marked ones stand out; and the caption saying it in words. */
  paint() {
    if (!this.state) return;
    const { state, selected } = this;
    // presence and progress redraw the editor many times a second: repaint only when a mark can have moved
    const key = [state.version, this.structure, selected, this.hovered, this.deleting, this.readOnly].join('|');
    if (key === this.painted) return;
    this.painted = key;
    const hovered = this.hovered && state.layers[this.hovered] ? this.hovered : null;
    const deleting = this.deleting && selected && state.layers[selected];
    const doomed = new Set(deleting ? deleteTakes(state, selected) : []);
    const affected = new Set(hovered && !deleting ? changeRerenders(state, hovered) : []);
    const source = deleting ? selected : hovered;
    const focus = doomed.size || affected.size || source;
    for (const [id, node] of this.nodes) {
      const cls = node.el.classList;
      cls.toggle('selected', id === selected);
      node.el.setAttribute('aria-current', id === selected ? 'true' : 'false');
      cls.toggle('source', id === source);
      cls.toggle('affected', affected.has(id));
      cls.toggle('doomed', doomed.has(id));
      cls.toggle('dimmed', !!focus && id !== source && !affected.has(id) && !doomed.has(id));
    }
    for (const [, path] of this.edges) {
      const { from, to } = path.dataset;
      const cls = path.classList;
      cls.toggle('affected', (from === hovered || affected.has(from)) && affected.has(to));
      cls.toggle('doomed', doomed.has(from) && doomed.has(to));
      cls.toggle('dimmed', !!focus && !cls.contains('affected') && !cls.contains('doomed'));
    }
    const about = deleting ? selected : hovered || selected;
    const text = about ? impactSentence(state, about, deleting ? 'delete' : 'change') : state.order.length ? 'Hover a layer to see what re-renders when it changes; select one to see what deleting it takes.' : '';
    if (this.caption.textContent !== text) {
      this.caption.textContent = text;
      this.caption.title = text; // the whole sentence, when three lines cut it
    }
    this.caption.dataset.kind = deleting ? 'delete' : about ? 'change' : '';
    this.deleteToggle.disabled = !selected || !state.layers[selected];
    this.deleteToggle.title = this.deleteToggle.disabled ? 'Select a layer first' : 'Mark the layers a delete of the selected layer takes with it';
    this.deleteToggle.setAttribute('aria-pressed', String(!!deleting));
    this.deleteToggle.classList.toggle('active', !!deleting);
    this.deleteNow.hidden = !deleting || this.readOnly;
  }
}
