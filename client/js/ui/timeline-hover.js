// The timeline's hover card: over the track, the version under the pointer (the one a press there lands on),
// a thumbnail of the canvas as it was then (composite.png?version=N&thumbnail=1) and who did what at it.

import { h, fill } from './dom.js';

export const THUMB_WIDTH = 14; // the slider's thumb (styles.css): the browser keeps its centre half of it in
const LOAD_DELAY_MS = 120; // sweeping the track asks the server only for versions the pointer rests on
const KEEP = 48; // thumbnails kept (each version's picture never changes)

/** The version a range slider from 1 to `head` puts its thumb at for a pointer at `clientX`. */
export function versionAtX(rect, clientX, head, thumb = THUMB_WIDTH) {
  if (head <= 1 || rect.width <= thumb) return 1;
  const fraction = Math.min(1, Math.max(0, (clientX - rect.left - thumb / 2) / (rect.width - thumb)));
  return Math.round(1 + fraction * (head - 1));
}

/** Where, from the track's left edge, the thumb's centre stands at `version`. */
export function xOfVersion(width, version, head, thumb = THUMB_WIDTH) {
  if (head <= 1) return thumb / 2;
  return thumb / 2 + ((version - 1) / (head - 1)) * (width - thumb);
}

export class TimelineHover {
  /** head() → the newest version; words(version) → {who, colour, what, when} | null; thumbnail(version) → URL */
  constructor({ track, head, words, thumbnail }) {
    Object.assign(this, { track, head, words, thumbnail });
    this.pictures = new Map(); // version -> a loaded <img>, or 'none' (nothing visible then)
    this.version = null;
    this.picture = h('div.timeline-hover-picture', { dataset: { testid: 'timeline-hover-picture' } });
    this.title = h('div.timeline-hover-title');
    this.text = h('div.timeline-hover-text');
    this.el = h('div.timeline-hover', { hidden: true, role: 'tooltip', dataset: { testid: 'timeline-hover' } }, this.picture, this.title, this.text);
    track.append(this.el);
    track.addEventListener('pointermove', (event) => this.at(event.clientX));
    track.addEventListener('pointerleave', (event) => {
      if (!(event.buttons & 1)) this.hide(); // a drag that leaves the track still shows where it lands
    });
    track.addEventListener('pointerup', (event) => {
      if (!this.track.contains(document.elementFromPoint(event.clientX, event.clientY))) this.hide();
    });
  }

  at(clientX) {
    const head = this.head();
    if (head <= 1) return this.hide();
    const rect = this.track.getBoundingClientRect();
    const version = versionAtX(rect, clientX, head);
    this.el.hidden = false;
    this.place(rect, xOfVersion(rect.width, version, head));
    if (version !== this.version) this.show(version);
  }

  /** Over the version, but inside the timeline's width: near an end of the track the card shifts inward. */
  place(rect, x) {
    const half = this.el.offsetWidth / 2;
    const bar = (this.track.parentElement || this.track).getBoundingClientRect();
    const low = bar.left - rect.left + half + 4;
    const high = bar.right - rect.left - half - 4;
    this.el.style.left = `${low > high ? x : Math.min(Math.max(x, low), high)}px`;
  }

  show(version) {
    this.version = version;
    this.el.dataset.version = String(version);
    this.say(version);
    this.showPicture(version);
  }

  /** Who did what at `version`; "Loading the history…" until the timeline has the events, then said again. */
  say(version) {
    const words = this.words(version);
    fill(this.title, h('strong', null, `Version ${version}`), words?.when ? h('span.muted', null, ` · ${words.when}`) : null);
    fill(this.text, words ? h('span.dot', { style: { background: words.colour } }) : null, words ? h('strong', null, words.who) : null, words ? ` ${words.what}` : h('span.muted', null, 'Loading the history…'));
  }

  /** The history changed (it arrived, or a new event did): a card that is showing says it again. */
  refresh() {
    if (!this.el.hidden && this.version != null) this.say(this.version);
  }

  showPicture(version) {
    clearTimeout(this.timer);
    const known = this.pictures.get(version) ?? (this.current?.version === version ? this.current.value : null);
    if (known === 'none') return fill(this.picture, h('span.muted', null, 'No picture at this version'));
    if (known) return fill(this.picture, known);
    fill(this.picture, h('span.spinner'));
    this.timer = setTimeout(() => this.load(version), LOAD_DELAY_MS);
  }

  load(version) {
    const url = this.thumbnail(version);
    if (!url) return;
    const img = h('img', { alt: `The canvas at version ${version}`, draggable: false });
    const past = version < this.head();
    const done = (value) => {
      // the newest version may still get pictures: kept for this hover only, asked again the next time
      if (past) this.remember(version, value);
      else this.current = { version, value };
      if (this.version === version && !this.el.hidden) this.showPicture(version);
    };
    img.onload = () => done(img);
    img.onerror = () => done('none'); // 404 no_image: nothing visible at that version
    img.src = url;
  }

  remember(version, value) {
    this.pictures.set(version, value);
    if (this.pictures.size > KEEP) this.pictures.delete(this.pictures.keys().next().value);
  }

  hide() {
    clearTimeout(this.timer);
    this.current = null;
    this.el.hidden = true;
    this.version = null;
  }
}
