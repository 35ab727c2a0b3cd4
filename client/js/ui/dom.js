// A few DOM helpers: h() to build elements, icons, toasts, menus and modal dialogs.

/** h('div.card#main', {title: 'x', onclick: fn, dataset: {id}}, child, 'text', [more]) */
export function h(tag, props = null, ...children) {
  const [name, ...rest] = tag.split(/(?=[.#])/);
  const el = document.createElement(name || 'div');
  for (const part of rest) {
    if (part[0] === '.') el.classList.add(part.slice(1));
    else if (part[0] === '#') el.id = part.slice(1);
  }
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2).toLowerCase(), value);
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key === 'style' && typeof value === 'object') {
        for (const [name, v] of Object.entries(value)) {
          if (name.startsWith('--')) el.style.setProperty(name, v);
          else el.style[name] = v;
        }
      }
      else if (key === 'class') el.className += ` ${value}`;
      else if (key === 'html') el.innerHTML = value;
      else if (key === 'value') el.value = String(value);
      else if (key in el && typeof value !== 'string') el[key] = value;
      else if (value === true) el.setAttribute(key, '');
      else el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  if (el.tagName === 'INPUT' && el.type === 'range') paintRange(el);
  return el;
}

/** Colour a range input's track up to its value (CSS reads --fill). */
export function paintRange(el) {
  const min = Number(el.min || 0);
  const max = Number(el.max || 100);
  const fraction = max > min ? (Number(el.value) - min) / (max - min) : 0;
  el.style.setProperty('--fill', `${Math.max(0, Math.min(1, fraction)) * 100}%`);
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// Icons: 24×24 strokes (in the style of Lucide, ISC), drawn inline so nothing is fetched.
const PATHS = {
  eye: '<path d="M2 12s3.5-7 10-7 10 7 10 7-3.5 7-10 7S2 12 2 12z"/><circle cx="12" cy="12" r="3"/>',
  eyeOff: '<path d="M9.9 4.24A9 9 0 0 1 12 4c6.5 0 10 8 10 8a18 18 0 0 1-2.16 3.19"/><path d="M6.61 6.61A18 18 0 0 0 2 12s3.5 8 10 8a9.7 9.7 0 0 0 5.39-1.61"/><path d="M14.12 14.12a3 3 0 1 1-4.24-4.24"/><path d="m2 2 20 20"/>',
  trash: '<path d="M3 6h18"/><path d="M19 6v14a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V6"/><path d="M8 6V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2"/>',
  undo: '<path d="M9 14 4 9l5-5"/><path d="M4 9h10.5a5.5 5.5 0 0 1 0 11H11"/>',
  redo: '<path d="m15 14 5-5-5-5"/><path d="M20 9H9.5a5.5 5.5 0 0 0 0 11H13"/>',
  share: '<circle cx="18" cy="5" r="3"/><circle cx="6" cy="12" r="3"/><circle cx="18" cy="19" r="3"/><path d="m8.6 13.5 6.8 4M15.4 6.5l-6.8 4"/>',
  download: '<path d="M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4"/><path d="m7 10 5 5 5-5"/><path d="M12 15V3"/>',
  upload: '<path d="M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4"/><path d="m17 8-5-5-5 5"/><path d="M12 3v12"/>',
  brush: '<path d="m9.06 11.9 8.07-8.06a2.85 2.85 0 1 1 4.03 4.03l-8.06 8.08"/><path d="M7.07 14.94c-1.66 0-3 1.35-3 3.02 0 1.33-2.5 1.52-2 2.02 1.08 1.1 2.49 2.02 4 2.02 2.2 0 4-1.8 4-4.04a3.01 3.01 0 0 0-3-3.02z"/>',
  eraser: '<path d="m7 21-4.3-4.3a1 1 0 0 1 0-1.4l10-10a1 1 0 0 1 1.4 0l5.6 5.6a1 1 0 0 1 0 1.4L11 21"/><path d="M22 21H7"/><path d="m5 11 9 9"/>',
  hand: '<path d="M18 11V6a2 2 0 0 0-4 0v5"/><path d="M14 10V4a2 2 0 0 0-4 0v6"/><path d="M10 10.5V6a2 2 0 0 0-4 0v8"/><path d="M18 8a2 2 0 1 1 4 0v6a8 8 0 0 1-8 8h-2c-2.8 0-4.5-.86-5.99-2.34l-3.6-3.6a2 2 0 0 1 2.83-2.82L7 15"/>',
  plus: '<path d="M12 5v14M5 12h14"/>',
  minus: '<path d="M5 12h14"/>',
  x: '<path d="M18 6 6 18M6 6l12 12"/>',
  retry: '<path d="M3 12a9 9 0 0 1 15-6.7L21 8"/><path d="M21 3v5h-5"/><path d="M21 12a9 9 0 0 1-15 6.7L3 16"/><path d="M8 16H3v5"/>',
  stop: '<rect x="6" y="6" width="12" height="12" rx="2"/>',
  history: '<path d="M3 12a9 9 0 1 0 9-9 9.75 9.75 0 0 0-6.74 2.74L3 8"/><path d="M3 3v5h5"/><path d="M12 7v5l4 2"/>',
  fork: '<circle cx="6" cy="6" r="3"/><circle cx="6" cy="18" r="3"/><circle cx="18" cy="6" r="3"/><path d="M18 9v1a2 2 0 0 1-2 2H8a2 2 0 0 1-2-2V9"/><path d="M6 9v6"/>',
  restore: '<path d="M3 12a9 9 0 1 0 3-6.7L3 8"/><path d="M3 3v5h5"/>',
  dice: '<rect x="3" y="3" width="18" height="18" rx="3"/><circle cx="8.5" cy="8.5" r="1.2" fill="currentColor"/><circle cx="15.5" cy="15.5" r="1.2" fill="currentColor"/><circle cx="15.5" cy="8.5" r="1.2" fill="currentColor"/><circle cx="8.5" cy="15.5" r="1.2" fill="currentColor"/><circle cx="12" cy="12" r="1.2" fill="currentColor"/>',
  layers: '<path d="m12 2 10 5-10 5L2 7z"/><path d="m2 17 10 5 10-5"/><path d="m2 12 10 5 10-5"/>',
  sparkles: '<path d="M11 3l1.9 5.1L18 10l-5.1 1.9L11 17l-1.9-5.1L4 10l5.1-1.9z"/><path d="M19 14l.8 2.2L22 17l-2.2.8L19 20l-.8-2.2L16 17l2.2-.8z"/>',
  image: '<rect x="3" y="3" width="18" height="18" rx="2"/><circle cx="9" cy="9" r="2"/><path d="m21 15-3.1-3.1a2 2 0 0 0-2.8 0L6 21"/>',
  chevronDown: '<path d="m6 9 6 6 6-6"/>',
  chevronLeft: '<path d="m15 18-6-6 6-6"/>',
  fit: '<path d="M8 3H5a2 2 0 0 0-2 2v3M21 8V5a2 2 0 0 0-2-2h-3M3 16v3a2 2 0 0 0 2 2h3M16 21h3a2 2 0 0 0 2-2v-3"/>',
  grip: '<circle cx="9" cy="6" r="1" fill="currentColor"/><circle cx="15" cy="6" r="1" fill="currentColor"/><circle cx="9" cy="12" r="1" fill="currentColor"/><circle cx="15" cy="12" r="1" fill="currentColor"/><circle cx="9" cy="18" r="1" fill="currentColor"/><circle cx="15" cy="18" r="1" fill="currentColor"/>',
  link: '<path d="M10 13a5 5 0 0 0 7.54.54l3-3a5 5 0 0 0-7.07-7.07l-1.72 1.71"/><path d="M14 11a5 5 0 0 0-7.54-.54l-3 3a5 5 0 0 0 7.07 7.07l1.71-1.71"/>',
  copy: '<rect x="9" y="9" width="13" height="13" rx="2"/><path d="M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1"/>',
  file: '<path d="M14.5 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V7.5z"/><path d="M14 2v6h6"/>',
  lock: '<rect x="3" y="11" width="18" height="11" rx="2"/><path d="M7 11V7a5 5 0 0 1 10 0v4"/>',
  wand: '<path d="m15 4-1 1M19 8l1-1M14 9l-9 9 1 1 9-9M17 2v2M22 7h-2M21 3l-1 1"/>',
  edit: '<path d="M12 20h9"/><path d="M16.5 3.5a2.12 2.12 0 0 1 3 3L7 19l-4 1 1-4z"/>',
  dots: '<circle cx="12" cy="12" r="1" fill="currentColor"/><circle cx="19" cy="12" r="1" fill="currentColor"/><circle cx="5" cy="12" r="1" fill="currentColor"/>',
  check: '<path d="M20 6 9 17l-5-5"/>',
  alert: '<circle cx="12" cy="12" r="10"/><path d="M12 8v4M12 16h.01"/>',
  cursor: '<path d="m4 4 7 17 2.5-7.5L21 11z"/>',
  mask: '<rect x="3" y="3" width="18" height="18" rx="2"/><circle cx="12" cy="12" r="5" fill="currentColor" fill-opacity=".35"/>',
  move: '<path d="M5 9l-3 3 3 3M9 5l3-3 3 3M15 19l-3 3-3-3M19 9l3 3-3 3M2 12h20M12 2v20"/>',
};

export function icon(name, { size = 16, cls = '' } = {}) {
  const span = document.createElement('span');
  span.className = `icon ${cls}`.trim();
  span.setAttribute('aria-hidden', 'true');
  span.innerHTML = `<svg width="${size}" height="${size}" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round">${PATHS[name] || ''}</svg>`;
  return span;
}

export function iconButton(name, label, onclick, { cls = '', testid = null, disabled = false } = {}) {
  return h(`button.icon-btn${cls ? `.${cls.split(' ').join('.')}` : ''}`, { type: 'button', title: label, 'aria-label': label, onclick, disabled, dataset: testid ? { testid } : undefined }, icon(name));
}

// --- toasts ---------------------------------------------------------------------------------------

let toastHost = null;

export function toast(message, { kind = 'info', timeout = 4200, action = null } = {}) {
  if (!toastHost) {
    toastHost = h('div.toasts', { role: 'status', 'aria-live': 'polite' });
    document.body.append(toastHost);
  }
  const el = h(
    `div.toast.toast-${kind}`,
    null,
    icon(kind === 'error' ? 'alert' : kind === 'success' ? 'check' : 'sparkles'),
    h('span.toast-text', null, message),
    action ? h('button.toast-action', { type: 'button', onclick: () => { action.run(); dismiss(); } }, action.label) : null,
  );
  const dismiss = () => {
    el.classList.add('leaving');
    setTimeout(() => el.remove(), 180);
  };
  toastHost.append(el);
  if (timeout) setTimeout(dismiss, timeout);
  return dismiss;
}

// --- modal dialogs --------------------------------------------------------------------------------

/** Show a modal; `build(close)` returns its body. Resolves with what close() was given. */
export function modal({ title, build, wide = false, testid = 'dialog' }) {
  return new Promise((resolve) => {
    const previous = document.activeElement;
    const backdrop = h('div.modal-backdrop');
    const close = (value) => {
      document.removeEventListener('keydown', onKey, true);
      backdrop.remove();
      if (previous && previous.focus) previous.focus();
      resolve(value);
    };
    const onKey = (event) => {
      if (event.key === 'Escape') {
        event.stopPropagation();
        close(undefined);
      }
    };
    const dialog = h(
      `div.modal${wide ? '.modal-wide' : ''}`,
      { role: 'dialog', 'aria-modal': 'true', 'aria-label': title, dataset: { testid } },
      h('header.modal-head', null, h('h2', null, title), iconButton('x', 'Close', () => close(undefined))),
      build(close),
    );
    backdrop.append(dialog);
    backdrop.addEventListener('mousedown', (event) => {
      if (event.target === backdrop) close(undefined);
    });
    document.addEventListener('keydown', onKey, true);
    document.body.append(backdrop);
    const focusable = dialog.querySelector('[autofocus], .modal-body input, .modal-foot .btn-primary, .modal-foot .btn-danger');
    (focusable || dialog).focus?.();
  });
}

export function confirmDialog({ title, message, details = null, confirm = 'Confirm', danger = false, testid = 'confirm' }) {
  return modal({
    title,
    testid,
    build: (close) =>
      h(
        'div',
        null,
        h('div.modal-body', null, h('p', null, message), details),
        h(
          'footer.modal-foot',
          null,
          h('button.btn', { type: 'button', onclick: () => close(false) }, 'Cancel'),
          h(`button.btn.${danger ? 'btn-danger' : 'btn-primary'}`, { type: 'button', onclick: () => close(true), dataset: { testid: 'confirm-ok' } }, confirm),
        ),
      ),
  }).then((value) => value === true);
}

export function promptDialog({ title, label, value = '', confirm = 'OK', testid = 'prompt' }) {
  return modal({
    title,
    testid,
    build: (close) => {
      const input = h('input.input', { type: 'text', value, autofocus: true, 'aria-label': label });
      const submit = (event) => {
        event.preventDefault();
        close(input.value.trim() || null);
      };
      setTimeout(() => input.select(), 0);
      return h(
        'form',
        { onsubmit: submit },
        h('div.modal-body', null, h('label.field-label', null, label), input),
        h('footer.modal-foot', null, h('button.btn', { type: 'button', onclick: () => close(null) }, 'Cancel'), h('button.btn.btn-primary', { type: 'submit' }, confirm)),
      );
    },
  });
}

// --- popover menus --------------------------------------------------------------------------------

/** A menu anchored under `anchor`; items: [{label, icon, run, disabled, hint}] or 'separator'. */
export function openMenu(anchor, items, { align = 'left', testid = 'menu' } = {}) {
  closeMenus();
  const menu = h('div.menu', { role: 'menu', dataset: { testid } });
  for (const item of items) {
    if (item === 'separator') {
      menu.append(h('div.menu-sep'));
      continue;
    }
    menu.append(
      h(
        'button.menu-item',
        {
          type: 'button',
          role: 'menuitem',
          disabled: item.disabled,
          title: item.title,
          dataset: item.testid ? { testid: item.testid } : undefined,
          onclick: () => {
            closeMenus();
            item.run();
          },
        },
        item.icon ? icon(item.icon) : null,
        h('span.menu-label', null, item.label, item.hint ? h('small', null, item.hint) : null),
      ),
    );
  }
  document.body.append(menu);
  const rect = anchor.getBoundingClientRect();
  const width = menu.offsetWidth;
  menu.style.top = `${rect.bottom + 6}px`;
  menu.style.left = `${Math.max(8, align === 'right' ? rect.right - width : rect.left)}px`;
  setTimeout(() => document.addEventListener('mousedown', outside, true), 0);
  function outside(event) {
    if (!menu.contains(event.target)) closeMenus();
  }
  menu._cleanup = () => document.removeEventListener('mousedown', outside, true);
  return menu;
}

export function closeMenus() {
  for (const menu of document.querySelectorAll('.menu')) {
    menu._cleanup?.();
    menu.remove();
  }
}

export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: filename, style: { display: 'none' } });
  document.body.append(a);
  a.click();
  setTimeout(() => {
    URL.revokeObjectURL(url);
    a.remove();
  }, 1000);
}

export function pickFile(accept) {
  return new Promise((resolve) => {
    const input = h('input', { type: 'file', accept, style: { display: 'none' } });
    input.addEventListener('change', () => {
      resolve(input.files[0] || null);
      input.remove();
    });
    document.body.append(input);
    input.click();
  });
}

export function slug(text) {
  return String(text || 'canvas').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60) || 'canvas';
}

/** Replace an element's children (null / false / arrays handled as in h()). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}
