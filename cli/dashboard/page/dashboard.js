// The virgo dashboard page: follows /events (Server-Sent Events) and draws every host's variables,
// the stages' rates and the figures of the ring buffer, feeder and queue. Plain JavaScript, no
// build step, nothing loaded from elsewhere. Every value is untrusted text: it reaches the page
// through textContent and attributes only, never as markup. The secret, when one is entered, stays
// in this page's memory and goes out only as an Authorization header of a same-origin POST.

const SVG = 'http://www.w3.org/2000/svg';

const state = {
  /** id "host/key" → { v: the variable, history: [[t, n]], el: row elements } */
  rows: new Map(),
  /** id → what the gate says */
  flags: new Map(),
  /** host → { section, list, count } */
  hosts: new Map(),
  deviceHosts: [],
  historyPoints: 120,
  secretConfigured: false,
  pinsHere: false,
  secret: null,
  serverClock: 0,
  clockAt: 0,
};

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** Now on the server's clock (the ages shown are the server's processing time). */
function serverNow() {
  return state.serverClock + (Date.now() - state.clockAt);
}

function fmtNumber(n) {
  if (!Number.isFinite(n)) return '—';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  if (a >= 100 || Number.isInteger(n)) return String(Math.round(n));
  return n.toFixed(a >= 10 ? 1 : 2);
}

function fmtAge(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

/** A sparkline: an SVG polyline over the values, scaled to their own range. */
function spark(svg, values) {
  let line = svg.firstChild;
  if (!line) {
    line = document.createElementNS(SVG, 'polyline');
    svg.appendChild(line);
  }
  if (values.length < 2) {
    line.setAttribute('points', '');
    return;
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const span = hi - lo || 1;
  const pts = values.map((v, i) => {
    const x = (i / (values.length - 1)) * 100;
    const y = hi === lo ? 12 : 22 - ((v - lo) / span) * 20;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  });
  line.setAttribute('points', pts.join(' '));
}

function sparkSvg(cls) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', cls);
  svg.setAttribute('viewBox', '0 0 100 24');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('aria-hidden', 'true');
  return svg;
}

// ---------- hosts and variables ----------

function hostOrder(a, b) {
  const da = state.deviceHosts.includes(a);
  const db = state.deviceHosts.includes(b);
  if (da !== db) return da ? 1 : -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function hostSection(host) {
  let h = state.hosts.get(host);
  if (h) return h;
  const section = el('details', 'host');
  // kernel hosts open, the device loop folded: it changes many times a second
  section.open = !state.deviceHosts.includes(host);
  const summary = el('summary');
  const name = el('span', 'host-name', host === '' ? '(no host)' : host);
  const count = el('span', 'muted count');
  summary.append(name, count);
  if (state.deviceHosts.includes(host)) summary.append(el('span', 'chip device', 'device loop'));
  const list = el('div', 'vars');
  section.append(summary, list);
  h = { section, list, count, keys: [] };
  state.hosts.set(host, h);
  const main = $('hosts');
  const after = [...state.hosts.keys()]
    .filter((k) => k !== host && hostOrder(k, host) > 0)
    .sort(hostOrder)[0];
  main.insertBefore(section, after === undefined ? null : state.hosts.get(after).section);
  $('empty').hidden = true;
  return h;
}

function rowElements(host, key) {
  const row = el('div', 'var');
  const k = el('div', 'key', key);
  k.title = `${host}/${key}`;
  const value = el('div', 'value');
  const v = el('span', 'v');
  const unit = el('span', 'unit muted');
  value.append(v, unit);
  const svg = sparkSvg('spark');
  const flags = el('div', 'flags');
  const who = el('div', 'who muted');
  const age = el('div', 'age muted');
  const why = el('div', 'why muted');
  // one line, cut; a tap (a phone has no hover title) shows all of it
  why.addEventListener('click', () => why.classList.toggle('open'));
  const act = el('div', 'act');
  row.append(k, value, svg, flags, who, age, why, act);
  return { row, k, v, unit, svg, flags, who, age, why, act };
}

function insertRow(host, key, rowEl) {
  const h = hostSection(host);
  let i = 0;
  while (i < h.keys.length && h.keys[i] < key) i++;
  const before = i < h.keys.length ? state.rows.get(`${host}/${h.keys[i]}`).el.row : null;
  h.keys.splice(i, 0, key);
  h.list.insertBefore(rowEl, before);
  h.count.textContent = `${h.keys.length} variable${h.keys.length === 1 ? '' : 's'}`;
}

function removeRow(host, key) {
  const id = `${host}/${key}`;
  const r = state.rows.get(id);
  if (!r) return;
  r.el.row.remove();
  state.rows.delete(id);
  const h = state.hosts.get(host);
  if (!h) return;
  h.keys = h.keys.filter((k) => k !== key);
  h.count.textContent = `${h.keys.length} variable${h.keys.length === 1 ? '' : 's'}`;
  if (h.keys.length === 0) {
    h.section.remove();
    state.hosts.delete(host);
  }
}

function upsert(v, history) {
  const id = `${v.host}/${v.key}`;
  let r = state.rows.get(id);
  if (!r) {
    r = { v, history: [], el: rowElements(v.host, v.key), act: undefined };
    state.rows.set(id, r);
    insertRow(v.host, v.key, r.el.row);
  }
  r.v = v;
  if (history) r.history = history;
  drawRow(id, r);
}

function drawRow(id, r) {
  const { v, el: e } = r;
  e.v.textContent = v.value;
  e.unit.textContent = v.unit ? ` ${v.unit}` : '';
  e.why.textContent = v.why;
  e.why.title = v.why;
  const f = state.flags.get(id);
  const learner = f ? f.learner : v.learner;
  const model = f ? f.model : v.model;
  e.who.textContent = `${learner || '?'} · ${model || '?'}`;
  e.who.title = `learner ${learner}, model ${model}, confidence ${v.confidence}, stamped ${new Date(v.ts).toISOString()}`;
  e.row.dataset.id = id;
  spark(
    e.svg,
    r.history.map((p) => p[1]),
  );
  drawFlags(id, r);
  drawAge(r);
}

function drawAge(r) {
  r.el.age.textContent = fmtAge(serverNow() - r.v.seen);
  r.el.age.title = `last value ${fmtAge(serverNow() - r.v.seen)} ago, ${r.v.updates} received`;
}

function chip(text, cls, title) {
  const c = el('span', `chip ${cls}`, text);
  if (title) c.title = title;
  return c;
}

function drawFlags(id, r) {
  const f = state.flags.get(id);
  const e = r.el;
  e.flags.replaceChildren();
  if (f?.pinned)
    e.flags.append(chip('pinned', 'pinned', 'an operator pinned it: the learners do not change it'));
  if (f?.clamped) {
    const c = f.clamped;
    e.flags.append(
      chip(
        'clamped',
        'clamped',
        `the learner proposed ${c.from}; the declaration bounds it to [${c.min}, ${c.max}]`,
      ),
    );
  }
  if (f?.held) {
    const h = f.held;
    e.flags.append(
      chip(
        `held → ${h.value}`,
        'held',
        `proposed ${fmtAge(serverNow() - h.since)} ago; the ${h.dwellMs / 1000}s dwell holds it`,
      ),
    );
  }
  e.row.classList.toggle('is-pinned', Boolean(f?.pinned));
  drawActions(id, r, f);
}

/** The row's pin controls; an open pin form survives value updates until pinned or cancelled. */
function drawActions(id, r, f, force) {
  const e = r.el;
  const want = !state.secret ? 'none' : f?.pinned ? 'unpin' : 'pin';
  if (!force && (r.act === want || (r.act === 'form' && want === 'pin'))) return;
  r.act = want;
  e.act.replaceChildren();
  if (want === 'none') return;
  if (want === 'unpin') {
    const b = el('button', 'small', 'unpin');
    b.type = 'button';
    b.addEventListener('click', () =>
      write('/api/unpin', { host: r.v.host, key: r.v.key }, `unpinned ${id}`),
    );
    e.act.append(b);
    return;
  }
  const b = el('button', 'small', 'pin…');
  b.type = 'button';
  b.addEventListener('click', () => pinForm(id, r));
  e.act.append(b);
}

function pinForm(id, r) {
  const e = r.el;
  const form = el('form', 'pin-form');
  const input = el('input');
  input.value = r.v.value;
  input.setAttribute('aria-label', `value to pin ${id} at`);
  input.maxLength = 1000;
  const ok = el('button', 'small', 'pin');
  ok.type = 'submit';
  const cancel = el('button', 'small', 'cancel');
  cancel.type = 'button';
  cancel.addEventListener('click', () => drawActions(id, r, state.flags.get(id), true));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = input.value;
    if (await write('/api/pin', { host: r.v.host, key: r.v.key, value }, `pinned ${id}=${value}`)) {
      drawActions(id, r, state.flags.get(id), true);
    }
  });
  form.append(input, ok, cancel);
  r.act = 'form';
  e.act.replaceChildren(form);
  input.focus();
}

function redrawAllActions() {
  for (const [id, r] of state.rows) drawActions(id, r, state.flags.get(id), true);
}

// ---------- rates and panels ----------

function drawRates(rates) {
  const box = $('rates');
  box.replaceChildren();
  for (const r of rates) {
    const card = el('div', 'card rate');
    card.append(el('div', 'card-title', r.name));
    card.append(el('div', 'big', `${fmtNumber(r.perSec)}/s`));
    card.append(el('div', 'muted', `${fmtNumber(r.total)} total`));
    const svg = sparkSvg('spark');
    spark(svg, r.history);
    card.append(svg);
    box.append(card);
  }
}

function drawPanels(panels) {
  const box = $('panels');
  box.replaceChildren();
  for (const [name, fields] of Object.entries(panels)) {
    const card = el('div', 'card');
    card.append(el('div', 'card-title', name));
    const dl = el('dl');
    for (const [k, v] of Object.entries(fields)) {
      dl.append(
        el('dt', '', k),
        el('dd', '', v === null ? '—' : typeof v === 'number' ? fmtNumber(v) : String(v)),
      );
    }
    card.append(dl);
    box.append(card);
  }
}

function drawStats(s) {
  state.serverClock = s.at;
  state.clockAt = Date.now();
  drawRates(s.rates);
  drawPanels({
    dashboard: {
      variables: s.variables,
      ...(s.refused > 0 ? { 'not shown (full)': s.refused } : {}),
      browsers: s.browsers,
    },
    ...s.panels,
  });
  for (const r of state.rows.values()) drawAge(r);
}

function setFlags(list) {
  const old = state.flags;
  state.flags = new Map(list.map((f) => [`${f.host}/${f.key}`, f]));
  for (const [id, r] of state.rows) {
    if (old.get(id) !== undefined || state.flags.get(id) !== undefined) drawRow(id, r);
  }
}

// ---------- pins ----------

function drawAuth() {
  const status = $('auth-status');
  const login = $('login');
  const lock = $('lock');
  login.hidden = true;
  lock.hidden = true;
  if (!state.secretConfigured) {
    status.textContent = 'read-only: no secret configured';
  } else if (!state.pinsHere) {
    status.textContent = 'read-only here: no learners run in this process';
  } else if (state.secret) {
    status.textContent = 'pins unlocked';
    lock.hidden = false;
  } else {
    status.textContent = 'read-only until unlocked';
    login.hidden = false;
  }
}

function notice(text, bad) {
  const n = $('notice');
  n.textContent = text;
  n.classList.toggle('bad', Boolean(bad));
}

async function post(path, body, secret) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
    body: JSON.stringify(body),
    credentials: 'omit',
    cache: 'no-store',
  });
  let data = {};
  try {
    data = await res.json();
  } catch {
    // an answer without JSON: the status says it
  }
  return { ok: res.ok, status: res.status, data };
}

async function write(path, body, done) {
  try {
    const r = await post(path, body, state.secret);
    if (r.status === 401) {
      state.secret = null;
      drawAuth();
      redrawAllActions();
    }
    notice(r.ok ? done : r.data.error || `refused (${r.status})`, !r.ok);
    return r.ok;
  } catch (err) {
    notice(`not sent: ${err.message}`, true);
    return false;
  }
}

$('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = $('secret');
  const secret = input.value;
  input.value = '';
  try {
    const r = await post('/api/login', {}, secret);
    if (!r.ok) {
      notice(r.data.error || `refused (${r.status})`, true);
      return;
    }
    state.secret = secret;
    notice('pins unlocked: pin… on a variable');
  } catch (err) {
    notice(`not sent: ${err.message}`, true);
  }
  drawAuth();
  redrawAllActions();
});

$('lock').addEventListener('click', () => {
  state.secret = null;
  notice('pins locked');
  drawAuth();
  redrawAllActions();
});

// ---------- the event stream ----------

function setConn(s, text) {
  const c = $('conn');
  c.dataset.state = s;
  c.textContent = text;
}

function onSnapshot(snap) {
  state.deviceHosts = snap.deviceHosts || [];
  state.historyPoints = snap.historyPoints;
  state.secretConfigured = snap.secretConfigured;
  state.pinsHere = snap.pinsHere;
  // the command and mode say themselves; other parts are named
  $('meta').textContent = Object.entries(snap.meta)
    .map(([k, v]) => (k === 'command' || k === 'mode' ? v : `${k}: ${v}`))
    .join(' · ');
  if (snap.meta.command) document.title = `${snap.meta.command} · virgo dashboard`;
  // a reconnect starts from a clean slate: the snapshot is the whole truth
  for (const h of state.hosts.values()) h.section.remove();
  state.hosts.clear();
  state.rows.clear();
  $('empty').hidden = false;
  state.flags = new Map(snap.flags.map((f) => [`${f.host}/${f.key}`, f]));
  drawStats(snap.stats);
  for (const v of snap.variables) upsert(v, v.history);
  drawAuth();
}

function onVars(changes) {
  for (const c of changes) {
    if (c.removed) {
      removeRow(c.host, c.key);
      continue;
    }
    const id = `${c.host}/${c.key}`;
    const r = state.rows.get(id);
    const history = r ? r.history : [];
    // a change may repeat what the snapshot just held: a point is added once
    const last = history[history.length - 1];
    if (c.point && !(last && last[0] >= c.point[0])) {
      history.push(c.point);
      if (history.length > state.historyPoints) history.splice(0, history.length - state.historyPoints);
    }
    upsert(c, history);
  }
}

function connect() {
  const es = new EventSource('/events');
  es.addEventListener('open', () => setConn('live', 'live'));
  es.addEventListener('error', () => setConn('down', 'reconnecting…'));
  es.addEventListener('snapshot', (e) => onSnapshot(JSON.parse(e.data)));
  es.addEventListener('vars', (e) => onVars(JSON.parse(e.data)));
  es.addEventListener('stats', (e) => drawStats(JSON.parse(e.data)));
  es.addEventListener('flags', (e) => setFlags(JSON.parse(e.data)));
}

// on a phone the figures start folded: the variables are what one came for
if (window.matchMedia('(max-width: 720px)').matches) $('panels-box').open = false;
connect();
