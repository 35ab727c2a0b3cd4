// Follow mode: a click on a collaborator's avatar makes this page show what they look at (their viewport from
// presence, and their selection) until this person pans or zooms themselves, presses Esc, or clicks again.

import { h, icon, toast } from './dom.js';
import { initials } from '../identity.js';

export class Follow {
  constructor(editor) {
    this.editor = editor;
    this.target = null; // {user, conn, name, colour}: whom this page follows
    this.applied = null; // the presence last applied (the same one is not applied twice)
    this.banner = h('div.follow-banner.floating', { hidden: true, role: 'status', dataset: { testid: 'follow-banner' } });
    editor.viewport.el.append(this.banner);
    document.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape' || !this.target || event.target.closest?.('input, textarea, select, .modal-backdrop')) return;
      event.stopImmediatePropagation(); // this Esc stops following; the next one steps back as usual
      this.stop();
    }, true);
  }

  get user() {
    return this.target?.user ?? null;
  }

  toggle(person) {
    if (this.target && this.target.user === person.user) this.stop();
    else this.start(person);
  }

  start(person) {
    this.target = { user: person.user, conn: person.conn, name: person.name, colour: person.colour };
    this.applied = null;
    this.editor.viewport.onUserView = () => this.stop({ quiet: true }); // panning or zooming yourself ends it
    toast(`Following ${person.name || 'them'} — pan, zoom or press Esc to stop`, { timeout: 2500 });
    this.render(this.editor.people());
    this.editor.schedule(); // the avatar shows it
  }

  stop({ quiet = false } = {}) {
    if (!this.target) return;
    const { name } = this.target;
    this.target = null;
    this.applied = null;
    this.editor.viewport.onUserView = null;
    this.banner.hidden = true;
    this.editor.viewport.el.classList.remove('following');
    if (!quiet) toast(`Stopped following ${name || 'them'}`, { timeout: 1500 });
    this.editor.schedule();
  }

  /** The person followed, as presence has them now: their latest connection that says where it looks. */
  presenceOf(people) {
    const theirs = people.filter((p) => p.user === this.target.user);
    return theirs.find((p) => p.conn === this.target.conn) || theirs.find((p) => p.viewport) || theirs[0] || null;
  }

  /** Each frame: go where the person followed looks, select what they select; they left: stop. */
  render(people) {
    if (!this.target) return;
    const person = this.presenceOf(people);
    if (!person) {
      toast(`${this.target.name || 'The person you followed'} left`, { timeout: 2000 });
      return this.stop({ quiet: true });
    }
    this.target.conn = person.conn;
    this.showBanner(person);
    if (person === this.applied) return;
    this.applied = person;
    const editor = this.editor;
    if (person.viewport) editor.viewport.showView(person.viewport);
    const layer = person.selected_layer;
    if (!editor.scrub && layer !== editor.selected && (layer === null || editor.session.state.layers[layer])) editor.select(layer);
  }

  showBanner(person) {
    const key = `${person.name}|${person.colour}`;
    this.banner.hidden = false;
    this.editor.viewport.el.classList.add('following');
    this.editor.viewport.el.style.setProperty('--follow-colour', person.colour || '#8b6cff');
    if (key === this.bannerKey) return;
    this.bannerKey = key;
    this.banner.replaceChildren(
      h('span.avatar.avatar-small', { style: { background: person.colour } }, initials(person.name || '?')),
      h('span', null, `Following ${person.name || 'them'}`),
      h('button.btn.btn-small.btn-ghost', { type: 'button', dataset: { testid: 'stop-following' }, onclick: () => this.stop() }, icon('x', { size: 12 }), 'Stop (Esc)'),
    );
  }
}
