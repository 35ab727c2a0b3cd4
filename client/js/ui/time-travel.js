// Time travel: looking at a past version (read-only) while the canvas goes on live, the pictures that version
// lacks (found, or rendered on request), the banner over the stage, back to live, fork and restore. A past
// version is shown once its recorded pictures are in (never as spinners), and kept for scrubbing back to it.

import { h, icon, toast, confirmDialog, fill } from './dom.js';
import { newId } from '../commands.js';
import { fromServer, stack } from '../state.js';
import { debounce } from '../throttle.js';
import { saveToken, editorUrl } from '../identity.js';
import { blobUrl } from '../api.js';

const KEEP_VERSIONS = 40; // past versions kept whole (state and pictures) for scrubbing back and forth

export class TimeTravel {
  constructor(editor) {
    this.editor = editor;
    this.scrub = null; // {version, state}
    this.past = new Map(); // version -> a finished scrub of it (every picture found), oldest first
    this.fetchPast = debounce((version) => this.loadPast(version), 90);
    this.banner = h('div.scrub-banner', { dataset: { testid: 'scrub-banner' } });
  }

  scrubTo(version) {
    const editor = this.editor;
    if (version >= editor.session.version) return this.backToLive();
    if (editor.masking) editor.mask.endMask();
    const known = this.past.get(version);
    if (known) {
      this.fetchPast.cancel();
      this.scrub = known;
    } else {
      // the version shown until this one is in stays on screen, as a past version (no live spinners)
      this.scrub = { version, state: this.scrub?.state || null, loading: true };
      this.fetchPast(version);
    }
    editor.schedule();
  }

  /** The URL of a small picture of the canvas at `version` (the timeline's hover card). */
  thumbnailUrl(version) {
    const { canvasId, token } = this.editor;
    return `/api/canvases/${encodeURIComponent(canvasId)}/composite.png?version=${version}&thumbnail=1${token ? `&token=${encodeURIComponent(token)}` : ''}`;
  }

  async loadPast(version) {
    const editor = this.editor;
    try {
      // the state and its layers' recorded or cached images together: shown once, with its pictures
      const images = editor.api.images(editor.canvasId, version).catch(() => null); // no render worker: none
      const json = await editor.api.state(editor.canvasId, version);
      if (!this.scrub || this.scrub.version !== version) return;
      const state = fromServer(json);
      const lacking = json.layers.some((l) => l.status !== 'rendered' || !l.output);
      const filled = lacking ? await this.withImages(state, await images) : { state, missing: new Map() };
      if (!this.scrub || this.scrub.version !== version) return;
      this.scrub = { version, state: filled.state, loading: false, missing: filled.missing, checking: false, rendering: false };
      if (!filled.missing.size) this.keep(this.scrub); // a version still missing pictures is asked again
    } catch (error) {
      toast(`Cannot show version ${version}: ${error.message}`, { kind: 'error' });
      if (this.scrub?.version === version) this.scrub = { ...this.scrub, loading: false };
    }
    editor.schedule();
  }

  keep(scrub) {
    this.past.delete(scrub.version);
    this.past.set(scrub.version, scrub);
    if (this.past.size > KEEP_VERSIONS) this.past.delete(this.past.keys().next().value);
  }

  /** {state, missing}: `state` with the images an images answer names for the layers that had none. */
  async withImages(state, answer) {
    const images = answer?.images || {};
    const found = Object.entries(images).filter(([id, image]) => image?.sha256 && state.layers[id] && !state.layers[id].output);
    const sizes = await Promise.all(found.map(([, image]) => imageSize(blobUrl(image.sha256))));
    const layers = { ...state.layers };
    found.forEach(([id, image], index) => {
      if (!sizes[index]) return;
      layers[id] = { ...layers[id], output: { sha256: image.sha256, width: sizes[index].width, height: sizes[index].height, extra: [], rendered_later: image.source || true } };
    });
    const missing = new Map();
    for (const [id, layer] of Object.entries(layers)) if (!layer.output && layer.status !== 'failed') missing.set(id, images[id]?.missing || 'Not rendered at this version');
    return { state: { ...state, layers }, missing };
  }

  /** Fill the past version's layers with the images `request()` answers; note those still missing. */
  async fillPastImages(version, request) {
    let answer;
    try {
      answer = await request();
    } catch (error) {
      if (this.scrub?.version === version) this.scrub = { ...this.scrub, checking: false, rendering: false };
      this.editor.schedule();
      return { error };
    }
    if (!this.scrub || this.scrub.version !== version || !this.scrub.state) return { stale: true };
    const { state, missing } = await this.withImages(this.scrub.state, answer);
    if (!this.scrub || this.scrub.version !== version) return { stale: true };
    this.scrub = { ...this.scrub, state, missing, checking: false, rendering: false };
    if (!missing.size) this.keep(this.scrub);
    this.editor.schedule();
    return { missing };
  }

  /** What a past version lacks: {version, missing (layers without a picture), renderable (of those, the ones
   * a render can make: not failed or cancelled there), checking, rendering, canRender}, or null live. */
  pastSummary() {
    if (!this.scrub || this.scrub.loading || !this.scrub.state) return null;
    const layers = stack(this.scrub.state);
    const missing = layers.filter((l) => !l.output && l.status !== 'failed');
    return {
      version: this.scrub.version,
      missing: missing.length,
      renderable: missing.length,
      checking: !!this.scrub.checking,
      rendering: !!this.scrub.rendering,
      canRender: this.editor.canEdit,
    };
  }

  pastNote() {
    const past = this.pastSummary();
    if (!past || past.checking || !past.missing) return null;
    const count = past.missing === 1 ? '1 layer' : `${past.missing} layers`;
    const who = past.canRender ? '' : past.missing === 1 ? ' — an editor can render it' : ' — an editor can render them';
    return h('span.scrub-note', { dataset: { testid: 'past-missing' }, title: `${count} not rendered at this version${who}` }, `· ${count} not rendered at this version${who}`);
  }

  /** "Render this version": the server renders what the past version lacks (editors only). */
  async renderPast(version) {
    const editor = this.editor;
    if (!editor.canEdit || !this.scrub || this.scrub.version !== version || this.scrub.rendering) return;
    this.scrub = { ...this.scrub, rendering: true };
    editor.schedule();
    const result = await this.fillPastImages(version, () => editor.api.renderImages(editor.canvasId, version));
    if (result.error) toast(`Cannot render version ${version}: ${result.error.message}`, { kind: 'error' });
    else if (result.missing?.size) {
      const [id, why] = [...result.missing][0];
      toast(`${result.missing.size === 1 ? 'A layer' : `${result.missing.size} layers`} could not be rendered: “${editor.layerName(id)}” — ${why}`, { kind: 'error' });
    } else if (!result.stale) toast(`Rendered version ${version}`, { kind: 'success', timeout: 2000 });
  }

  backToLive() {
    const editor = this.editor;
    if (!this.scrub) return;
    this.fetchPast.cancel();
    this.scrub = null;
    if (editor.selected && !editor.session.state.layers[editor.selected]) editor.selected = null;
    editor.schedule();
  }

  async fork(version) {
    const editor = this.editor;
    try {
      const forked = await editor.api.fork(editor.canvasId, version);
      if (forked.owner_token) saveToken(editor.storage, forked.id, forked.owner_token, { role: 'owner' });
      toast(`Forked version ${version} into a new canvas`, { kind: 'success' });
      location.href = editorUrl(forked.id);
    } catch (error) {
      toast(`Fork failed: ${error.message}`, { kind: 'error' });
    }
  }

  async restore(version) {
    const editor = this.editor;
    if (!editor.canEdit) return;
    const ok = await confirmDialog({
      title: `Restore version ${version}?`,
      message: 'The canvas goes back to how it was at this version. Nothing is lost: the history keeps everything, and Undo takes it back.',
      confirm: 'Restore',
      testid: 'confirm-restore',
    });
    if (!ok) return;
    try {
      await editor.api.restore(editor.canvasId, version, newId('restore-'));
      this.backToLive();
      toast(`Restored version ${version}`, { kind: 'success' });
    } catch (error) {
      toast(`Restore failed: ${error.message}`, { kind: 'error' });
    }
  }

  renderBanner() {
    this.banner.hidden = !this.scrub;
    if (!this.scrub) return;
    fill(this.banner, 
      icon('history', { size: 14 }),
      h('span', null, `Viewing version ${this.scrub.version} of ${this.editor.session.version} · read-only`),
      this.scrub.loading ? h('span.spinner') : null,
      this.pastNote(),
    );
  }
}

function imageSize(url) {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve({ width: img.naturalWidth, height: img.naturalHeight });
    img.onerror = () => resolve(null);
    img.src = url;
  });
}
