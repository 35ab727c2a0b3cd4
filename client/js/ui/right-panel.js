// The right panel: its two tabs, the layer stack (with the upload button over it) and the history list, which
// loads the whole timeline the first time it is opened.

import { h, icon, fill } from './dom.js';

export class RightPanel {
  constructor(editor) {
    this.editor = editor;
    this.tab = 'layers';
    this.tabLayers = h('button.tab', { type: 'button', role: 'tab', dataset: { testid: 'tab-layers' }, onclick: () => this.setTab('layers') }, icon('layers'), 'Layers', h('span.tab-count'));
    this.tabHistory = h('button.tab', { type: 'button', role: 'tab', dataset: { testid: 'tab-history' }, onclick: () => this.setTab('history') }, icon('history'), 'History');
    this.uploadBtn = h('button.btn.btn-small.btn-ghost', { type: 'button', dataset: { testid: 'upload' }, title: 'Add an image as a layer (or drop it on the canvas)', onclick: () => editor.transfers.pickUpload() }, icon('upload'), 'Upload image');
    this.body = h('div.panel-body.panel-body-flush');
    this.el = h(
      'aside.sidebar.sidebar-right',
      { dataset: { testid: 'right-panel' } },
      h('div.tabs', { role: 'tablist' }, this.tabLayers, this.tabHistory),
      h('div.panel-toolbar', null, this.uploadBtn, h('div.spacer'), h('span.panel-hint', null, 'Top of the stack first')),
      this.body,
    );
  }

  setTab(tab) {
    const editor = this.editor;
    this.tab = tab;
    this.tabLayers.classList.toggle('active', tab === 'layers');
    this.tabHistory.classList.toggle('active', tab === 'history');
    fill(this.body, tab === 'layers' ? editor.layers.el : editor.history.el);
    this.el.querySelector('.panel-toolbar').hidden = tab !== 'layers';
    if (tab === 'history') {
      editor.history.key = null;
      if (!editor.session.timelineComplete) editor.session.loadTimeline();
    }
    editor.schedule();
  }
}
