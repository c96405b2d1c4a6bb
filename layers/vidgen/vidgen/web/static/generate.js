// The Create form: built from the chosen model's catalog entry, priced live, submitted once per intent.

import { newIdempotencyKey } from './api.js';
import { allowedValues, appliesIn, inferMode, priceFor, priceRange, TOP_LEVEL } from './catalog.js';
import { $, h, humanize, replace, showError } from './dom.js';

// The API takes a 5 MB request body (what reaches its function stays under Lambda's 6 MB payload), and an
// image goes inside it as a base64 data: URI, 4 characters per 3 bytes: 3.75 MB of image at most.
const MAX_BODY_BYTES = 5 * 1024 * 1024;
const MAX_IMAGE_BYTES = (MAX_BODY_BYTES / 4) * 3;
const megabytes = (bytes) => `${+(bytes / 1048576).toFixed(2)} MB`;
const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp'];
const MODE_NAMES = { t2v: 'text-to-video', i2v: 'image-to-video', flf2v: 'first-and-last-frame video',
  ref2v: 'reference-image video', t2i: 'text-to-image', i2i: 'image-to-image' };

export class GenerateForm {
  constructor(app) {
    this.app = app;
    this.form = $('#generate-form');
    this.select = $('#model');
    this.images = { image: null, end_image: null, reference_images: [] };
    this.idempotencyKey = null; // one per intent: kept across retries of the same form, new after any change
    this.busy = false;
    this.select.addEventListener('change', () => this.chooseModel(this.select.value));
    this.form.addEventListener('input', () => this.changed());
    this.form.addEventListener('change', () => this.changed());
    this.form.addEventListener('submit', (event) => { event.preventDefault(); this.submit(); });
    $('#prompt').addEventListener('input', () => this.countPrompt());
  }

  setModels(models) {
    this.models = models;
    const groups = { video: h('optgroup', { label: 'Video' }), image: h('optgroup', { label: 'Image' }) };
    for (const model of models) {
      (groups[model.kind] || groups.video).append(h('option', { value: model.id,
        text: `${model.name} — ${model.kind} · ${priceRange(model)}` }));
    }
    replace(this.select, ...Object.values(groups).filter((g) => g.childElementCount));
    const preferred = models.find((m) => m.id === this.select.dataset.last) || models[0];
    if (preferred) this.chooseModel(preferred.id);
  }

  get model() {
    return this.models.find((m) => m.id === this.select.value);
  }

  chooseModel(id) {
    this.select.value = id;
    this.select.dataset.last = id;
    this.images = { image: null, end_image: null, reference_images: [] };
    const model = this.model;
    const modes = model.modes.map((m) => model.mode_names[m] || MODE_NAMES[m]).join(', ');
    $('#model-info').textContent = `${model.kind === 'image' ? 'Image' : 'Video'} model by ${model.provider} · ${modes}`
      + (model.notes ? ` · ${model.notes}` : '');
    $('#negative-field').hidden = !model.negative_prompt;
    $('#prompt').maxLength = (model.prompt && model.prompt.max_chars) || 2500;
    this.renderImages();
    this.renderParameters();
    this.countPrompt();
    this.changed();
  }

  mode() {
    return inferMode(this.model, this.images);
  }

  // -- images -------------------------------------------------------------------------------------------
  renderImages() {
    const model = this.model;
    const pickers = [];
    if (model.modes.some((m) => ['i2v', 'flf2v', 'i2i'].includes(m))) {
      pickers.push(this.picker('image', model.kind === 'image' ? 'Source image' : 'Start image'));
    }
    if (model.modes.includes('flf2v')) pickers.push(this.picker('end_image', 'End image'));
    if (model.modes.includes('ref2v')) {
      const limits = model.reference_images || { min: 1, max: 3 };
      pickers.push(this.picker('reference_images', `Reference images (up to ${limits.max})`, true));
    }
    replace($('#image-pickers'), ...pickers);
    $('#images').hidden = pickers.length === 0;
    const hints = [];
    if (!model.modes.includes('t2v') && model.kind === 'video') hints.push('This model needs a start image.');
    if (model.modes.includes('flf2v')) hints.push('An end image needs a start image.');
    if (model.modes.includes('ref2v')) hints.push('Reference images replace start and end images.');
    hints.push(`PNG, JPEG or WebP, up to ${megabytes(MAX_IMAGE_BYTES)} each.`);
    $('#images-hint').textContent = hints.join(' ');
    this.syncPickers();
  }

  picker(name, label, multiple = false) {
    const id = `file-${name}`;
    const input = h('input', { id, type: 'file', accept: IMAGE_TYPES.join(','), multiple, 'data-image': name });
    const preview = h('div', { class: 'previews' });
    const clear = h('button', { type: 'button', class: 'ghost', text: 'Remove', hidden: true,
      'aria-label': `Remove ${label.toLowerCase()}` });
    input.addEventListener('change', () => this.readImages(name, input, preview, clear));
    clear.addEventListener('click', () => {
      input.value = '';
      this.images[name] = multiple ? [] : null;
      replace(preview);
      clear.hidden = true;
      this.syncPickers();
      this.changed();
    });
    return h('div', { class: 'picker', 'data-picker': name }, h('label', { for: id, text: label }), input, preview, clear);
  }

  async readImages(name, input, preview, clear) {
    const files = Array.from(input.files);
    const limit = name === 'reference_images' ? ((this.model.reference_images || {}).max || 3) : 1;
    let problem = null;
    if (files.length > limit) problem = `Choose at most ${limit} images here.`;
    for (const file of files) {
      if (!IMAGE_TYPES.includes(file.type)) problem = `${file.name} is not a PNG, JPEG or WebP image.`;
      else if (file.size > MAX_IMAGE_BYTES) problem = `${file.name} is ${(file.size / 1048576).toFixed(1)} MB; the limit is ${megabytes(MAX_IMAGE_BYTES)}.`;
    }
    if (problem) {
      input.value = '';
      showError($('#generate-error'), { message: problem, field: name });
      return;
    }
    const uris = await Promise.all(files.map(readAsDataUri));
    this.images[name] = name === 'reference_images' ? uris : uris[0] || null;
    replace(preview, ...uris.map((uri, i) => h('img', { src: uri, alt: `Preview of ${files[i].name}` })));
    clear.hidden = uris.length === 0;
    showError($('#generate-error'), null);
    this.syncPickers();
    this.changed();
  }

  // The API's rules, shown before the click: no end image without a start one, references on their own.
  syncPickers() {
    const start = $('#file-image');
    const end = $('#file-end_image');
    const refs = $('#file-reference_images');
    const hasRefs = this.images.reference_images.length > 0;
    if (start) start.disabled = hasRefs;
    if (end) end.disabled = hasRefs || !this.images.image;
    if (refs) refs.disabled = Boolean(this.images.image || this.images.end_image);
  }

  // -- parameters ---------------------------------------------------------------------------------------
  renderParameters() {
    const model = this.model;
    const mode = this.mode();
    const previous = this.paramValues ? this.paramValues() : {};
    const fields = [];
    for (const [name, rule] of Object.entries(model.parameters)) {
      if (!appliesIn(rule, mode)) continue;
      fields.push(this.parameterField(model, mode, name, rule, previous[name]));
    }
    replace($('#param-grid'), ...fields);
    $('#params').hidden = fields.length === 0;
    this.renderedMode = mode;
  }

  parameterField(model, mode, name, rule, previous) {
    const id = `param-${name}`;
    const label = h('label', { for: id, text: humanize(name) });
    const desc = rule.description ? h('p', { class: 'desc', id: `${id}-desc`, text: rule.description }) : null;
    const described = desc ? `${id}-desc` : null;
    let control;
    if (rule.type === 'boolean') {
      control = h('input', { id, type: 'checkbox', 'data-param': name, 'data-type': 'boolean',
        checked: previous ?? rule.default ?? false, 'aria-describedby': described });
      return h('div', { class: 'param' }, h('div', { class: 'param check' }, control, label), desc);
    }
    if (rule.values) {
      const values = allowedValues(model, mode, name, rule);
      const chosen = values.includes(previous) ? previous : values.includes(rule.default) ? rule.default : values[0];
      control = h('select', { id, 'data-param': name, 'data-type': rule.type, 'aria-describedby': described },
        values.map((v) => h('option', { value: String(v), text: String(v), selected: v === chosen })));
    } else if (rule.type === 'integer' || rule.type === 'number') {
      control = h('input', { id, type: 'number', inputmode: rule.type === 'integer' ? 'numeric' : 'decimal',
        min: rule.minimum, max: rule.maximum, step: rule.type === 'integer' ? 1 : 'any', 'data-param': name,
        'data-type': rule.type, value: previous ?? (rule.default ?? ''), placeholder: rule.default === undefined ? 'optional' : null,
        'aria-describedby': described });
    } else if (rule.type === 'shots') {
      // A list of {"prompt", "duration"} shots, written as JSON; the API checks it and names what is wrong.
      control = h('textarea', { id, rows: 3, 'data-param': name, 'data-type': 'json', 'aria-describedby': described,
        placeholder: '[{"prompt": "...", "duration": 5}, ...] (optional)' });
      control.value = previous === undefined ? '' : JSON.stringify(previous);
    } else {
      control = h('input', { id, type: 'text', 'data-param': name, 'data-type': 'string', value: previous ?? rule.default ?? '',
        placeholder: 'optional', 'aria-describedby': described });
    }
    return h('div', { class: 'param' }, label, control, desc);
  }

  paramValues() {
    const values = {};
    for (const el of this.form.querySelectorAll('[data-param]')) {
      const name = el.dataset.param;
      if (el.dataset.type === 'boolean') values[name] = el.checked;
      else if (el.value === '') continue;
      else if (el.dataset.type === 'integer') values[name] = Number.parseInt(el.value, 10);
      else if (el.dataset.type === 'number') values[name] = Number(el.value);
      else if (el.dataset.type === 'json') values[name] = parseJson(el.value);
      else values[name] = el.value;
    }
    return values;
  }

  // -- price and submit ---------------------------------------------------------------------------------
  changed() {
    this.idempotencyKey = null;
    if (!this.models) return;
    if (this.mode() !== this.renderedMode) this.renderParameters();
    const mode = this.mode();
    const model = this.model;
    const defaults = Object.fromEntries(Object.entries(model.parameters)
      .filter(([, rule]) => appliesIn(rule, mode) && 'default' in rule).map(([n, rule]) => [n, rule.default]));
    const price = priceFor(model, mode, { ...defaults, ...this.paramValues() });
    $('#price').textContent = price === null ? '–' : String(price);
    $('#mode-name').textContent = model.mode_names[mode] || MODE_NAMES[mode];
    for (const el of this.form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  }

  countPrompt() {
    const prompt = $('#prompt');
    $('#prompt-count').textContent = `${prompt.value.length} / ${prompt.maxLength}`;
  }

  request() {
    const body = { model: this.model.id, prompt: $('#prompt').value };
    const negative = $('#negative-prompt').value.trim();
    if (this.model.negative_prompt && negative) body.negative_prompt = negative;
    if (this.images.image) body.image = this.images.image;
    if (this.images.end_image) body.end_image = this.images.end_image;
    if (this.images.reference_images.length) body.reference_images = this.images.reference_images;
    const options = {};
    for (const [name, value] of Object.entries(this.paramValues())) {
      if (TOP_LEVEL.includes(name)) body[name] = value;
      else options[name] = value;
    }
    if (Object.keys(options).length) body.options = options;
    return body;
  }

  async submit() {
    if (this.busy) return; // a second click while the first is in flight
    const error = $('#generate-error');
    const body = this.request();
    if (new Blob([JSON.stringify(body)]).size > MAX_BODY_BYTES) {
      showError(error, { message: `The images are too large together: a request may carry ${megabytes(MAX_BODY_BYTES)} at most. Use smaller images.` });
      return;
    }
    this.idempotencyKey = this.idempotencyKey || newIdempotencyKey();
    const button = $('#generate');
    this.busy = true;
    button.disabled = true;
    button.textContent = 'Submitting…';
    try {
      const job = await this.app.api.post('/v1/jobs', body, { 'Idempotency-Key': this.idempotencyKey });
      showError(error, null);
      this.app.jobStarted(job);
      this.idempotencyKey = null;
    } catch (exc) {
      if (exc.status === 401) return this.app.signOut('Your API key is no longer accepted.');
      showError(error, exc);
      this.markField(exc.field);
    } finally {
      this.busy = false;
      button.disabled = false;
      button.textContent = 'Generate';
    }
  }

  markField(field) {
    if (!field) return;
    const name = field.replace(/^options\./, '').replace(/^body\./, '').split('.')[0];
    const el = { prompt: $('#prompt'), model: this.select, negative_prompt: $('#negative-prompt') }[name]
      || this.form.querySelector(`[data-param="${CSS.escape(name)}"]`) || this.form.querySelector(`[data-image="${CSS.escape(name)}"]`);
    if (el) {
      el.setAttribute('aria-invalid', 'true');
      el.focus();
    }
  }
}

function readAsDataUri(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}


function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text; // sent as written: the API answers with what it expected
  }
}
