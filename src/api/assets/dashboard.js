// mini-idp dashboard (docs/dashboard.md). One page, routes in the URL's hash:
//   #/  environments   #/env/<name>  one environment   #/templates   #/audit
// Every text from the server (branches, commits, messages, logs) goes into the page as a
// text node or textContent: nothing from data is ever parsed as HTML.
'use strict';

// ---------- helpers ----------

// el('a', {href, class, text, ...}, child...) → element; strings become text nodes.
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'href') e.setAttribute('href', safeHref(v));
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
// Only http(s) links and our own hash routes: a javascript: URL from data never becomes a link.
function safeHref(u) {
  const s = String(u);
  if (s.startsWith('#') || s.startsWith('/')) return s;
  try {
    const p = new URL(s);
    return p.protocol === 'http:' || p.protocol === 'https:' ? p.href : '#';
  } catch (_) { return '#'; }
}
const $ = (sel, root) => (root || document).querySelector(sel);

function fmtDuration(ms) {
  const s = Math.max(0, Math.round(Math.abs(ms) / 1000));
  if (s < 60) return s + 's';
  const m = Math.floor(s / 60);
  if (m < 60) return m + 'm ' + String(s % 60).padStart(2, '0') + 's';
  const h = Math.floor(m / 60);
  if (h < 48) return h + 'h ' + String(m % 60).padStart(2, '0') + 'm';
  return Math.floor(h / 24) + 'd ' + (h % 24) + 'h';
}
function age(iso) { return iso ? fmtDuration(Date.now() - Date.parse(iso)) : '-'; }
function countdown(iso) {
  if (!iso) return 'never';
  const d = Date.parse(iso) - Date.now();
  return d <= 0 ? 'expired' : 'in ' + fmtDuration(d);
}
function shortSha(s) { return s ? String(s).slice(0, 7) : '-'; }
// One formatter for every date: toLocaleString() builds a new one per call, which for the
// 200 rows of a big list was a visible part of the page's time. Same output.
const k_when = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
function when(iso) { return iso ? k_when.format(new Date(iso)) : '-'; }

// "https://github.com/acme/shop(.git)" → {web: "https://github.com/acme/shop"}; other repos: null.
function repoWeb(repo) {
  const m = /^https?:\/\/([^/]+)\/([^/]+)\/([^/]+?)(\.git)?\/?$/.exec(String(repo || ''));
  return m ? 'https://' + m[1] + '/' + m[2] + '/' + m[3] : null;
}

// ---------- API ----------

const state = { session: null, envs: [], events: [], route: '', liveHandlers: new Set() };

async function api(method, path, body) {
  const headers = { 'X-Idp-Actor': 'dashboard' };
  if (method !== 'GET' && state.session && state.session.csrf) headers['X-Idp-Csrf'] = state.session.csrf;
  const opts = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) { headers['Content-Type'] = 'application/json'; opts.body = JSON.stringify(body); }
  const r = await fetch('/api/v1' + path, opts);
  const j = await r.json().catch(() => ({}));
  if (r.status === 401) { location.href = '/login'; throw new Error('signed out'); }
  if (!r.ok) throw new Error(j.message || ('HTTP ' + r.status));
  return j;
}

function canAct(env) {
  const s = state.session;
  if (!s) return false;
  return s.role === 'admin' || (s.role === 'developer' && env.owner === s.identity);
}

// ---------- live updates (the event stream) ----------

let source = null;
function startLive() {
  source = new EventSource('/api/v1/events/stream');
  source.onopen = () => $('#live').classList.add('on');
  source.onerror = () => $('#live').classList.remove('on');
  source.onmessage = (m) => {
    let ev;
    try { ev = JSON.parse(m.data); } catch (_) { return; }
    for (const h of state.liveHandlers) h(ev);
  };
}
// Calls fn at most once per `ms` (the last call wins): a burst of events is one refresh.
function coalesce(fn, ms) {
  let t = null;
  return () => { if (t) return; t = setTimeout(() => { t = null; fn(); }, ms); };
}

// ---------- pages ----------

function phaseBadge(phase) { return el('span', { class: 'phase ' + phase, text: phase }); }

function setMain(...children) {
  const m = $('#main');
  m.replaceChildren(...children);
}

function uniq(values) { return [...new Set(values.filter(Boolean))].sort(); }

function selectFilter(id, label, options, value) {
  const s = el('select', { id }, el('option', { value: '', text: 'all' }),
    options.map(o => el('option', { value: o, text: o })));
  s.value = value || '';
  return el('div', {}, el('label', { for: id, text: label }), s);
}

// The environments list's row: cells in the header's order, each with its data-label (the
// phone layout shows it). Every value from the server goes in as text or a checked href.
let k_env_row = null;
function envRow(e) {
  if (!k_env_row) {
    k_env_row = el('tr', {},
      el('td', { 'data-label': 'Name' }, el('a', { class: 'env-link' })),
      el('td', { 'data-label': 'Phase' }, el('span', { class: 'phase' })),
      el('td', { 'data-label': 'Template' }),
      el('td', { class: 'wrap', 'data-label': 'Branch' }, el('span', { class: 'branch mono' })),
      el('td', { 'data-label': 'Owner' }),
      el('td', { 'data-label': 'Commit', class: 'mono' }),
      el('td', { 'data-label': 'Age' }),
      el('td', { 'data-label': 'Expires', class: 'expires' }),
      el('td', { 'data-label': 'Cost', class: 'cost' }),
      el('td', { 'data-label': 'URL', class: 'wrap' }));
  }
  const tr = k_env_row.cloneNode(true);
  const [name, phase, template, branch, owner, commit, created, expires, cost, url] = tr.children;
  const web = repoWeb(e.repo);
  tr.setAttribute('data-env', e.name);
  name.firstChild.setAttribute('href', '#/env/' + encodeURIComponent(e.name));
  name.firstChild.textContent = e.name;
  phase.firstChild.className = 'phase ' + e.phase;
  phase.firstChild.textContent = e.phase;
  if (e.freeze) phase.append(' ', el('span', { class: 'frozen', title: 'frozen by ' + e.freeze.by + (e.freeze.reason ? ': ' + e.freeze.reason : ''), text: 'frozen' }));
  if (e.sleeping) phase.append(' ', el('span', { class: 'sleeping', title: 'asleep (' + e.sleep.by + (e.sleep.reason ? ': ' + e.sleep.reason : '') + '); its next request wakes it', text: 'sleeping' }));
  template.textContent = e.template;
  branch.firstChild.textContent = e.branch;
  if (e.pr_number && web) branch.append(' ', el('a', { href: web + '/pull/' + e.pr_number, text: '#' + e.pr_number }));
  owner.textContent = e.owner || '-';
  if (web && e.commit) commit.append(el('a', { href: web + '/commit/' + e.commit, text: shortSha(e.commit) }));
  else commit.textContent = shortSha(e.commit);
  created.setAttribute('data-age', e.created_at || '');
  created.textContent = age(e.created_at);
  expires.setAttribute('data-expires', e.expires_at || '');
  expires.title = when(e.expires_at);
  expires.textContent = countdown(e.expires_at);
  // What it cost so far (issue 12; /api/v1/cost), with its pace in the tooltip.
  const c = state.cost && state.cost.lines ? state.cost.lines.find(l => l.name === e.name) : null;
  if (c) {
    const cur = state.cost.currency || '';
    cost.textContent = c.total.toFixed(2) + ' ' + cur;
    cost.title = 'about ' + c.per_day.toFixed(2) + ' ' + cur + '/day, ' + c.projected_month.toFixed(2) + ' ' + cur + ' this month' +
      (c.measured_hours > 0 ? '; used ' + c.used.toFixed(4) + ' ' + cur + ' (measured)' : '');
  } else cost.textContent = '-';
  if (e.url) url.append(el('a', { href: e.url, text: e.url.replace(/^https?:\/\//, '') }));
  else url.textContent = '-';
  return tr;
}

const listPrefs = { q: '', phase: '', owner: '', repo: '', template: '', sort: 'created', mine: null };

async function pageEnvironments() {
  const title = el('h1', { text: 'Environments' });
  const holder = el('div', { 'aria-live': 'polite' });
  setMain(title, el('div', { class: 'filters', id: 'filters' }), holder);
  if (listPrefs.mine === null) listPrefs.mine = state.session.role === 'developer';
  const load = async () => {
    try {
      const [j, cost] = await Promise.all([api('GET', '/environments'), api('GET', '/cost').catch(() => null)]);
      state.envs = j.environments;
      state.cost = cost;
      render();
    } catch (e) { holder.replaceChildren(el('p', { class: 'status error', role: 'alert', text: e.message })); }
  };
  const render = () => {
    const envs = state.envs;
    const f = $('#filters');
    if (!f) return;
    const focused = document.activeElement && document.activeElement.id;
    f.replaceChildren(
      el('div', {}, el('label', { for: 'q', text: 'Search' }),
        el('input', { id: 'q', type: 'search', placeholder: 'name, branch, commit…', value: listPrefs.q })),
      selectFilter('f-phase', 'Phase', uniq(envs.map(e => e.phase)), listPrefs.phase),
      selectFilter('f-owner', 'Owner', uniq(envs.map(e => e.owner)), listPrefs.owner),
      selectFilter('f-repo', 'Repository', uniq(envs.map(e => e.repo)), listPrefs.repo),
      selectFilter('f-template', 'Template', uniq(envs.map(e => e.template)), listPrefs.template),
      el('div', {}, el('label', { for: 'sort', text: 'Sort by' }),
        (() => { const s = el('select', { id: 'sort' }, ['created', 'name', 'expiry', 'phase', 'owner'].map(o => el('option', { value: o, text: o }))); s.value = listPrefs.sort; return s; })()),
      el('div', { class: 'check' }, el('input', { id: 'mine', type: 'checkbox', checked: listPrefs.mine }),
        el('label', { for: 'mine', text: 'Mine only' })));
    const bind = (id, key, ev) => {
      const x = $('#' + id);
      x.addEventListener(ev || 'change', () => { listPrefs[key] = x.type === 'checkbox' ? x.checked : x.value; renderTable(); });
    };
    bind('q', 'q', 'input'); bind('f-phase', 'phase'); bind('f-owner', 'owner'); bind('f-repo', 'repo');
    bind('f-template', 'template'); bind('sort', 'sort'); bind('mine', 'mine');
    if (focused && $('#' + focused)) { const x = $('#' + focused); x.focus(); if (x.type === 'search') x.setSelectionRange(x.value.length, x.value.length); }
    renderTable();
  };
  const renderTable = () => {
    const p = listPrefs, me = state.session.identity;
    const q = p.q.trim().toLowerCase();
    let envs = state.envs.filter(e =>
      (!p.phase || e.phase === p.phase) && (!p.owner || e.owner === p.owner) && (!p.repo || e.repo === p.repo) &&
      (!p.template || e.template === p.template) && (!p.mine || e.owner === me) &&
      (!q || [e.name, e.branch, e.commit, e.owner, e.repo, e.template, e.url].some(v => String(v || '').toLowerCase().includes(q))));
    const key = { created: e => -Date.parse(e.created_at || 0), name: e => e.name, phase: e => e.phase, owner: e => e.owner,
      expiry: e => e.expires_at ? Date.parse(e.expires_at) : Infinity }[p.sort];
    envs = envs.slice().sort((a, b) => { const x = key(a), y = key(b); return x < y ? -1 : x > y ? 1 : a.name < b.name ? -1 : 1; });
    const count = el('p', { class: 'count', id: 'count', text: envs.length + ' of ' + state.envs.length + ' environments' });
    if (!envs.length) {
      holder.replaceChildren(count, el('p', { class: 'empty', id: 'empty',
        text: state.envs.length ? 'No environment matches these filters.' :
          'No preview environments yet. Push a branch of a watched repository, or run idp create.' }));
      return;
    }
    // The rows are clones of one template row, filled with textContent and attributes, and
    // go into the page in a single insertion (bench/dashboard: 200 rows).
    const tbody = el('tbody', {});
    for (const e of envs) tbody.append(envRow(e));
    holder.replaceChildren(count, el('table', { class: 'envs', id: 'envs' },
      el('thead', {}, el('tr', {}, ['Name', 'Phase', 'Template', 'Branch / PR', 'Owner', 'Commit', 'Age', 'Expires', 'Cost', 'URL'].map(h => el('th', { scope: 'col', text: h })))),
      tbody));
  };
  const refresh = coalesce(load, 150);
  state.liveHandlers.add(refresh);
  await load();
}

async function pageEnvironment(name) {
  let env;
  try { env = await api('GET', '/environments/' + encodeURIComponent(name)); } catch (e) {
    setMain(el('h1', { text: name }), el('p', { class: 'status error', role: 'alert', text: e.message }),
      el('p', {}, el('a', { href: '#/', text: '← all environments' })));
    return;
  }
  const head = el('div', {}), facts = el('div', { class: 'card' }), actions = el('div', {}),
    timeline = el('div', {}), revisions = el('div', {}), logs = el('section', { 'aria-labelledby': 'logs-h' }),
    events = el('div', {});
  setMain(el('p', { class: 'small' }, el('a', { href: '#/', text: '← all environments' })), head, facts, actions, logs, timeline, revisions, events);
  let evs = [];
  const renderEnv = () => {
    const web = repoWeb(env.repo);
    head.replaceChildren(el('h1', {}, env.name, ' ', phaseBadge(env.phase)));
    if ((env.phase === 'failed' || env.phase === 'degraded' || env.attempts > 0) && env.message) {
      head.append(el('div', { class: 'reason', id: 'reason', role: 'status' }, el('strong', { text: 'Why: ' }), env.message));
    } else if (env.message) {
      head.append(el('p', { class: 'muted', id: 'message', text: env.message }));
    }
    const dl = el('dl', { class: 'facts' });
    const fact = (k, v) => dl.append(el('dt', { text: k }), el('dd', {}, v));
    fact('URL', env.url ? el('a', { href: env.url, id: 'env-url', text: env.url }) : '-');
    fact('Repository', web ? el('a', { href: web, text: env.repo }) : el('span', { class: 'mono', text: env.repo }));
    fact('Branch', el('span', { class: 'mono branch', id: 'branch', text: env.branch }));
    if (env.pr_number) fact('Pull request', web ? el('a', { href: web + '/pull/' + env.pr_number, text: '#' + env.pr_number }) : '#' + env.pr_number);
    fact('Commit', web && env.commit ? el('a', { href: web + '/commit/' + env.commit, class: 'mono', text: env.commit }) : el('span', { class: 'mono', text: env.commit || '-' }));
    fact('Template', env.template + ' on ' + env.runtime);
    fact('Owner', env.owner || '-');
    if (env.freeze) {
      const n = env.freeze.waiting.length;
      fact('Frozen', el('span', { id: 'frozen', text: 'by ' + env.freeze.by + (env.freeze.until ? ' until ' + when(env.freeze.until) : '') +
        (env.freeze.reason ? ': ' + env.freeze.reason : '') + '; ' + n + ' newer commit' + (n === 1 ? '' : 's') + ' waiting' }));
    }
    if (env.sleep) {
      fact('Sleep', el('span', { id: 'sleep', text: (env.sleep.state === 'to_wake' ? 'waking up' : env.sleep.state === 'to_sleep' ? 'going to sleep' : 'sleeping: its next request wakes it') +
        ' (by ' + env.sleep.by + ' since ' + when(env.sleep.at) + (env.sleep.reason ? ': ' + env.sleep.reason : '') + ')' }));
    }
    fact('Created', when(env.created_at) + ' (' + age(env.created_at) + ' ago)');
    fact('Expires', el('span', { id: 'expires', 'data-expires': env.expires_at || '', title: when(env.expires_at), text: countdown(env.expires_at) }));
    if (env.lease) fact('Locked by', env.lease.owner + ' until ' + when(env.lease.expires_at));
    facts.replaceChildren(dl);
    revisions.replaceChildren(el('h2', { text: 'Revisions' }));
    const revs = env.revisions || [];
    if (!revs.length) revisions.append(el('p', { class: 'muted', text: 'No revision yet.' }));
    for (const r of revs) {
      const card = el('div', { class: 'card revision', 'data-status': r.status },
        el('div', {}, el('strong', { text: 'Revision ' + r.id }), ' ', el('span', { class: 'phase ' + ({ serving: 'ready', failed: 'failed', superseded: 'destroyed', stopped: 'destroyed' }[r.status] || 'pending'), text: r.status }),
          ' ', el('span', { class: 'muted', text: shortSha(r.commit) + ' · ' + when(r.created_at) + (r.finished_at ? ' → ' + when(r.finished_at) : '') })));
      if (r.message) card.append(el('p', { text: r.message }));
      if (r.log_tail && r.status === 'failed') {
        // The newest failure's tail is open; older ones fold away.
        const tail = el('pre', { class: 'tail', text: r.log_tail });
        card.append(r === revs.find(x => x.status === 'failed') ? el('div', {}, el('p', { class: 'small muted', text: 'Log tail' }), tail)
          : el('details', {}, el('summary', { class: 'small', text: 'Log tail' }), tail));
      }
      revisions.append(card);
    }
  };
  const renderEvents = () => {
    // The phase timeline of the current deploy: the phase changes since the last create or redeploy.
    const changes = evs.filter(e => e.to_phase && e.from_phase !== e.to_phase);
    let start = 0;
    changes.forEach((e, i) => { if (e.to_phase === 'pending' || (e.to_phase === 'provisioning' && e.from_phase !== 'pending')) start = i; });
    const steps = changes.slice(start);
    timeline.replaceChildren(el('h2', { text: 'Phase timeline' }));
    if (!steps.length) timeline.append(el('p', { class: 'muted', text: 'No phase change recorded yet.' }));
    else timeline.append(el('ol', { class: 'timeline' }, steps.map((e, i) => {
      const next = steps[i + 1];
      const dur = next ? fmtDuration(Date.parse(next.at) - Date.parse(e.at)) : (e.to_phase === 'destroyed' ? '' : 'now');
      return el('li', {}, phaseBadge(e.to_phase), ' ', el('span', { class: 'muted', text: new Date(e.at).toLocaleTimeString() + (dur ? ' · ' + dur : '') }));
    })));
    events.replaceChildren(el('h2', { text: 'History' }), el('ul', { class: 'events', id: 'events' },
      evs.slice().reverse().map(e => el('li', {}, el('span', { class: 'muted', text: when(e.at) + ' ' }), el('strong', { text: e.action }),
        ' by ', el('span', { text: e.actor }), e.reason ? ' — ' : '', e.reason || '',
        e.to_phase && e.from_phase !== e.to_phase ? el('span', { class: 'muted', text: ' (' + e.from_phase + ' → ' + e.to_phase + ')' }) : ''))));
  };
  const renderActions = () => {
    actions.replaceChildren();
    if (!canAct(env) || env.phase === 'destroyed') return;
    const status = (id) => el('p', { class: 'status', id, role: 'status', 'aria-live': 'polite' });
    const run = async (statusEl, busyText, fn, doneText) => {
      statusEl.className = 'status busy'; statusEl.textContent = busyText;
      try {
        const r = await fn();
        statusEl.className = 'status'; statusEl.textContent = doneText(r);
        await reload();
      } catch (e) { statusEl.className = 'status error'; statusEl.setAttribute('role', 'alert'); statusEl.textContent = e.message; }
    };
    const ttl = el('select', { id: 'ttl' }, ['1h', '4h', '1d', '3d', '7d', '14d'].map(t => el('option', { value: t, text: t })));
    ttl.value = '1d';
    const extendStatus = status('extend-status');
    const extend = el('div', { class: 'action' }, el('label', { for: 'ttl', text: 'Extend by' }),
      el('div', { class: 'row' }, ttl, el('button', { type: 'button', id: 'extend', onclick: () =>
        run(extendStatus, 'Extending…', () => api('POST', '/environments/' + encodeURIComponent(env.name) + '/extend', { ttl: ttl.value }),
          r => 'Now expires ' + when(r.expires_at)) }, 'Extend')), extendStatus);
    const redeployStatus = status('redeploy-status');
    const redeploy = el('div', { class: 'action' }, el('span', { class: 'small muted', text: 'Deploy the branch head again' }),
      el('div', { class: 'row' }, el('button', { type: 'button', id: 'redeploy', onclick: () =>
        run(redeployStatus, 'Redeploying…', () => api('POST', '/environments/' + encodeURIComponent(env.name) + '/redeploy', {}), () => 'Redeploy queued') }, 'Redeploy')), redeployStatus);
    const unlockStatus = status('unlock-status');
    const unlock = el('div', { class: 'action' }, el('span', { class: 'small muted', text: 'Break a stuck lock' }),
      el('div', { class: 'row' }, el('button', { type: 'button', id: 'unlock', onclick: () =>
        run(unlockStatus, 'Unlocking…', () => api('POST', '/environments/' + encodeURIComponent(env.name) + '/unlock', {}), r => r.lease ? 'Lock of ' + r.lease.owner + ' broken' : 'There was no lock') }, 'Unlock')), unlockStatus);
    const confirmInput = el('input', { id: 'confirm-name', autocomplete: 'off', placeholder: env.name });
    const destroyStatus = status('destroy-status');
    const confirmButton = el('button', { type: 'button', class: 'danger', id: 'destroy-confirm', disabled: true, onclick: () =>
      run(destroyStatus, 'Destroying…', () => api('DELETE', '/environments/' + encodeURIComponent(env.name) + '?reason=' + encodeURIComponent('destroyed from the dashboard')), () => 'Destroy started') }, 'Destroy for good');
    confirmInput.addEventListener('input', () => { confirmButton.disabled = confirmInput.value !== env.name; });
    const confirmBox = el('div', { class: 'row', id: 'destroy-box', hidden: true },
      el('label', { for: 'confirm-name', text: 'Type ' + env.name + ' to confirm' }), confirmInput, confirmButton);
    const destroy = el('div', { class: 'action' }, el('span', { class: 'small muted', text: 'Delete everything it runs' }),
      el('div', { class: 'row' }, el('button', { type: 'button', id: 'destroy', onclick: () => { confirmBox.hidden = false; confirmInput.focus(); } }, 'Destroy…')),
      confirmBox, destroyStatus);
    actions.append(el('h2', { text: 'Actions' }), el('div', { class: 'card actions' }, extend, redeploy, unlock, destroy));
  };
  const reload = async () => {
    try { env = await api('GET', '/environments/' + encodeURIComponent(name)); } catch (e) { return; }
    renderEnv();
    renderActionsIfChanged();
  };
  let actionsFor = '';
  const renderActionsIfChanged = () => {
    // Re-rendering the actions would wipe their status lines: only when what is allowed
    // changes. Once the environment is gone they stay, disabled, with their last status.
    const k = String(canAct(env));
    if (k !== actionsFor) { actionsFor = k; renderActions(); }
    if (env.phase === 'destroyed') for (const c of actions.querySelectorAll('button, select, input')) c.disabled = true;
  };
  renderEnv();
  renderActionsIfChanged();
  renderLogs(env, logs);
  try { evs = (await api('GET', '/environments/' + encodeURIComponent(name) + '/events?limit=1000')).events; } catch (_) { evs = []; }
  renderEvents();
  const refresh = coalesce(reload, 150);
  state.liveHandlers.add((ev) => {
    if (ev.environment !== name) return;
    if (!evs.some(x => x.id === ev.id)) { evs.push(ev); renderEvents(); }
    refresh();
  });
}

// Live logs: newline-delimited JSON from /logs?follow=true, read as it arrives.
let logAbort = null;
function renderLogs(env, box) {
  box.replaceChildren(el('h2', { id: 'logs-h', text: 'Logs' }));
  if (!canAct(env)) {
    box.append(el('p', { class: 'muted', text: 'Logs are shown to the environment\'s owner and to admins.' }));
    return;
  }
  const pre = el('pre', { class: 'log', id: 'log', tabindex: '0', 'aria-label': 'log output' });
  const search = el('input', { id: 'log-search', type: 'search', placeholder: 'filter lines' });
  const pause = el('button', { type: 'button', id: 'log-pause', 'aria-pressed': 'false' }, 'Pause');
  const follow = el('input', { id: 'log-follow', type: 'checkbox', checked: true });
  const info = el('span', { class: 'small muted', id: 'log-info', 'aria-live': 'polite' });
  box.append(el('div', { class: 'logbar' }, el('label', { for: 'log-search', text: 'Search' }), search, pause,
    follow, el('label', { for: 'log-follow', text: 'Follow (scroll to newest)' }), info), pre);
  let paused = false, held = [];
  const matches = (line) => { const q = search.value.toLowerCase(); return !q || line.textContent.toLowerCase().includes(q); };
  const add = (l) => {
    const line = el('span', { class: 'line ' + (l.stream === 'stderr' ? 'stderr' : 'stdout') },
      el('span', { class: 'at', text: String(l.at || '').slice(11, 23) }), l.text);
    line.hidden = !matches(line);
    pre.append(line);
    while (pre.childNodes.length > 5000) pre.firstChild.remove();
  };
  const flush = () => {
    for (const l of held) add(l);
    held = [];
    if (follow.checked) pre.scrollTop = pre.scrollHeight;
  };
  search.addEventListener('input', () => { for (const line of pre.children) line.hidden = !matches(line); });
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    info.textContent = paused ? 'paused: new lines are held' : '';
    if (!paused) flush();
  });
  if (logAbort) logAbort.abort();
  const ctl = new AbortController();
  logAbort = ctl;
  (async () => {
    try {
      const r = await fetch('/api/v1/environments/' + encodeURIComponent(env.name) + '/logs?follow=true&tail=300',
        { credentials: 'same-origin', signal: ctl.signal });
      if (!r.ok) { const j = await r.json().catch(() => ({})); info.textContent = j.message || ('HTTP ' + r.status); return; }
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let buf = '';
      pre.setAttribute('data-streaming', 'true');
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const text = buf.slice(0, nl); buf = buf.slice(nl + 1);
          if (!text.trim()) continue;
          try { held.push(JSON.parse(text)); } catch (_) { /* a partial line cannot happen: split at newlines */ }
        }
        if (!paused) flush(); else info.textContent = 'paused: ' + held.length + ' new lines held';
      }
      info.textContent = 'stream ended';
    } catch (e) { if (e.name !== 'AbortError') info.textContent = e.message; }
  })();
}

// The scheduled-worker's schedule_expression, tried live: the server parses it with the
// scheduler's own parser (GET /api/v1/schedule-preview) and answers the next runs or the
// error with its column. Typing sends at most one request per pause; a late answer to an
// older expression is dropped.
function schedulePreview() {
  const input = el('input', { id: 'schedule-expr', type: 'text', spellcheck: 'false', autocomplete: 'off',
    class: 'mono', value: 'cron(0 9 ? * MON-FRI *)', 'aria-describedby': 'schedule-help' });
  const status = el('p', { class: 'status', id: 'schedule-status', 'aria-live': 'polite' });
  const runs = el('ol', { class: 'runs', id: 'schedule-runs' });
  let seq = 0, timer = null, ctl = null;
  const show = async () => {
    const expr = input.value.trim();
    const mine = ++seq;
    if (ctl) ctl.abort();
    runs.replaceChildren();
    if (!expr) { status.className = 'status'; status.textContent = 'Type an expression to see its next runs.'; return; }
    ctl = new AbortController();
    let r, j;
    try {
      r = await fetch('/api/v1/schedule-preview?count=5&expression=' + encodeURIComponent(expr),
        { credentials: 'same-origin', signal: ctl.signal });
      j = await r.json().catch(() => ({}));
    } catch (e) { if (e.name === 'AbortError') return; r = null; j = { message: e.message }; }
    if (mine !== seq) return;
    if (r && r.status === 401) { location.href = '/login'; return; }
    if (!r || !r.ok) {
      status.className = 'status error';
      status.textContent = j.message || ('HTTP ' + (r ? r.status : '?'));
      return;
    }
    status.className = 'status';
    status.textContent = j.runs.length ? (j.kind === 'rate' ? 'Next runs if deployed now (a rate counts from the deploy):' : 'Next runs:')
      : 'This schedule has no run after now.';
    runs.replaceChildren(...j.runs.map(x => el('li', { 'data-at': x.at },
      el('time', { datetime: x.at, text: x.at.replace('T', ' ').replace(/:00Z$|Z$/, '') + ' UTC' }),
      el('span', { class: 'muted', text: ' · ' + when(x.at) + ' local' }))));
  };
  input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(show, 200); });
  show();
  return el('div', { class: 'schedule' },
    el('h3', { class: 'small', text: 'Schedule preview' }),
    el('label', { for: 'schedule-expr', text: 'schedule_expression' }), input,
    el('p', { class: 'small muted', id: 'schedule-help', text: 'rate(5 minutes) or cron(minutes hours day-of-month month day-of-week year), in UTC; set it in .idp/config.yml.' }),
    status, runs);
}

async function pageTemplates() {
  setMain(el('h1', { text: 'Templates' }), el('p', { class: 'muted', text: 'Loading…' }));
  let j;
  try { j = await api('GET', '/templates'); } catch (e) { setMain(el('h1', { text: 'Templates' }), el('p', { class: 'status error', text: e.message })); return; }
  const cards = j.templates.filter(t => !t.hidden).map(t => {
    const fields = (t.fields || []).map(f => el('tr', {}, el('td', { class: 'mono', text: f.name }), el('td', { text: f.type + (f.required ? ' (required)' : '') }),
      el('td', { text: (f.description || '') + (f.default !== undefined ? ' (default '  + JSON.stringify(f.default) + ')' : '') + (f.enum ? ' One of: ' + f.enum.join(', ') : '') })));
    const outputs = Object.entries(t.outputs || {}).map(([k, v]) => el('li', {}, el('span', { class: 'mono', text: k }), ' — ', String(v)));
    return el('article', { class: 'card template', 'data-template': t.name },
      el('h2', { text: t.name }), el('p', { text: t.description }),
      el('p', { class: 'small muted', text: 'Runtimes: ' + (t.runtimes || []).join(', ') + (t.estimated_cost ? ' · ' + t.estimated_cost : '') }),
      fields.length ? el('table', {}, el('thead', {}, el('tr', {}, ['Field', 'Type', 'Meaning'].map(h => el('th', { scope: 'col', text: h })))), el('tbody', {}, fields)) : el('p', { class: 'muted', text: 'No config fields.' }),
      outputs.length ? el('div', {}, el('h3', { class: 'small', text: 'Outputs' }), el('ul', {}, outputs)) : '',
      t.components && t.components.includes('schedule') ? schedulePreview() : '');
  });
  setMain(el('h1', { text: 'Templates' }), j.problems && j.problems.length ? el('div', { class: 'reason', text: j.problems.join('\n') }) : '',
    el('div', { class: 'tpl-grid', id: 'templates' }, cards));
}

async function pageAudit() {
  const prefs = { q: '', action: '' };
  const list = el('tbody', {});
  const count = el('p', { class: 'count' });
  const q = el('input', { id: 'audit-q', type: 'search', placeholder: 'actor, environment, reason…' });
  const actionSel = el('select', { id: 'audit-action' }, el('option', { value: '', text: 'all' }));
  setMain(el('h1', { text: 'Audit log' }),
    el('div', { class: 'filters' }, el('div', {}, el('label', { for: 'audit-q', text: 'Search' }), q),
      el('div', {}, el('label', { for: 'audit-action', text: 'Action' }), actionSel), count),
    el('table', { id: 'audit' }, el('thead', {}, el('tr', {}, ['When', 'Who', 'What', 'Environment', 'Why'].map(h => el('th', { scope: 'col', text: h })))), list));
  let evs = [];
  try { evs = (await api('GET', '/events?limit=10000')).events; } catch (e) { count.textContent = e.message; }
  const render = () => {
    const needle = prefs.q.toLowerCase();
    const shown = evs.filter(e => (!prefs.action || e.action === prefs.action) &&
      (!needle || [e.actor, e.environment, e.reason, e.action].some(v => String(v || '').toLowerCase().includes(needle))));
    const newest = shown.slice(-500).reverse();
    list.replaceChildren(...newest.map(e => el('tr', {}, el('td', { text: when(e.at) }), el('td', { text: e.actor }), el('td', { text: e.action }),
      el('td', {}, e.environment ? el('a', { href: '#/env/' + encodeURIComponent(e.environment), text: e.environment }) : '-'),
      el('td', { class: 'wrap', text: e.reason || '' }))));
    count.textContent = shown.length + ' events' + (shown.length > 500 ? ' (newest 500 shown)' : '');
    const actions = uniq(evs.map(e => e.action));
    if (actionSel.options.length - 1 !== actions.length) {
      actionSel.replaceChildren(el('option', { value: '', text: 'all' }), actions.map(a => el('option', { value: a, text: a })));
      actionSel.value = prefs.action;
    }
  };
  q.addEventListener('input', () => { prefs.q = q.value; render(); });
  actionSel.addEventListener('change', () => { prefs.action = actionSel.value; render(); });
  render();
  state.liveHandlers.add((ev) => { if (!evs.some(x => x.id === ev.id)) { evs.push(ev); render(); } });
}

// Pull requests from forks: pending ones wait for an approval of their head commit.
async function pageForks() {
  const holder = el('div', { 'aria-live': 'polite' });
  setMain(el('h1', { text: 'Pull requests from forks' }),
    el('p', { class: 'muted', text: 'A pull request from a fork is deployed only once its head commit is approved, and then without secrets or network (the untrusted profile). A new push needs a new approval.' }),
    holder);
  const canApprove = state.session && (state.session.role === 'admin' || state.session.role === 'developer');
  const load = async () => {
    let j;
    try { j = await api('GET', '/forks'); } catch (e) { holder.replaceChildren(el('p', { class: 'status error', role: 'alert', text: e.message })); return; }
    if (!j.forks.length) { holder.replaceChildren(el('p', { class: 'muted', id: 'no-forks', text: 'No pull requests from forks.' })); return; }
    const rows = j.forks.map(f => {
      const id = f.repo + '#' + f.pr;
      const status = el('span', { class: 'status', role: 'status' });
      let action = '';
      if (f.state === 'pending' && canApprove) {
        action = el('button', { type: 'button', class: 'approve', 'data-fork': id, onclick: async (ev) => {
          ev.target.disabled = true; status.className = 'status busy'; status.textContent = 'Approving…';
          try {
            const r = await api('POST', '/forks/approve', { repo: f.repo_url, pr: f.pr, commit: f.head_sha });
            status.className = 'status'; status.textContent = 'Approved ' + shortSha(r.approved_commit);
            await load();
          } catch (e) { ev.target.disabled = false; status.className = 'status error'; status.setAttribute('role', 'alert'); status.textContent = e.message; }
        } }, 'Approve ' + shortSha(f.head_sha));
      }
      return el('tr', { 'data-fork': id },
        el('td', { class: 'mono', text: id }),
        el('td', { text: f.head_repo + ':' + f.head_ref }),
        el('td', { text: f.author }),
        el('td', {}, el('span', { class: 'phase ' + (f.state === 'approved' ? 'ready' : f.state === 'closed' ? 'destroyed' : 'pending'), text: f.state })),
        el('td', { class: 'mono', text: shortSha(f.head_sha) }),
        el('td', { text: f.approved_by ? f.approved_by + ' (' + shortSha(f.approved_commit) + ')' : '-' }),
        el('td', {}, f.environment ? el('a', { href: '#/env/' + encodeURIComponent(f.environment), text: f.environment }) : '-'),
        el('td', {}, action, status));
    });
    holder.replaceChildren(el('table', { id: 'forks' },
      el('thead', {}, el('tr', {}, ['Pull request', 'From', 'Author', 'State', 'Head', 'Approved', 'Environment', ''].map(h => el('th', { scope: 'col', text: h })))),
      el('tbody', {}, rows)));
  };
  await load();
}

// ---------- routing ----------

function route() {
  state.liveHandlers.clear();
  if (logAbort) { logAbort.abort(); logAbort = null; }
  const h = location.hash || '#/';
  const nav = h.startsWith('#/templates') ? 'templates' : h.startsWith('#/audit') ? 'audit' : h.startsWith('#/forks') ? 'forks' : 'envs';
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  let p;
  if (h.startsWith('#/env/')) { document.title = 'mini-idp · ' + decodeURIComponent(h.slice(6)); p = pageEnvironment(decodeURIComponent(h.slice(6))); }
  else if (nav === 'templates') { document.title = 'mini-idp · templates'; p = pageTemplates(); }
  else if (nav === 'audit') { document.title = 'mini-idp · audit log'; p = pageAudit(); }
  else if (nav === 'forks') { document.title = 'mini-idp · forks'; p = pageForks(); }
  else { document.title = 'mini-idp · environments'; p = pageEnvironments(); }
  p.finally(() => document.body.setAttribute('data-ready', h));
}

// Countdowns and ages tick without a reload.
setInterval(() => {
  // Only a text that changed is written: each write costs the page a new layout.
  const put = (e, t) => { if (e.textContent !== t) e.textContent = t; };
  for (const e of document.querySelectorAll('[data-expires]')) put(e, countdown(e.dataset.expires));
  for (const e of document.querySelectorAll('[data-age]')) put(e, age(e.dataset.age));
}, 1000);

async function startApp() {
  try { state.session = await api('GET', '/session'); } catch (_) { return; }
  $('#who').textContent = state.session.identity + ' · ' + state.session.role;
  document.body.dataset.role = state.session.role;
  $('#signout').addEventListener('click', async () => {
    await fetch('/logout', { method: 'POST', credentials: 'same-origin' });
    location.href = '/login';
  });
  window.addEventListener('hashchange', route);
  startLive();
  route();
}

async function startLogin() {
  const cfg = await fetch('/auth/config').then(r => r.json()).catch(() => ({}));
  // A protected preview sent the browser here (api/preview_auth.hpp): back there after sign-in.
  const next = new URLSearchParams(location.search).get('next') || '';
  const after = next.startsWith('/preview/signin?') ? next : '/';
  if (after !== '/') $('#github').href = '/auth/github?next=' + encodeURIComponent(after);
  if (cfg.github) $('#github-box').hidden = false;
  $('#token-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await fetch('/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ token: $('#token').value.trim() }) });
    if (r.ok) { location.href = after; return; }
    const j = await r.json().catch(() => ({}));
    $('#err').textContent = j.message || r.statusText;
  });
}

if (document.body.dataset.page === 'login') startLogin(); else startApp();
