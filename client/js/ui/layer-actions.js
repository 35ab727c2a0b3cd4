// Commands from the editor: sending one (a toast when the server refuses it), undo and redo, deleting a layer
// (confirmed, with the layers made from it listed), and cancelling a layer's render.

import { h, icon, toast, confirmDialog } from './dom.js';
import { deleteTakes } from '../provenance.js';
import { blobUrl } from '../api.js';

/** What to tell the user when the server refuses a command, by its code (null: nothing more to say). */
export const REJECT_TEXT = {
  forbidden: 'You can only view this canvas.',
  history_conflict: null,
  nothing_to_undo: 'Nothing to undo.',
  nothing_to_redo: 'Nothing to redo.',
  rate_limited: 'Slow down a little: too many changes at once.',
};

export class LayerActions {
  constructor(editor) {
    this.editor = editor;
  }

  /** Send `command`; the ack, or null (refused: a toast says why, unless `quiet` and merely rate-limited). */
  command(command, { quiet = false } = {}) {
    if (!this.editor.canEdit) {
      toast('You can only view this canvas.', { kind: 'error' });
      return Promise.resolve(null);
    }
    const { promise } = this.editor.queue.submit(command);
    return promise.catch((error) => {
      if (!quiet || error.code !== 'rate_limited') toast(REJECT_TEXT[error.code] || error.message, { kind: 'error' });
      throw error;
    }).catch(() => null);
  }

  async deleteLayer(layer) {
    const editor = this.editor;
    if (editor.readOnly) return;
    // the same list the Graph tab marks red for "What does deleting take?": the layer, then what was made from it
    const state = editor.session.state;
    const dependents = deleteTakes(state, layer.id).slice(1).map((id) => state.layers[id]);
    const details = dependents.length
      ? h(
          'div.dependents',
          { dataset: { testid: 'dependents' } },
          h('p.muted', null, `${dependents.length === 1 ? 'This layer was' : 'These layers were'} made from it and will be deleted too:`),
          h(
            'ul.dependent-list',
            null,
            dependents.map((d) => h('li', { dataset: { layerId: d.id } }, h('span.dependent-thumb', null, d.output ? h('img', { src: blobUrl(d.output.sha256), alt: '' }) : icon('image', { size: 14 })), h('span', null, d.name), h('small', null, editor.operationTitle(d.operation)))),
          ),
        )
      : null;
    const ok = await confirmDialog({
      title: dependents.length ? `Delete “${layer.name}” and ${dependents.length} more?` : `Delete “${layer.name}”?`,
      message: 'You can bring it back with Undo.',
      details,
      confirm: dependents.length ? `Delete ${dependents.length + 1} layers` : 'Delete layer',
      danger: true,
      testid: 'confirm-delete',
    });
    if (!ok) return;
    if (editor.selected === layer.id || dependents.some((d) => d.id === editor.selected)) editor.select(null);
    await this.command({ type: 'delete_layer', layer_id: layer.id });
  }

  cancelRender(layer) {
    if (!this.editor.live.sendFrame({ type: 'cancel', layer_id: layer.id })) toast('Not connected: try again in a moment.', { kind: 'error' });
  }

  undo() {
    if (!this.editor.canEdit || this.editor.scrub) return;
    this.command({ type: 'undo' });
  }

  redo() {
    if (!this.editor.canEdit || this.editor.scrub) return;
    this.command({ type: 'redo' });
  }
}
