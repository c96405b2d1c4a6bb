// Usage: GET /v1/usage over a chosen window of UTC days; totals, two charts per day, a table per model.

import { barChart } from './chart.js';
import { $, h, replace, showError } from './dom.js';

const DAY = 86400000;
const isoDay = (date) => date.toISOString().slice(0, 10);
const addDays = (day, n) => isoDay(new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY));

export class Usage {
  constructor(app) {
    this.app = app;
    this.from = $('#usage-from');
    this.to = $('#usage-to');
    const today = isoDay(new Date());
    this.to.value = today;
    this.from.value = addDays(today, -13);
    $('#usage-form').addEventListener('submit', (event) => { event.preventDefault(); this.load(); });
  }

  async load() {
    const error = $('#usage-error');
    if (!this.from.value || !this.to.value || this.from.value > this.to.value) {
      showError(error, { message: 'Choose a From date on or before the To date.', field: 'from' });
      return;
    }
    let usage;
    try {
      // Both days are included, and by_day holds every day of the window.
      usage = await this.app.api.get('/v1/usage', { from: this.from.value, to: this.to.value });
    } catch (exc) {
      showError(error, exc);
      return;
    }
    showError(error, null);
    this.render(usage);
  }

  render(usage) {
    const t = usage.totals;
    const tiles = [['Jobs', t.jobs], ['Succeeded', t.succeeded], ['Failed or canceled', t.failed + t.canceled],
      ['Credits spent (net)', t.credits_net], ['Output', `${(t.output_bytes / 1048576).toFixed(1)} MB`]];
    replace($('#usage-totals'), ...tiles.map(([label, value]) => h('div', { class: 'card stat' },
      h('span', { class: 'stat-label', text: label }), h('span', { class: 'stat-value', text: String(value) }))));
    replace($('#chart-jobs'), barChart(usage.by_day.map((d) => ({ date: d.date, value: d.jobs })),
      { label: 'Jobs per day', unit: 'jobs', barClass: 'bar-jobs' }));
    replace($('#chart-credits'), barChart(usage.by_day.map((d) => ({ date: d.date, value: d.credits_net })),
      { label: 'Credits per day', unit: 'credits', barClass: 'bar-credits' }));
    const rows = Object.entries(usage.by_model).sort((a, b) => b[1].jobs - a[1].jobs).map(([id, m]) => h('tr', {},
      h('td', { text: this.app.modelName(id) }), ...[m.jobs, m.succeeded, m.failed, m.canceled, m.credits_net,
        m.seconds_p50 ?? '—'].map((v) => h('td', { class: 'num', text: String(v) }))));
    replace($('#usage-models'), ...(rows.length ? rows
      : [h('tr', {}, h('td', { colspan: 7, class: 'muted', text: 'No jobs in this window.' }))]));
  }
}
