// History: the user's jobs, newest first, filtered by status, one page at a time (next_cursor). Each entry is a
// kind of item with its own card, so other kinds (storyboards) can join the same list.

import { $, h, replace } from './dom.js';

const PAGE = 12;

export class History {
  constructor(app) {
    this.app = app;
    this.list = $('#history');
    this.status = $('#history-status');
    this.more = $('#history-more');
    this.cursor = null;
    this.status.addEventListener('change', () => this.load());
    $('#history-refresh').addEventListener('click', () => this.load());
    this.more.addEventListener('click', () => this.load(this.cursor));
  }

  async load(cursor = null) {
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
