// History: the user's jobs, newest first, filtered by status, one page at a time (next_cursor); and, where the
// API has them, storyboards (a switch above the list picks which).

import { $, replace } from './dom.js';
import { Storyboards } from './storyboards.js';

const PAGE = 12;

export class History {
  constructor(app) {
    this.app = app;
    this.list = $('#history');
    this.status = $('#history-status');
    this.more = $('#history-more');
    this.cursor = null;
    this.kind = 'jobs';
    this.storyboards = new Storyboards(app);
    for (const button of document.querySelectorAll('#history-kind button')) {
      button.addEventListener('click', () => this.show(button.dataset.kind));
    }
    this.status.addEventListener('change', () => this.load());
    $('#history-refresh').addEventListener('click', () => this.load());
    this.more.addEventListener('click', () => this.load(this.cursor));
  }

  enableStoryboards(available) {
    $('#history-kind').hidden = !available;
    if (!available) this.kind = 'jobs';
  }

  show(kind) {
    this.kind = kind;
    for (const button of document.querySelectorAll('#history-kind button')) {
      button.setAttribute('aria-pressed', String(button.dataset.kind === kind));
    }
    this.load();
  }

  async load(cursor = null) {
    const storyboards = this.kind === 'storyboards';
    for (const el of [this.list, $('#history-filters')]) el.hidden = storyboards;
    $('#storyboards-panel').hidden = !storyboards;
    if (storyboards) {
      this.more.hidden = true;
      $('#history-empty').hidden = true;
      return this.storyboards.load();
    }
    this.more.disabled = true;
    let page;
    try {
      page = await this.app.api.get('/v1/jobs', { status: this.status.value, limit: PAGE, cursor });
    } catch (error) {
      this.app.failed(error);
      return;
    } finally {
      this.more.disabled = false;
    }
    const cards = page.jobs.map((job) => this.app.jobs.card(job, { onOpen: (j) => this.app.openJob(j) }));
    if (cursor) this.list.append(...cards);
    else replace(this.list, ...cards);
    this.cursor = page.next_cursor;
    this.more.hidden = !this.cursor;
    $('#history-empty').hidden = this.list.childElementCount > 0;
    $('#history-empty').textContent = this.status.value ? `No ${this.status.value} jobs.` : 'No jobs yet. Create one first.';
  }
}
