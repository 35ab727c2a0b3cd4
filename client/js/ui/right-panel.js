// The right panel: its three tabs, the layer stack (with the upload button over it), the history list, which
// loads the whole timeline the first time it is opened, and the provenance graph (provenance-view.js).

import { h, icon, fill } from './dom.js';
import { ProvenanceView } from './provenance-view.js';

export class RightPanel {
  constructor(editor) {
    this.editor = editor;
    this.tab = 'layers';
    this.tabLayers = h('button.tab', { type: 'button', role: 'tab', dataset: { testid: 'tab-layers' }, onclick: () => this.setTab('layers') }, icon('layers'), 'Layers', h('span.tab-count'));
    this.tabHistory = h('button.tab', { type: 'button', role: 'tab', dataset: { testid: 'tab-history' }, onclick: () => this.setTab('history') }, icon('history'), 'History');
    this.tabGraph = h('button.tab', { type: 'button', role: 'tab', title: 'What was made from what', dataset: { testid: 'tab-graph' }, onclick: () => this.setTab('graph') }, icon('fork'), 'Graph');
    this.graph = new ProvenanceView(editor);
    this.uploadBtn = h('button.btn.btn-small.btn-ghost', { type: 'button', dataset: { testid: 'upload' }, title: 'Add an image as a layer (or drop it on the canvas)', onclick: () => editor.transfers.pickUpload() }, icon('upload'), 'Upload image');
    this.body = h('div.panel-body.panel-body-flush');
    this.el = h(
      'aside.sidebar.sidebar-right',
      { dataset: { testid: 'right-panel' } },
      h('div.tabs', { role: 'tablist' }, this.tabLayers, this.tabHistory, this.tabGraph),
      h('div.panel-toolbar', null, this.uploadBtn, h('div.spacer'), h('span.panel-hint', null, 'Top of the stack first')),
      this.body,
    );
  }

  setTab(tab) {
    const editor = this.editor;
    this.tab = tab;
    for (const [name, button] of [['layers', this.tabLayers], ['history', this.tabHistory], ['graph', this.tabGraph]]) {
      button.classList.toggle('active', tab === name);
      button.setAttribute('aria-selected', String(tab === name));
    }
    fill(this.body, tab === 'layers' ? editor.layers.el : tab === 'graph' ? this.graph.el : editor.history.el);
    this.el.querySelector('.panel-toolbar').hidden = tab !== 'layers';
    if (tab === 'history') {
      editor.history.key = null;
      if (!editor.session.timelineComplete) editor.session.loadTimeline();
    }
    editor.schedule();
  }

  /** Each editor frame: the graph follows the state shown (live or past), the selection and the renders. */
  render(state) {
    if (this.tab !== 'graph') return;
    const { editor } = this;
    this.graph.update({ state, selected: editor.selected, renders: editor.scrub ? new Map() : editor.session.renders, readOnly: editor.readOnly, past: !!editor.scrub && !editor.scrub.loading });
  }
}
