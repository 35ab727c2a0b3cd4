// The history: a slider over versions 1..head at the bottom of the canvas (dragging shows the canvas as it
// was, read-only; hovering shows a card of that version, timeline-hover.js), and a list of who did what in
// the side panel. The track keeps its width while scrubbing: the actions float above it (styles.css).

import { h, icon, fill } from './dom.js';
import { describeEvent, describeStep, historySteps, stepAt, actorLabel, relativeTime, timelineTicks, eventAt, SYSTEM_ACTOR } from '../history.js';
import { COLOURS, initials, browserPart } from '../identity.js';
import { TimelineHover } from './timeline-hover.js';

/** A person's colour: their own entry in `people` ({user, colour}: this page's identity, who is here, who the
 * canvas knows), else one of the same browser under another link, else one derived from the id. */
export function colourFor(user, people) {
  for (const p of people) if (p.user === user && p.colour) return p.colour;
  const part = browserPart(user);
  if (part) for (const p of people) if (p.colour && browserPart(p.user) === part) return p.colour;
  let hash = 0;
  for (const ch of String(user)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return user === SYSTEM_ACTOR ? '#6b7280' : COLOURS[hash % COLOURS.length];
}

export class TimelineBar {
  /** actions: scrub(version), live(), fork(version), restore(version), renderVersion(version),
   * thumbnail(version) → the URL of a small picture of the canvas at that version */
  constructor(actions) {
    this.actions = actions;
    this.slider = h('input.timeline-slider', { type: 'range', min: 1, max: 1, step: 1, value: 1, 'aria-label': 'Version', dataset: { testid: 'timeline-slider' } });
    this.ticks = h('div.timeline-ticks');
    this.version = h('span.timeline-version', { dataset: { testid: 'timeline-version' } });
    this.label = h('span.timeline-label', { dataset: { testid: 'timeline-label' } });
    this.liveBtn = h('button.btn.btn-small', { type: 'button', onclick: () => this.actions.live(), dataset: { testid: 'back-to-live' } }, icon('x'), 'Back to live');
    this.forkBtn = h('button.btn.btn-small', { type: 'button', onclick: () => this.actions.fork(this.value()), dataset: { testid: 'fork' }, title: 'Start a new canvas from this version' }, icon('fork'), 'Fork');
    this.restoreBtn = h('button.btn.btn-small.btn-primary', { type: 'button', onclick: () => this.actions.restore(this.value()), dataset: { testid: 'restore' }, title: 'Make this version the current one (undoable)' }, icon('restore'), 'Restore');
    this.renderBtn = h('button.btn.btn-small', { type: 'button', onclick: () => this.actions.renderVersion?.(this.value()), dataset: { testid: 'render-version' }, title: 'Render the layers this version never had a picture for' }, icon('sparkles'), 'Render this version');
    this.nameBtn = h('button.btn.btn-small', { type: 'button', onclick: () => this.actions.nameVersion?.(this.scrubbing ? this.value() : this.head), dataset: { testid: 'name-version-button' }, title: 'Name this version (a checkpoint on the timeline)' }, icon('edit'), 'Name');
    this.checkpointMarks = h('div.timeline-checkpoints');
    this.scrubActions = h('div.timeline-actions', { dataset: { testid: 'timeline-actions' } }, this.renderBtn, this.forkBtn, this.restoreBtn, this.liveBtn);
    this.track = h('div.timeline-track', { dataset: { testid: 'timeline-track' } }, this.ticks, this.checkpointMarks, this.slider);
    this.hover = new TimelineHover({ track: this.track, head: () => this.head, words: (v) => this.versionWords(v), thumbnail: (v) => this.actions.thumbnail?.(v) });
    this.el = h(
      'footer.timeline',
      { dataset: { testid: 'timeline' } },
      h('span.timeline-icon', { title: 'History' }, icon('history')),
      this.track,
      this.version,
      h('div.timeline-info', null, this.label),
      this.nameBtn,
      this.scrubActions,
    );
    this.slider.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.scrubbing) this.actions.live(); // the slider keeps the focus after a drag
    });
    this.slider.addEventListener('input', () => {
      const v = this.value();
      if (v >= this.head) this.actions.live();
      else this.actions.scrub(v);
    });
    this.head = 1;
    this.scrubbing = false;
  }

  value() {
    return Number(this.slider.value);
  }

  /** Who did what at `version` (the hover card's words; the label below says the same of the current one). */
  versionWords(version) {
    const c = this.context;
    const event = c ? eventAt(c.events, version) : null;
    if (!event) return null;
    const step = stepAt(c.events, event.seq);
    const what = (step ? describeStep(step, c) : describeEvent(event, c)).text;
    return { who: actorLabel(event.actor, { me: c.me, names: c.names }), colour: colourFor(event.actor, c.people), what, when: relativeTime(event.timestamp) };
  }

  /** Named versions as labelled marks over the track (a click goes there). */
  drawCheckpoints(checkpoints) {
    const key = `${this.head}:${JSON.stringify(checkpoints)}`;
    if (key === this.checkpointsKey) return;
    this.checkpointsKey = key;
    const at = (version) => (this.head <= 1 ? 0 : (version - 1) / (this.head - 1));
    fill(this.checkpointMarks,
      ...Object.entries(checkpoints).map(([version, label]) =>
        h('button.checkpoint-mark', {
          type: 'button',
          style: { left: `calc(${at(Number(version))} * (100% - 14px) + 7px)` },
          title: `Version ${version}: ${label}`,
          dataset: { testid: 'checkpoint-mark', version },
          onclick: () => (Number(version) >= this.head ? this.actions.live() : this.actions.scrub(Number(version))),
        }, h('span.checkpoint-label', null, label)),
      ),
    );
  }

  update({ head, scrubVersion, events, people, me, names, layerName, operationTitle, canRestore, past = null, checkpoints = {} }) {
    this.head = Math.max(1, head);
    this.context = { events, people, me, names, layerName, operationTitle };
    this.hover.refresh();
    this.scrubbing = scrubVersion != null;
    this.slider.max = String(this.head);
    this.slider.disabled = this.head <= 1;
    const value = this.scrubbing ? scrubVersion : this.head;
    if (document.activeElement !== this.slider || !this.scrubbing) this.slider.value = String(value);
    this.el.classList.toggle('scrubbing', this.scrubbing);
    this.version.textContent = this.scrubbing ? `v${value} of ${this.head}` : `v${this.head}`;
    // scrubbing: what happened at that version; live: the last thing a person did
    const event = this.scrubbing ? eventAt(events, value) : lastHumanEvent(events);
    if (event) {
      const who = actorLabel(event.actor, { me, names });
      const step = stepAt(events, event.seq); // a drag's last tick reads as the drag, an undo as the undo
      const what = (step ? describeStep(step, { layerName, operationTitle }) : describeEvent(event, { layerName, operationTitle })).text;
      fill(this.label, h('span.dot', { style: { background: colourFor(event.actor, people) } }), h('strong', null, who), ` ${what}`, h('span.muted', null, ` · ${relativeTime(event.timestamp)}`));
      this.label.title = `${who} ${what}`; // the whole sentence where the bar is too narrow for it
    } else fill(this.label, h('span.muted', null, this.scrubbing ? 'Loading…' : 'Live'));
    this.scrubActions.hidden = !this.scrubbing;
    this.nameBtn.hidden = !canRestore;
    this.drawCheckpoints(checkpoints);
    this.restoreBtn.hidden = !canRestore;
    // a past version whose layers never had a picture: an editor may have them rendered (a viewer may not)
    this.renderBtn.hidden = !(this.scrubbing && past && past.canRender && past.renderable > 0 && !past.checking);
    this.renderBtn.disabled = !!past?.rendering;
    const renderLabel = past?.rendering ? 'Rendering…' : 'Render this version';
    if (this.renderBtn.dataset.label !== renderLabel) {
      this.renderBtn.dataset.label = renderLabel;
      fill(this.renderBtn, past?.rendering ? h('span.spinner') : icon('sparkles'), renderLabel);
    }
    const key = `${this.head}:${events.length}`;
    if (key !== this.ticksKey) {
      this.ticksKey = key;
      fill(this.ticks, 
        ...timelineTicks(events, this.head).map((t) => h('span.tick', { style: { left: `calc(${t.at} * (100% - 14px) + 7px)`, background: colourFor(t.actor, people) } })),
      );
    }
  }
}

export class HistoryList {
  /** actions: scrub(version) */
  constructor(actions) {
    this.actions = actions;
    this.showRenders = false;
    this.toggle = h('label.check-row', null, h('input', { type: 'checkbox', onchange: (e) => { this.showRenders = e.target.checked; this.key = null; this.update(this.last); } }), 'Show renders');
    this.list = h('ol.history-list', { dataset: { testid: 'history-list' } });
    this.el = h('div.history-panel', null, h('div.history-tools', null, this.toggle), this.list);
    this.key = null;
  }

  update(args) {
    this.last = args;
    if (!args) return;
    const { events, people, me, names, layerName, operationTitle, scrubVersion, head } = args;
    const key = `${events.length}:${events.at(-1)?.seq}:${scrubVersion}:${names.size}:${people.length}`;
    if (key === this.key) return;
    this.key = key;
    // one entry per step (a whole slider drag, an undo, a restore), as the server's undo counts them
    const shown = historySteps(events).filter((s) => this.showRenders || s.actor !== SYSTEM_ACTOR).slice(-300).reverse();
    const current = scrubVersion ?? head;
    fill(this.list, 
      ...shown.map((step) => {
        const who = actorLabel(step.actor, { me, names });
        const { kind, text } = describeStep(step, { layerName, operationTitle });
        const span = step.first === step.seq ? `v${step.seq}` : `v${step.first}–${step.seq}`;
        const last = step.events[step.events.length - 1];
        return h(
          'li.history-item',
          {
            class: `${step.seq === current ? 'current' : ''} ${step.seq > current ? 'future' : ''} kind-${kind}`,
            dataset: { seq: String(step.seq), first: String(step.first) },
            title: `Version ${step.seq}: show the canvas as it was`,
            onclick: () => this.actions.scrub(step.seq),
          },
          h('span.avatar.avatar-small', { style: { background: colourFor(step.actor, people) } }, step.actor === SYSTEM_ACTOR ? icon('sparkles', { size: 12 }) : initials(actorLabel(step.actor, { names }))),
          h('span.history-text', null, h('strong', null, who), ` ${text}`, h('small', null, `${span} · ${relativeTime(last.timestamp)}`)),
        );
      }),
    );
    if (!shown.length) this.list.append(h('li.panel-empty', null, 'Nothing yet'));
  }
}

function lastHumanEvent(events) {
  for (let i = events.length - 1; i >= 0; i--) if (events[i].actor !== SYSTEM_ACTOR) return events[i];
  return events[events.length - 1] || null;
}
