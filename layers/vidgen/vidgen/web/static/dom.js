// Building DOM nodes without HTML strings: every text goes in through text nodes, so whatever a prompt or an
// API message contains (`<script>` included) is shown as text, never parsed.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key in PROPERTIES) el[key] = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

// Set as properties, not attributes (a `value` attribute is only the default; `checked` likewise).
const PROPERTIES = { value: 1, checked: 1, selected: 1, disabled: 1, multiple: 1, hidden: 1 };

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

export const $ = (selector, root = document) => root.querySelector(selector);

export function showError(el, error) {
  if (!error) {
    el.hidden = true;
    el.replaceChildren();
    return;
  }
  const parts = [error.message || String(error)];
  if (error.field) parts.push(' ', h('span', { class: 'field-name', text: `(field: ${error.field})` }));
  replace(el, ...parts);
  el.hidden = false;
}

let toastTimer = 0;
export function toast(message) {
  const el = $('#toast');
  el.textContent = message;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, 3500);
}

export function formatTime(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  return date.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function humanize(name) {
  const text = name.replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}
