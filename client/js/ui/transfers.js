// Files in and out of the editor: uploading images as layers (picked or dropped; a file the server would
// refuse, by its type or size, is refused before it is sent), downloading a layer's PNG,
// the export menu (workflow JSON, PNG with the workflow inside, fork), and importing a workflow as a new canvas.

import { toast, openMenu, saveBlob, pickFile, slug } from './dom.js';
import { newId } from '../commands.js';
import { saveToken, editorUrl } from '../identity.js';
import { rememberImportWarnings } from './import-warnings.js';
import { uploadProblem, UPLOAD_TYPES } from '../limits.js';

// long enough to read a sentence that names a file, its size or type and the limit
const REFUSAL_TIMEOUT = 9000;

export class Transfers {
  constructor(editor) {
    this.editor = editor;
  }

  async pickUpload() {
    const file = await pickFile((this.editor.limits?.upload?.media_types || UPLOAD_TYPES).join(','));
    if (file) this.uploadFiles([file]);
  }

  async uploadFiles(files) {
    const editor = this.editor;
    if (editor.readOnly) {
      toast('This canvas is read-only here.', { kind: 'error' });
      return;
    }
    for (const file of files) {
      // refused here, before a byte is sent: a 50 MB file would upload for a minute only to be refused
      const problem = uploadProblem(file, editor.limits);
      if (problem) {
        toast(problem, { kind: 'error', timeout: REFUSAL_TIMEOUT });
        continue;
      }
      const dismiss = toast(`Uploading ${file.name}…`, { timeout: 0 });
      try {
        const blob = await editor.api.uploadBlob(file);
        const layerId = newId('L').slice(0, 17);
        const name = (file.name || 'Upload').replace(/\.[a-z0-9]+$/i, '').slice(0, 200) || 'Upload';
        const ack = await editor.command({ type: 'add_layer', layer_id: layerId, operation: 'upload', params: { blob: blob.sha256 }, name });
        if (ack) editor.select(layerId);
      } catch (error) {
        toast(`Upload failed: ${error.message}`, { kind: 'error' });
      } finally {
        dismiss();
      }
    }
  }

  async downloadLayer(layer) {
    const editor = this.editor;
    try {
      const blob = await editor.api.download(editor.api.layerPngPath(editor.canvasId, layer.id));
      saveBlob(blob, `${slug(editor.session.state.name)}-${slug(layer.name)}.png`);
    } catch (error) {
      toast(`Download failed: ${error.message}`, { kind: 'error' });
    }
  }

  exportMenu(anchor) {
    const editor = this.editor;
    const version = editor.scrub?.version ?? null;
    const at = version ? ` (v${version})` : '';
    openMenu(anchor, [
      { label: `Workflow${at}`, hint: 'JSON: replay it anywhere', icon: 'file', testid: 'export-json', run: () => this.exportWorkflow(version) },
      { label: `Image with workflow${at}`, hint: 'PNG of the canvas; the workflow rides inside', icon: 'image', testid: 'export-png', run: () => this.exportPng(version) },
      'separator',
      { label: `Fork${at}`, hint: 'A copy of the canvas that you own', icon: 'fork', testid: 'export-fork', run: () => editor.timeTravel.fork(version ?? editor.session.version) },
      { label: 'Selected layer as PNG', icon: 'download', testid: 'export-layer', disabled: !editor.selected || !editor.displayState.layers[editor.selected]?.output || !!editor.scrub, run: () => this.downloadLayer(editor.displayState.layers[editor.selected]) },
    ], { align: 'right', testid: 'export-menu' });
  }

  async exportWorkflow(version = null) {
    const editor = this.editor;
    try {
      const workflow = await editor.api.workflow(editor.canvasId, version);
      const blob = new Blob([JSON.stringify(workflow, null, 2)], { type: 'application/json' });
      saveBlob(blob, `${slug(editor.session.state.name)}${version ? `-v${version}` : ''}.opendream.json`);
    } catch (error) {
      toast(`Export failed: ${error.message}`, { kind: 'error' });
    }
  }

  async exportPng(version = null) {
    const editor = this.editor;
    try {
      const blob = await editor.api.download(editor.api.compositePngPath(editor.canvasId, version ?? editor.session.version));
      saveBlob(blob, `${slug(editor.session.state.name)}-v${version ?? editor.session.version}.png`);
    } catch (error) {
      toast(`Export failed: ${error.message}`, { kind: 'error' });
    }
  }

  async importWorkflow() {
    const editor = this.editor;
    const file = await pickFile('.json,.png,application/json,image/png');
    if (!file) return;
    try {
      const created = await editor.api.importWorkflow(file);
      if (created.owner_token) saveToken(editor.storage, created.id, created.owner_token, { role: 'owner' });
      rememberImportWarnings(created.id, created.warnings);
      toast(created.name ? `Imported as a new canvas, “${created.name}”` : 'Workflow imported as a new canvas', { kind: 'success' });
      location.href = editorUrl(created.id);
    } catch (error) {
      toast(`Import failed: ${error.message}`, { kind: 'error' });
    }
  }
}
