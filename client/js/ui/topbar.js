// The top bar: the canvas's name (renamed in place), this browser's role and connection, the people here
// (and your own avatar, which opens the "your name" dialog; another's follows them, follow.js), undo and
// redo, import, export and share.

import { h, icon, iconButton, fill } from './dom.js';
import { historyCounts } from '../state.js';
import { initials } from '../identity.js';
import { ROLE_LABEL, openShareDialog } from './share-dialog.js';
import { openNameDialog } from './name-dialog.js';
import { Follow } from './follow.js';

const STATUS_LABEL = { connecting: 'Connecting…', live: 'Live', reconnecting: 'Reconnecting…', fatal: 'Disconnected', closed: 'Offline', idle: 'Connecting…' };

export class TopBar {
  constructor(editor) {
    this.editor = editor;
    editor.follow = new Follow(editor); // the avatars start and show it
    this.nameInput = h('input.canvas-name', {
      type: 'text',
      value: '',
      maxLength: 200,
      'aria-label': 'Canvas name',
      dataset: { testid: 'canvas-name' },
      onkeydown: (e) => {
        if (e.key === 'Enter') e.target.blur();
        if (e.key === 'Escape') {
          e.target.value = editor.session.state.name;
          e.target.blur();
        }
      },
      onchange: (e) => {
        const name = e.target.value.trim();
        if (name && name !== editor.session.state.name) editor.command({ type: 'rename_canvas', name });
        else e.target.value = editor.session.state.name;
      },
    });
    this.roleBadge = h('span.badge', { dataset: { testid: 'role' } });
    this.statusPill = h('span.status-pill', { dataset: { testid: 'connection' } });
    this.avatars = h('div.avatars', { dataset: { testid: 'avatars' } });
    this.undoBtn = iconButton('undo', 'Undo (Ctrl+Z)', () => editor.actions.undo(), { testid: 'undo' });
    this.redoBtn = iconButton('redo', 'Redo (Ctrl+Shift+Z)', () => editor.actions.redo(), { testid: 'redo' });
    this.exportBtn = h('button.btn', { type: 'button', dataset: { testid: 'export' }, onclick: (e) => editor.transfers.exportMenu(e.currentTarget) }, icon('download'), 'Export', icon('chevronDown', { size: 14 }));
    this.importBtn = h('button.btn.btn-ghost', { type: 'button', dataset: { testid: 'import' }, title: 'Open a workflow (.json or a PNG made by Opendream) as a new canvas', onclick: () => editor.transfers.importWorkflow() }, icon('upload'), 'Import');
    this.shareBtn = h('button.btn.btn-primary', { type: 'button', dataset: { testid: 'share' }, onclick: () => this.share() }, icon('share'), 'Share');
    this.el = h(
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
  }

  get canShare() {
    return this.editor.role === 'owner' || this.editor.role === 'admin';
  }

  share() {
    if (!this.canShare) return;
    openShareDialog({ api: this.editor.api, canvasId: this.editor.canvasId, name: this.editor.session.state.name });
  }

  render(people) {
    const editor = this.editor;
    const live = editor.session.state;
    document.title = `${live.name || 'Canvas'} — Opendream`;
    if (document.activeElement !== this.nameInput) this.nameInput.value = live.name || '';
    this.nameInput.readOnly = !editor.canEdit;
    this.roleBadge.textContent = ROLE_LABEL[editor.role] || '';
    this.roleBadge.hidden = !editor.role;
    this.roleBadge.dataset.role = editor.role || '';
    const pending = editor.queue.size;
    this.statusPill.dataset.status = editor.status;
    fill(this.statusPill, h('span.status-dot'), STATUS_LABEL[editor.status] || editor.status, pending && editor.status !== 'live' ? h('small', null, ` · ${pending} unsent`) : null);
    editor.follow.render(people);
    this.renderAvatars(people);
    const counts = historyCounts(live, editor.me);
    this.undoBtn.disabled = !editor.canEdit || !!editor.scrub || counts.undo === 0;
    this.redoBtn.disabled = !editor.canEdit || !!editor.scrub || counts.redo === 0;
    this.shareBtn.disabled = !this.canShare;
    this.shareBtn.title = this.shareBtn.disabled ? 'Only the owner can share this canvas' : 'Invite people with a link';
  }

  renderAvatars(people) {
    const editor = this.editor;
    const byUser = new Map();
    for (const p of people) if (!byUser.has(p.user) && p.user !== editor.me) byUser.set(p.user, p);
    const others = [...byUser.values()];
    const following = editor.follow.user;
    const key = JSON.stringify([others.map((p) => [p.user, p.name, p.colour]), editor.identity.name, editor.identity.colour, following]);
    if (key === this.avatarsKey) return;
    this.avatarsKey = key;
    const me = h(
      'button.avatar.avatar-me',
      { type: 'button', style: { background: editor.identity.colour }, title: `You (${editor.identity.name}) — click to change your name`, dataset: { testid: 'avatar-me' }, onclick: () => openNameDialog(editor) },
      initials(editor.identity.name),
    );
    fill(this.avatars, 
      ...others.slice(0, 5).map((p) => this.avatar(p, p.user === following)),
      others.length > 5 ? h('span.avatar.avatar-more', null, `+${others.length - 5}`) : null,
      me,
    );
  }

  /** Another person's avatar: a click follows them (their viewport and selection), another click stops. */
  avatar(person, following) {
    const title = following ? `Following ${person.name} — click or press Esc to stop` : `${person.name} — click to follow what they look at`;
    return h(
      'button.avatar.avatar-follow',
      { type: 'button', class: following ? 'following' : '', style: { background: person.colour, '--colour': person.colour }, title, 'aria-pressed': String(following), dataset: { user: person.user, testid: 'avatar' }, onclick: () => this.editor.follow.toggle(person) },
      initials(person.name),
    );
  }
}
