// Credits: the balance (also in the top bar, always) and the ledger, newest first, paged.

import { $, h, formatTime, replace } from './dom.js';

const PAGE = 20;

export class Credits {
  constructor(app) {
    this.app = app;
    this.body = $('#ledger');
    this.more = $('#ledger-more');
    this.cursor = null;
    this.more.addEventListener('click', () => this.load(this.cursor));
  }

  async load(cursor = null) {
    let page;
    try {
      page = await this.app.api.get('/v1/credits', { limit: PAGE, cursor });
    } catch (error) {
      this.app.failed(error);
      return;
    }
    this.app.showBalance(page.balance);
    const rows = page.ledger.map((entry) => h('tr', {},
      h('td', {}, h('time', { datetime: entry.at, text: formatTime(entry.at) })),
      h('td', { text: entry.type }),
      h('td', { class: `num ${entry.amount >= 0 ? 'plus' : 'minus'}`, text: entry.amount > 0 ? `+${entry.amount}` : String(entry.amount) }),
      h('td', {}, h('span', { class: 'mono', text: entry.job_id || entry.reference_id || '' }),
        entry.reason ? ` ${entry.reason}` : '')));
    if (cursor) this.body.append(...rows);
    else replace(this.body, ...rows);
    if (!this.body.childElementCount) {
      replace(this.body, h('tr', {}, h('td', { colspan: 4, class: 'muted', text: 'No ledger entries yet.' })));
    }
    this.cursor = page.next_cursor;
    this.more.hidden = !this.cursor;
  }
}
