// Storyboards in History: a product's scenes and their videos together, paged like jobs. A scene is an
// ordinary job, so its card is the job card, kept current by the same watcher; the storyboard itself is
// re-read with backoff while it is still writing or generating.

import { $, h, formatTime, replace } from './dom.js';

const PAGE = 5;
const FIRST_DELAY = 2000;
const MAX_DELAY = 10000;
const ACTIVE = ['writing', 'generating'];

export class Storyboards {
  constructor(app) {
    this.app = app;
    this.list = $('#storyboards');
    this.more = $('#storyboards-more');
    this.cursor = null;
    this.timers = new Map();
    this.more.addEventListener('click', () => this.load(this.cursor));
  }

  stopAll() {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  async load(cursor = null) {
    let page;
    try {
      page = await this.app.api.get('/v1/storyboards', { limit: PAGE, cursor });
    } catch (error) {
      this.app.failed(error);
      return;
    }
    const cards = page.storyboards.map((sb) => this.card(sb));
    if (cursor) this.list.append(...cards);
    else replace(this.list, ...cards);
    this.cursor = page.next_cursor;
    this.more.hidden = !this.cursor;
    $('#storyboards-empty').hidden = this.list.childElementCount > 0;
  }

  card(sb) {
    const el = h('article', { class: 'storyboard card', 'data-storyboard-id': sb.id,
      'aria-label': `Storyboard: ${sb.product.name}` });
    this.render(el, sb);
    return el;
  }

  render(el, sb) {
    el.dataset.status = sb.status;
    const scenes = sb.scenes.map((scene) => h('div', { class: 'scene', 'data-scene': scene.index },
      h('h3', { class: 'scene-title', text: `${scene.index + 1}. ${scene.title}` }),
      scene.job ? this.app.jobs.card(scene.job, { onOpen: (j) => this.app.openJob(j) })
        : h('p', { class: 'muted small', text: scene.description })));
    const refunded = sb.refunded_credits ? ` · ${sb.refunded_credits} refunded` : '';
    el.replaceChildren(
      h('div', { class: 'storyboard-head' },
        sb.product.image_url ? h('img', { class: 'product-photo', src: sb.product.image_url, alt: `Photo of ${sb.product.name}` }) : null,
        h('div', {}, h('h2', { text: sb.product.name }), h('p', { class: 'muted small', text: sb.product.description })),
        h('span', { class: `badge ${sb.status}`, text: sb.status })),
      h('div', { class: 'job-meta' },
        h('span', { text: `${sb.scene_count} scenes · ${this.app.modelName(sb.model)}` }),
        h('span', { text: `${sb.credits} credits${refunded}` }),
        sb.scenes_source === 'fallback' ? h('span', { text: sb.scenes_note || 'Built-in scenes' }) : null,
        h('time', { datetime: sb.created_at, text: formatTime(sb.created_at) })),
      scenes.length ? h('div', { class: 'scenes' }, scenes) : h('p', { class: 'muted small', text: 'Writing the scenes…' }),
    );
    if (ACTIVE.includes(sb.status)) this.watch(el, sb.id);
  }

  watch(el, id, delay = FIRST_DELAY) {
    if (this.timers.has(id)) return;
    this.timers.set(id, setTimeout(async () => {
      this.timers.delete(id);
      if (!el.isConnected) return;
      let sb;
      try {
        sb = await this.app.api.get(`/v1/storyboards/${encodeURIComponent(id)}`);
      } catch (error) {
        this.watch(el, id, Math.min(delay * 2, MAX_DELAY));
        return;
      }
      this.render(el, sb);
      if (ACTIVE.includes(sb.status)) {
        clearTimeout(this.timers.get(id));
        this.timers.delete(id);
        this.watch(el, id, Math.min(Math.round(delay * 1.5), MAX_DELAY));
      }
    }, delay));
  }
}
