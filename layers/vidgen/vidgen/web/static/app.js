// The vidgen playground: sign in with an API key (this tab only), then create, watch, browse and measure jobs.

import { Api } from './api.js';
import { Credits } from './credits.js';
import { $, h, replace, showError, toast } from './dom.js';
import { GenerateForm } from './generate.js';
import { History } from './history.js';
import { details, Jobs } from './jobs.js';
import { Usage } from './usage.js';

const KEY_STORAGE = 'vidgen.apiKey'; // sessionStorage only: gone when the tab closes, never in the URL
const VIEWS = ['create', 'history', 'credits', 'usage'];

class App {
  constructor() {
    this.api = null;
    this.models = [];
    this.jobs = new Jobs(this);
    this.generate = new GenerateForm(this);
    this.history = new History(this);
    this.credits = new Credits(this);
    this.usage = new Usage(this);
    $('#signin-form').addEventListener('submit', (event) => { event.preventDefault(); this.signIn($('#api-key').value.trim()); });
    $('#sign-out').addEventListener('click', () => this.signOut());
    $('#job-dialog-close').addEventListener('click', () => $('#job-dialog').close());
    window.addEventListener('hashchange', () => this.route());
  }

  async start() {
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (key) await this.signIn(key, { quiet: true });
    else this.showSignIn();
  }

  async signIn(key, { quiet = false } = {}) {
    const error = $('#signin-error');
    if (!key) {
      showError(error, { message: 'Enter your API key.' });
      return;
    }
    const button = $('#signin-button');
    button.disabled = true;
    const api = new Api(key);
    try {
      const [credits, catalog, spec] = await Promise.all([api.get('/v1/credits', { limit: 1 }), api.get('/v1/models'),
        api.get('/v1/openapi.json')]);
      this.history.enableStoryboards('/v1/storyboards' in spec.paths); // once the API has them
      this.api = api;
      this.models = catalog.models;
      sessionStorage.setItem(KEY_STORAGE, key);
      $('#api-key').value = '';
      showError(error, null);
      this.showBalance(credits.balance);
      this.generate.setModels(this.models);
      $('#nav').hidden = false;
      $('#account').hidden = false;
      $('#view-signin').hidden = true;
      this.route();
    } catch (exc) {
      sessionStorage.removeItem(KEY_STORAGE);
      this.showSignIn();
      if (!quiet || exc.status !== 401) {
        showError(error, exc.status === 401 ? { message: `That key was not accepted: ${exc.message}` } : exc);
      }
    } finally {
      button.disabled = false;
    }
  }

  signOut(message) {
    sessionStorage.removeItem(KEY_STORAGE);
    this.api = null;
    this.jobs.stopAll();
    this.history.storyboards.stopAll();
    replace($('#recent'));
    $('#recent-empty').hidden = false;
    this.showSignIn();
    if (message) showError($('#signin-error'), { message });
  }

  showSignIn() {
    for (const view of VIEWS) $(`#view-${view}`).hidden = true;
    $('#nav').hidden = true;
    $('#account').hidden = true;
    $('#view-signin').hidden = false;
    $('#api-key').focus();
  }

  route() {
    if (!this.api) return;
    const view = VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'create';
    for (const name of VIEWS) $(`#view-${name}`).hidden = name !== view;
    for (const link of document.querySelectorAll('#nav a[data-view]')) {
      if (link.dataset.view === view) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    if (view === 'history') this.history.load();
    if (view === 'credits') this.credits.load();
    if (view === 'usage') this.usage.load();
  }

  modelName(id) {
    const model = this.models.find((m) => m.id === id);
    return model ? model.name : id;
  }

  showBalance(balance) {
    $('#balance-value').textContent = String(balance);
    $('#credits-balance').textContent = String(balance);
  }

  async refreshBalance() {
    try {
      const credits = await this.api.get('/v1/credits', { limit: 1 });
      this.showBalance(credits.balance);
    } catch (error) {
      this.failed(error);
    }
  }

  jobStarted(job) {
    $('#recent-empty').hidden = true;
    $('#recent').prepend(this.jobs.card(job, { onOpen: (j) => this.openJob(j) }));
    this.refreshBalance();
  }

  jobEnded(job) {
    this.refreshBalance();
    if (job.status === 'succeeded') toast(`${this.modelName(job.model)}: your ${job.outputs[0] && job.outputs[0].content_type.startsWith('image/') ? 'image' : 'video'} is ready.`);
    else if (job.status === 'failed') toast(`Job failed: ${job.error ? job.error.message : 'no reason given'} Credits refunded.`);
  }

  openJob(job) {
    const latest = this.jobs.latest.get(job.id) || job;
    $('#job-dialog-title').textContent = this.modelName(latest.model);
    replace($('#job-dialog-body'), this.jobs.card(latest), details(latest, this.modelName(latest.model)));
    $('#job-dialog').showModal();
  }

  failed(error) {
    if (error.status === 401) this.signOut('Your API key is no longer accepted.');
    else toast(error.message);
  }
}

new App().start();
