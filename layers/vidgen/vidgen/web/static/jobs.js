// A job on the page: its card (media, status, actions) and a watcher that polls it with backoff until it ends.

import { h, formatTime, toast } from './dom.js';

const ACTIVE = ['queued', 'running'];
const KIND_NAMES = { t2v: 'Text to video', i2v: 'Image to video', flf2v: 'First & last frame', ref2v: 'Reference video',
  t2i: 'Text to image', i2i: 'Image to image' };
const FIRST_DELAY = 1000;
const MAX_DELAY = 8000;

export const isActive = (job) => ACTIVE.includes(job.status);

export class Jobs {
  constructor(app) {
    this.app = app;
    this.cards = new Map(); // job id -> Set of card elements showing it
    this.timers = new Map(); // job id -> pending poll
    this.latest = new Map(); // job id -> last job seen
  }

  stopAll() {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.cards.clear();
    this.latest.clear();
  }

  // A card that stays current: re-rendered in place whenever a newer state of its job arrives.
  card(job, { onOpen } = {}) {
    const el = h('article', { class: 'job', 'data-job-id': job.id, 'aria-label': `Job ${job.id}` });
    el.onOpen = onOpen;
    this.render(el, job);
    if (!this.cards.has(job.id)) this.cards.set(job.id, new Set());
    this.cards.get(job.id).add(el);
    this.seen(job);
    return el;
  }

  seen(job, nextDelay = FIRST_DELAY) {
    const before = this.latest.get(job.id);
    this.latest.set(job.id, job);
    if (before && before.status !== job.status) {
      for (const el of this.cards.get(job.id) || []) {
        if (el.isConnected) this.render(el, job);
        else this.cards.get(job.id).delete(el);
      }
      if (!isActive(job)) this.app.jobEnded(job);
    }
    if (isActive(job)) this.watch(job.id, nextDelay);
  }

  watch(id, delay = FIRST_DELAY) {
    if (this.timers.has(id)) return;
    this.timers.set(id, setTimeout(() => this.poll(id, delay), delay));
  }

  async poll(id, delay) {
    this.timers.delete(id);
    let job;
    try {
      job = await this.app.api.get(`/v1/jobs/${encodeURIComponent(id)}`);
    } catch (error) {
      if (error.status === 401) return this.app.signOut('Your API key is no longer accepted.');
      return this.watch(id, Math.min(delay * 2, MAX_DELAY)); // the API will answer again; keep watching
    }
    this.seen(job, Math.min(Math.round(delay * 1.5), MAX_DELAY));
  }

  async cancel(job, button) {
    button.disabled = true;
    try {
      const canceled = await this.app.api.post(`/v1/jobs/${encodeURIComponent(job.id)}/cancel`);
      this.seen(canceled);
      toast(`Canceled; ${canceled.credits} credits refunded.`);
    } catch (error) {
      button.disabled = false;
      toast(error.message);
      if (error.status === 409) { // it ended meanwhile: show how
        clearTimeout(this.timers.get(job.id));
        this.poll(job.id, FIRST_DELAY);
      }
    }
  }

  render(el, job) {
    const model = this.app.modelName(job.model);
    const actions = h('div', { class: 'job-actions' });
    const output = job.outputs && job.outputs[0];
    if (output) {
      // Cross-origin, `download` is only a hint: a new tab keeps this page (and its watchers) alive.
      actions.append(h('a', { href: output.url, download: '', target: '_blank', rel: 'noopener', text: 'Download',
        'aria-label': `Download the result of job ${job.id}` }));
    }
    if (isActive(job)) {
      const cancel = h('button', { type: 'button', class: 'danger', text: 'Cancel', 'data-action': 'cancel' });
      cancel.addEventListener('click', () => this.cancel(job, cancel));
      actions.append(cancel);
    }
    if (el.onOpen) {
      actions.append(h('button', { type: 'button', class: 'open', text: 'Details',
        'aria-label': `Details of job ${job.id}`, onclick: () => el.onOpen(job) }));
    }
    el.dataset.status = job.status;
    el.replaceChildren(
      media(job),
      h('div', { class: 'job-body' },
        h('div', { class: 'job-top' },
          h('span', { class: 'job-model', text: model }),
          h('span', { class: `badge ${job.status}`, text: job.status, 'data-role': 'status' })),
        job.prompt ? h('p', { class: 'job-prompt', text: job.prompt }) : null,
        job.error && job.status !== 'canceled' ? h('p', { class: 'job-error', text: job.error.message }) : null,
        h('div', { class: 'job-meta' },
          h('span', { text: KIND_NAMES[job.kind] || job.kind }),
          h('span', { text: `${job.credits} credits${job.refunded ? ' · refunded' : ''}` }),
          h('time', { datetime: job.created_at, text: formatTime(job.created_at) })),
        actions.childElementCount ? actions : null),
    );
  }
}

export function media(job) {
  const output = job.outputs && job.outputs[0];
  const box = h('div', { class: 'job-media' });
  if (job.status === 'succeeded' && output) {
    if (output.content_type.startsWith('video/')) {
      box.append(h('video', { src: output.url, poster: output.poster_url, controls: true, preload: 'metadata', playsinline: true,
        'aria-label': `Video: ${job.prompt || job.model}` }));
    } else {
      box.append(h('img', { src: output.url, alt: `Image: ${job.prompt || job.model}`, loading: 'lazy' }));
    }
  } else if (isActive(job)) {
    box.append(h('div', { class: 'placeholder' }, h('div', { class: 'spinner', 'aria-hidden': 'true' }),
      h('span', { text: job.status === 'queued' ? 'Queued…' : 'Generating…' })));
  } else {
    const text = job.status === 'canceled' ? 'Canceled' : job.status === 'failed' ? 'Failed' : 'No output';
    box.append(h('div', { class: 'placeholder' }, h('span', { text })));
  }
  return box;
}

export function details(job, modelName) {
  const rows = [['Job', job.id], ['Model', modelName], ['Kind', KIND_NAMES[job.kind] || job.kind],
    ['Status', job.status], ['Credits', `${job.credits}${job.refunded ? ' (refunded)' : ''}`],
    ['Parameters', Object.entries(job.params || {}).map(([k, v]) => `${k}: ${v}`).join(', ') || '—'],
    ['Created', formatTime(job.created_at)], ['Finished', formatTime(job.completed_at) || '—']];
  if (job.error) rows.push(['Error', `${job.error.code}: ${job.error.message}`]);
  if (job.prompt) rows.splice(2, 0, ['Prompt', job.prompt]);
  return h('dl', { class: 'details' }, rows.flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
}
