// Small pieces every page uses: building elements, formatting times, the confirm dialog.

/**
 * An element: `h('a', {href: '#/', class: 'x'}, 'text', child)`. Properties starting with
 * `on` are listeners; `null`, `undefined` and `false` children are skipped. Text is always
 * set as text, never parsed as HTML.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on')) element.addEventListener(name.slice(2), value);
    else if (name === 'class') element.className = value;
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export const STATUSES = ['Pending', 'Running', 'Suspended', 'Completed', 'Failed', 'Terminated'];
const FINISHED = new Set(['Completed', 'Failed', 'Terminated']);

export function isFinished(status) {
  return FINISHED.has(status);
}

export function statusBadge(status) {
  return h('span', { class: `badge status-${status}` }, status);
}

/**
 * A time of the API (RFC 3339; the history's have nanoseconds, which Date does not read)
 * in milliseconds since the epoch; null for none.
 */
export function instant(text) {
  return text ? new Date(text.replace(/(\.\d{3})\d+/, '$1')).getTime() : null;
}

/** `2026-11-29 20:31:02.250`, local time, of a Date, milliseconds or an API time. */
export function dateTime(value) {
  const date = new Date(typeof value === 'string' ? instant(value) : value);
  if (Number.isNaN(date.getTime())) return String(value);
  const pad = (n, width = 2) => String(n).padStart(width, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.` +
    pad(date.getMilliseconds(), 3);
}

/** `20:31:02.250`, local time. */
export function timeOfDay(value) {
  return dateTime(value).slice(11);
}

/** A duration in milliseconds as people say it: `350 ms`, `1.0 s`, `2 min 5 s`, `1 h 2 min`. */
export function duration(ms) {
  if (!Number.isFinite(ms)) return '?';
  const abs = Math.abs(ms);
  if (abs < 1) return '< 1 ms';
  if (abs < 1000) return `${Math.round(ms)} ms`;
  if (abs < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (abs < 3_600_000) {
    const minutes = Math.floor(abs / 60_000);
    return `${minutes} min ${Math.round((abs % 60_000) / 1000)} s`;
  }
  const hours = Math.floor(abs / 3_600_000);
  return `${hours} h ${Math.round((abs % 3_600_000) / 60_000)} min`;
}

/** JSON as it is shown: indented. */
export function pretty(value) {
  return JSON.stringify(value, null, 2) ?? 'undefined';
}

/**
 * Asks for confirmation in a modal dialog. `body` is an element or text; `fields` are
 * inputs inside `body` whose values are returned. Resolves to those values, or null when
 * cancelled (button or Escape).
 */
export function confirmAction({ title, body, ok, danger = false }) {
  const dialog = document.getElementById('confirm-dialog');
  const form = document.getElementById('confirm-form');
  const okButton = document.getElementById('confirm-ok');
  fill(document.getElementById('confirm-title'), title);
  fill(document.getElementById('confirm-body'), body);
  okButton.textContent = ok;
  okButton.classList.toggle('danger', danger);
  return new Promise((resolve) => {
    const done = (confirmed) => {
      form.removeEventListener('submit', submit);
      cancelButton.removeEventListener('click', cancel);
      dialog.removeEventListener('cancel', cancel);
      if (dialog.open) dialog.close();
      resolve(confirmed ? new FormData(form) : null);
    };
    const submit = (event) => {
      event.preventDefault();
      done(true);
    };
    const cancel = (event) => {
      event.preventDefault();
      done(false);
    };
    const cancelButton = document.getElementById('confirm-cancel');
    form.addEventListener('submit', submit);
    cancelButton.addEventListener('click', cancel);
    dialog.addEventListener('cancel', cancel);
    dialog.showModal();
    (form.querySelector('#confirm-body input, #confirm-body textarea') ?? okButton).focus();
  });
}

/** A message in a live region, as `ok` or `error`. */
export function report(region, kind, ...text) {
  fill(region, h('p', { class: `result ${kind}` }, ...text));
}
