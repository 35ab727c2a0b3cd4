// The notices over the stage: the render pill (what is rendering, how far), the banner when renders are
// blocked, the view-only banner, the "Opening canvas…" cover and the cover when the canvas cannot be opened;
// while a countdown (an ETA, a retry) shows, the editor draws again every second.

import { h, icon, fill } from './dom.js';
import { stack } from '../state.js';
import { pillStatus, blockedText } from '../renders.js';

export class StageStatus {
  constructor(editor) {
    this.editor = editor;
    this.renderPill = h('div.render-pill.floating', { dataset: { testid: 'render-pill' } });
    this.blockedBanner = h('div.blocked-banner.floating', { dataset: { testid: 'render-blocked' }, role: 'status', hidden: true });
    this.readOnlyBanner = h('div.readonly-banner.floating', { dataset: { testid: 'readonly-banner' } }, icon('lock', { size: 14 }), h('span', null, 'View only — you can look, scrub the history and export, but not change this canvas.'));
    this.loading = h('div.loading-cover', null, h('span.spinner.spinner-large'), h('span', null, 'Opening canvas…'));
    this.fatal = h('div.fatal-cover', { hidden: true });
  }

  /** The connection's news: the cover goes once the canvas is open, and says why when it cannot be. */
  onStatus(status, detail) {
    if (status === 'live' && detail?.you) this.loading.hidden = true;
    if (status === 'fatal') {
      this.loading.hidden = true;
      this.fatal.hidden = false;
      fill(this.fatal, 
        h('div.fatal-card', null, icon('lock', { size: 28 }), h('h3', null, 'Cannot open this canvas'), h('p', null, detail?.message || 'The server closed the connection.'), h('a.btn.btn-primary', { href: './' }, 'All canvases')),
      );
    }
  }

  renderReadOnly() {
    const editor = this.editor;
    this.readOnlyBanner.hidden = editor.canEdit || editor.role === null;
  }

  /** Countdowns (an ETA, a retry) on screen: draw again every second while there is one. */
  tickWhileCounting() {
    const editor = this.editor;
    const counting = !editor.scrub && (!!editor.session.blocked || [...editor.session.renders.values()].some((r) => r.etaS !== null && r.etaS !== undefined));
    if (counting && !this.ticker) this.ticker = setInterval(() => editor.schedule(), 1000);
    if (!counting && this.ticker) {
      clearInterval(this.ticker);
      this.ticker = null;
    }
  }

  renderBlocked() {
    const blocked = this.editor.scrub ? null : this.editor.session.blocked;
    this.blockedBanner.hidden = !blocked;
    if (!blocked) return;
    const text = blockedText(blocked);
    if (text === this.blockedKey) return;
    this.blockedKey = text;
    fill(this.blockedBanner, icon('alert', { size: 14 }), h('span', null, text));
  }

  renderRenderPill(state) {
    if (this.editor.scrub) {
      this.renderPill.hidden = true;
      return;
    }
    const busy = stack(state).filter((l) => l.status === 'pending' || l.status === 'stale');
    const pill = pillStatus(state.layers, busy, this.editor.session.renders);
    this.renderPill.hidden = !pill;
    if (!pill) return;
    const key = JSON.stringify(pill);
    if (key === this.pillKey && this.renderPill.childNodes.length) return;
    this.pillKey = key;
    this.renderPill.classList.toggle('stuck', !!pill.stuck);
    fill(this.renderPill,
      pill.stuck ? icon('alert', { size: 14 }) : h('span.spinner'), // nothing moves until someone acts
      h('span.pill-text', null, pill.title, pill.detail ? h('small', null, ` · ${pill.detail}`) : null),
      h('span.pill-progress', null, h('span', { style: { width: `${Math.round(pill.fraction * 100)}%` } })),
    );
  }
}
