// The viewport's pictures, by sha256: each loaded once (the viewport redraws when one arrives), and a mask
// layer's picture (white = selected) as a tinted, see-through overlay in the mask colour.

import { blobUrl } from '../api.js';

export const MASK_TINT = [255, 64, 129];

export class ImageCache {
  constructor(onLoad) {
    this.onLoad = onLoad;
    this.images = new Map();
  }

  get(sha) {
    let entry = this.images.get(sha);
    if (!entry) {
      const img = new Image();
      entry = { img, loaded: false, tinted: null };
      img.decoding = 'async';
      img.onload = () => {
        entry.loaded = true;
        this.onLoad();
      };
      img.onerror = () => {
        entry.failed = true;
      };
      img.src = blobUrl(sha);
      this.images.set(sha, entry);
    }
    return entry;
  }

  /** A mask (white = selected) as a tinted, see-through overlay. */
  tinted(sha) {
    const entry = this.get(sha);
    if (!entry.loaded) return null;
    if (!entry.tinted) {
      const { naturalWidth: w, naturalHeight: h } = entry.img;
      const canvas = document.createElement('canvas');
      canvas.width = w;
      canvas.height = h;
      const ctx = canvas.getContext('2d', { willReadFrequently: true });
      ctx.drawImage(entry.img, 0, 0);
      const data = ctx.getImageData(0, 0, w, h);
      const px = data.data;
      for (let i = 0; i < px.length; i += 4) {
        const luminance = (px[i] * 299 + px[i + 1] * 587 + px[i + 2] * 114) / 1000;
        px[i + 3] = Math.round((luminance * px[i + 3]) / 255);
        px[i] = MASK_TINT[0];
        px[i + 1] = MASK_TINT[1];
        px[i + 2] = MASK_TINT[2];
      }
      ctx.putImageData(data, 0, 0);
      entry.tinted = canvas;
    }
    return entry.tinted;
  }
}
