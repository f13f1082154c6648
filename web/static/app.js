// datashift UI: a single-page app over the node's JSON API.
//
// Routes live in the URL's fragment (#/cluster, #/jobs, #/jobs/NAME,
// #/runs/JOB/RUN). A page is a render function that fetches what it shows,
// builds it, and says how soon to look again: once a second on a run that is
// going, every few seconds elsewhere. Every string from the API is set as
// text (textContent), never parsed as HTML, and the Content-Security-Policy
// allows no inline script besides.
'use strict';

(() => {
  const main = document.getElementById('main');
  const TOKEN_KEY = 'datashift-token';

  // ---- building elements --------------------------------------------------

  // el builds an element: attrs are properties or attributes (class, href,
  // title, data-*, …); kids are elements, strings (set as text) or null.
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else if (v === true) e.setAttribute(k, '');
      else e.setAttribute(k, String(v));
    }
    append(e, kids);
    return e;
  }

  function append(e, kids) {
    for (const k of kids.flat(Infinity)) {
      if (k === null || k === undefined || k === false) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
  }

  // show makes kids the page's content.
  function show(...kids) {
    main.replaceChildren();
    append(main, kids);
  }

  const badge = (text, kind) => el('span', { class: 'badge ' + (kind || text) }, text);
  const dash = () => el('span', { class: 'muted' }, '—');
  const link = (href, ...kids) => el('a', { href }, ...kids);
  const jobHref = (job) => '#/jobs/' + encodeURIComponent(job);
  const runHref = (job, run) => '#/runs/' + encodeURIComponent(job) + '/' + encodeURIComponent(run);

  function fact(label, value, title) {
    return el('div', { class: 'fact', title }, el('div', { class: 'label' }, label), el('div', { class: 'value' }, value));
  }

  function table(headers, rows, emptyText) {
    const head = el('tr', null, headers.map((h) => {
      const [text, cls] = Array.isArray(h) ? h : [h, null];
      return el('th', { class: cls }, text);
    }));
    const body = rows.length ? rows : [el('tr', null, el('td', { class: 'empty', colspan: headers.length }, emptyText))];
    return el('div', { class: 'table-wrap' }, el('table', null, el('thead', null, head), el('tbody', null, body)));
  }

  // ---- formatting ---------------------------------------------------------

  const numberFormat = new Intl.NumberFormat('en-US');
  const fmtInt = (n) => numberFormat.format(Math.round(n || 0));

  // Go writes a zero time as year 1; the API leaves most out (omitzero).
  const isTime = (t) => typeof t === 'string' && t !== '' && !t.startsWith('0001-');

  function fmtTime(t) {
    if (!isTime(t)) return '';
    const d = new Date(t);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }

  function fmtDuration(ms) {
    if (!(ms >= 0)) return '';
    if (ms < 1000) return `${Math.round(ms)} ms`;
    const s = ms / 1000;
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h} h ${m % 60} min`;
    return `${Math.floor(h / 24)} d ${h % 24} h`;
  }

  // fmtWhen is a time as a person reads it first: how far from now.
  function fmtWhen(t) {
    if (!isTime(t)) return '';
    const diff = new Date(t).getTime() - Date.now();
    if (Math.abs(diff) < 1500) return 'now';
    return diff > 0 ? 'in ' + fmtDuration(diff) : fmtDuration(-diff) + ' ago';
  }

  const when = (t) => (isTime(t) ? el('span', { title: fmtTime(t) }, fmtWhen(t)) : dash());

  function fmtBytes(n) {
    if (!(n > 0)) return '';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return `${n.toFixed(n < 10 && i > 0 ? 1 : 0)} ${units[i]}`;
  }

  const fmtRate = (rowsPerSec) => (rowsPerSec > 0 ? fmtInt(rowsPerSec) + ' rows/s' : '');

  function runDuration(run) {
    if (!isTime(run.started)) return NaN;
    const end = isTime(run.finished) ? new Date(run.finished).getTime() : Date.now();
    return end - new Date(run.started).getTime();
  }

  // ---- talking to the node ------------------------------------------------

  class APIError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function answer(r) {
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON: say the status */ }
    if (!r.ok) throw new APIError(r.status, (body && body.error) || `HTTP ${r.status} ${r.statusText}`);
    return body;
  }

  async function get(path) {
    return answer(await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' }));
  }

  // write sends a change. A node with a token answers 401 without it: the
  // token form asks for it, and the change is sent again with it.
  async function write(method, path, body) {
    let refused = false;
    for (;;) {
      const headers = { Accept: 'application/json' };
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token) headers.Authorization = 'Bearer ' + token;
      if (body !== undefined) headers['Content-Type'] = 'application/yaml';
      const r = await fetch(path, { method, headers, body });
      if (r.status === 401) {
        if (token) { sessionStorage.removeItem(TOKEN_KEY); refused = true; }
        showTokenState();
        if (!(await askToken(refused ? 'The node refused that token.' : ''))) {
          throw new APIError(401, 'not done: the node needs its token for changes');
        }
        continue;
      }
      return answer(r);
    }
  }

  // ---- the token form -----------------------------------------------------

  const tokenForm = document.getElementById('token-form');
  const tokenInput = document.getElementById('token-input');
  const tokenError = document.getElementById('token-error');
  let tokenWaiters = [];

  function askToken(why) {
    tokenError.textContent = why;
    tokenForm.hidden = false;
    tokenInput.value = '';
    tokenInput.focus();
    return new Promise((resolve) => tokenWaiters.push(resolve));
  }

  function closeTokenForm(token) {
    tokenForm.hidden = true;
    const waiters = tokenWaiters;
    tokenWaiters = [];
    waiters.forEach((w) => w(token));
  }

  tokenForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = tokenInput.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    showTokenState();
    closeTokenForm(token);
  });
  document.getElementById('token-cancel').addEventListener('click', () => closeTokenForm(null));

  const tokenState = document.getElementById('token-state');
  function showTokenState() { tokenState.hidden = !sessionStorage.getItem(TOKEN_KEY); }
  document.getElementById('token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
  });

  // ---- notices and liveness -----------------------------------------------

  const notice = document.getElementById('notice');
  let noticeTimer = null;
  function say(text, bad) {
    notice.textContent = text;
    notice.className = bad ? 'notice bad' : 'notice';
    notice.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => { notice.hidden = true; }, bad ? 12000 : 6000);
  }

  const live = document.getElementById('live');
  function heard(ok, why) {
    live.textContent = ok ? 'updated ' + fmtTime(new Date().toISOString()).slice(11) : 'cannot reach the node: ' + why;
    live.className = ok ? 'muted small' : 'error-text small';
  }

  // ---- actions: trigger, pause, resume ------------------------------------

  const inflight = new Set(); // "action job" while its request is out
  let follow = null; // {job, entry, until}: a trigger whose run to open

  async function act(action, job, page) {
    const key = action + ' ' + job;
    if (inflight.has(key)) return;
    inflight.add(key);
    page.refresh();
    try {
      const done = await write('POST', `/api/jobs/${encodeURIComponent(job)}/${action}`);
      if (action === 'trigger') {
        say(`Triggered ${job}: the run opens as soon as the leader starts it.`);
        // The run names the queue entry the trigger was answered with.
        follow = { job, entry: done.queued, until: Date.now() + 60000 };
        if (location.hash !== jobHref(job)) { location.hash = jobHref(job); return; }
      } else if (action === 'pause') {
        say(`Paused ${job}: its schedule fires no runs until it is resumed.`);
      } else {
        say(`Resumed ${job}.`);
      }
    } catch (e) {
      say(`Could not ${action} ${job}: ${e.message}`, true);
    } finally {
      inflight.delete(key);
      page.refresh();
    }
  }

  // actionButtons are a job's buttons.
  function actionButtons(job, paused, page) {
    const button = (action, label, primary) => el('button', {
      type: 'button', class: primary ? 'primary' : null, 'data-action': action, 'data-job': job,
      disabled: inflight.has(action + ' ' + job),
      title: {
        trigger: 'Start a run of this job now',
        pause: 'Stop the schedule from firing runs (a running run goes on)',
        resume: 'Let the schedule fire runs again',
      }[action],
      onclick: () => act(action, job, page),
    }, label);
    return [button('trigger', 'Trigger', true), paused ? button('resume', 'Resume') : button('pause', 'Pause')];
  }

  // ---- pages ----------------------------------------------------------------

  function scheduleText(spec) {
    const s = spec && spec.schedule;
    if (!s) return null;
    const parts = [];
    if (s.cron) parts.push(el('code', null, s.cron), s.timezone ? ` (${s.timezone})` : '');
    if (s.after && s.after.length) {
      if (parts.length) parts.push(' and ');
      parts.push('after ');
      s.after.forEach((a, i) => parts.push(i ? ', ' : '', link(jobHref(a), a)));
    }
    return parts.length ? parts : null;
  }

  async function clusterPage(page) {
    const c = await get('/api/nodes');
    if (!page.alive()) return 0;
    let slots = 0, free = 0, running = 0;
    const rows = c.nodes.map((n) => {
      const r = n.resources;
      if (r) { slots += r.slots; free += r.free; running += (r.running || []).length; }
      const runningList = r && r.running && r.running.length
        ? el('ul', { class: 'plain small' }, r.running.slice(0, 6).map((p) => {
          const [job, run] = p.split('/');
          return el('li', null, link(runHref(job, run), p));
        }), r.running.length > 6 ? el('li', { class: 'muted' }, `and ${r.running.length - 6} more`) : null)
        : el('span', { class: 'muted' }, 'idle');
      return el('tr', { 'data-node': n.id },
        el('td', null, el('span', { class: 'part-id' }, n.id), ' ',
          n.leader ? badge('leader') : null, ' ',
          n.id === c.self ? badge('this node', 'pending') : null, ' ',
          r && r.draining ? badge('draining') : null),
        el('td', { class: 'mono' }, n.info.addr ? link(`http://${n.info.addr}/`, n.info.addr) : dash()),
        el('td', null, n.info.host || dash(), n.info.pid ? el('span', { class: 'muted small' }, ` pid ${n.info.pid}`) : null),
        el('td', { class: 'num' }, r ? `${r.free} of ${r.slots} free` : `${n.info.slots} slots`),
        el('td', null, runningList),
        el('td', { class: 'num' }, r ? fmtBytes(r.mem_available) || dash() : dash()),
        el('td', { class: 'num' }, r ? fmtBytes(r.heap) || dash() : dash()),
        el('td', { class: 'num' }, r ? r.load.toFixed(2) : dash()),
        el('td', null, when(n.info.started)));
    });
    show(
      el('h1', null, 'Cluster'),
      el('div', { class: 'panel facts' },
        fact('Nodes', fmtInt(c.nodes.length)),
        fact('Leader', c.leader || 'none yet'),
        fact('This node', c.self),
        fact('Free slots', `${free} of ${slots}`),
        fact('Partitions running', fmtInt(running))),
      table(['Node', 'API', 'Host', ['Slots', 'num'], 'Running', ['Memory free', 'num'], ['Go heap', 'num'], ['Load/core', 'num'], 'Up since'],
        rows, 'No node has joined yet.'));
    return 5000;
  }

  async function jobsPage(page) {
    const jobs = await get('/api/jobs');
    if (!page.alive()) return 0;
    if (page.same(jobs)) return 3000;
    const rows = jobs.map((j) => {
      const s = j.schedule || {};
      const run = j.last_run;
      const next = s.next_fires && s.next_fires[0];
      return el('tr', { 'data-job': j.name },
        el('td', null, link(jobHref(j.name), el('span', { class: 'part-id' }, j.name)),
          el('div', { class: 'muted small' }, `${j.spec.source.type} → ${j.spec.sink.type}`)),
        el('td', null, scheduleText(j.spec) || el('span', { class: 'muted' }, 'by hand')),
        el('td', null, next ? (s.paused ? el('span', { class: 'muted', title: 'next tick ' + fmtTime(next) }, 'none while paused') : when(next)) : dash()),
        el('td', null, run ? [badge(run.state), ' ', link(runHref(j.name, run.id), fmtWhen(run.started) || run.id)] : el('span', { class: 'muted' }, 'never run')),
        el('td', { class: 'num' }, run ? fmtInt(run.rows) : dash()),
        el('td', null, s.paused ? badge('paused') : badge('active', 'pending')),
        el('td', null, el('div', { class: 'row-actions' }, actionButtons(j.name, s.paused, page))));
    });
    show(
      el('div', { class: 'page-head' }, el('h1', null, 'Jobs'), el('a', { class: 'button primary', href: '#/new', 'data-action': 'new' }, 'New job')),
      el('p', { class: 'muted' }, 'Every job the cluster holds. Trigger starts a run now; Pause stops the schedule from firing (a run already going goes on).'),
      table(['Job', 'Schedule', 'Next fire', 'Last run', ['Rows', 'num'], 'Status', ''], rows,
        'No jobs yet: add one with New job, datashift submit, or POST /api/jobs.'));
    return 3000;
  }

  const exampleSpec = `name: orders-to-warehouse
source: {type: postgres, dsn: "postgres://app:secret@127.0.0.1:5432/shop", table: public.orders, key: [id]}
sink: {type: mysql, dsn: "root@tcp(127.0.0.1:3306)/warehouse", table: orders, mode: upsert, create_table: true}
schedule: {cron: "*/15 * * * *"}
`;

  // newJobPage is a form for a job's spec, as datashift submit sends it:
  // the node checks it and reaches its stores before filing it. A name
  // that is taken may be replaced, once asked.
  function newJobPage() {
    const spec = el('textarea', { id: 'spec', rows: 16, spellcheck: 'false', 'aria-label': 'job spec (YAML or JSON)', placeholder: exampleSpec });
    const problem = el('div', { id: 'spec-error', class: 'error-text', role: 'alert' });
    const replace = el('button', { type: 'button', id: 'spec-replace', hidden: true }, 'Replace it');
    const submit = el('button', { type: 'submit', class: 'primary', id: 'spec-submit' }, 'Submit');
    async function send(method, path) {
      problem.textContent = '';
      replace.hidden = true;
      submit.disabled = true;
      try {
        const job = await write(method, path, spec.value);
        say(method === 'POST' ? `Submitted ${job.name}.` : `Replaced ${job.name}.`);
        location.hash = jobHref(job.name);
      } catch (e) {
        problem.textContent = e.message;
        const name = (spec.value.match(/^name:\s*["']?([^"'\s#]+)/m) || [])[1];
        if (e.status === 409 && name) {
          replace.hidden = false;
          replace.onclick = () => send('PUT', '/api/jobs/' + encodeURIComponent(name));
        }
      } finally {
        submit.disabled = false;
      }
    }
    show(
      el('div', { class: 'crumbs' }, link('#/jobs', 'Jobs'), ' / new'),
      el('h1', null, 'New job'),
      el('p', { class: 'muted' }, 'A job spec in YAML or JSON, as for datashift run (see the README for every field). The node checks it and reaches its source and sink before filing it; passwords in DSNs are never shown again.'),
      el('form', { class: 'panel spec-form', onsubmit: (e) => { e.preventDefault(); send('POST', '/api/jobs'); } },
        spec, el('div', { class: 'row-actions' }, submit, replace), problem));
    return 0;
  }

  async function jobPage(page, name) {
    const [j, runs] = await Promise.all([
      get('/api/jobs/' + encodeURIComponent(name)),
      get('/api/jobs/' + encodeURIComponent(name) + '/runs?limit=25'),
    ]);
    if (!page.alive()) return 0;
    const going = runs.some((r) => r.state === 'running');
    // A run going shows its duration so far: redrawn at every look.
    if (!(follow && follow.job === name) && page.same(j, runs, going && Date.now())) return going ? 2000 : 4000;
    const s = j.schedule || {};
    let waiting = null;
    if (follow && follow.job === name) {
      const started = runs.find((r) => r.queue_entry === follow.entry);
      if (started) {
        const to = runHref(name, started.id);
        follow = null;
        location.hash = to;
        return 0;
      }
      if (Date.now() > follow.until) follow = null;
      else waiting = el('div', { class: 'notice' }, 'Triggered: waiting for the leader to start the run…');
    }
    const runRows = runs.map((r) => el('tr', { 'data-run': r.id },
      el('td', { class: 'mono' }, link(runHref(name, r.id), r.id)),
      el('td', null, badge(r.state)),
      el('td', null, r.trigger || dash()),
      el('td', null, when(r.started)),
      el('td', { class: 'num' }, fmtDuration(runDuration(r)) || dash()),
      el('td', { class: 'num' }, fmtInt(r.rows)),
      el('td', { class: 'num' }, fmtRate(r.rows / (runDuration(r) / 1000)) || dash()),
      el('td', { class: 'why error' }, r.error || '')));
    const list = (names, none) => (names && names.length
      ? el('ul', { class: 'plain' }, names.map((n) => el('li', null, link(jobHref(n), n))))
      : el('p', { class: 'muted' }, none));
    const spec = j.spec;
    show(
      el('div', { class: 'crumbs' }, link('#/jobs', 'Jobs'), ' / ', name),
      el('div', { class: 'headline' },
        el('h1', null, name),
        s.paused ? badge('paused') : badge('active', 'pending'),
        el('span', { class: 'actions' }, actionButtons(name, s.paused, page))),
      waiting,
      el('div', { class: 'cols' },
        el('div', { class: 'panel' },
          el('h2', null, 'Schedule'),
          el('ul', { class: 'plain' },
            el('li', null, el('span', { class: 'muted' }, 'Fires: '), scheduleText(spec) || 'by hand only'),
            el('li', null, el('span', { class: 'muted' }, 'Next: '), s.next_fires && s.next_fires.length ? null : 'none',
              s.next_fires && s.next_fires.length ? el('ul', { class: 'plain next-fires' }, s.next_fires.slice(0, 3).map((t) =>
                el('li', null, when(t), ' ', el('span', { class: 'muted small' }, fmtTime(t).slice(0, 16))))) : null),
            s.paused ? el('li', null, el('span', { class: 'muted' }, 'Paused: '), isTime(s.paused_at) ? when(s.paused_at) : 'yes') : null,
            el('li', null, el('span', { class: 'muted' }, 'Missed ticks: '), s.misfire || dash(), el('span', { class: 'muted' }, ' · overlap: '), s.overlap || dash()))),
        el('div', { class: 'panel' }, el('h2', null, 'Upstream'), el('p', { class: 'muted small' }, 'Runs after these jobs succeed.'),
          list(s.after, 'None.')),
        el('div', { class: 'panel' }, el('h2', null, 'Downstream'), el('p', { class: 'muted small' }, 'These jobs run after this one succeeds.'),
          list(s.dependants, 'None.')),
        el('div', { class: 'panel' }, el('h2', null, 'Copies'),
          el('ul', { class: 'plain' },
            el('li', null, el('span', { class: 'muted' }, 'From: '), `${spec.source.type} `, el('code', null, spec.source.table || spec.source.query || spec.source.dsn)),
            el('li', null, el('span', { class: 'muted' }, 'To: '), `${spec.sink.type} `, el('code', null, spec.sink.table || spec.sink.dsn)),
            spec.sink.mode ? el('li', null, el('span', { class: 'muted' }, 'Mode: '), spec.sink.mode) : null))),
      el('h2', null, 'Runs'),
      table(['Run', 'State', 'Trigger', 'Started', ['Took', 'num'], ['Rows', 'num'], ['Rate', 'num'], 'Error'], runRows,
        'No runs yet: Trigger starts one.'),
      el('h2', null, 'Spec'),
      el('pre', { class: 'spec mono' }, JSON.stringify(spec, null, 2)));
    if (waiting) return 500;
    return going ? 2000 : 4000;
  }

  // runPage keeps its elements from one look to the next (a bar grows
  // rather than being redrawn) and measures each partition's rate between
  // two looks.
  function runPage(job, id) {
    const rows = new Map(); // partition id → {tr, cells, bar}
    const seen = new Map(); // partition id → {rows, at}
    const rates = new Map();
    let skeleton = null;

    function build() {
      const header = el('div');
      const bar = el('div', { class: 'bar wide' }, el('span'));
      const tbody = el('tbody');
      const wrap = el('div', { class: 'table-wrap' }, el('table', { class: 'partitions' },
        el('thead', null, el('tr', null,
          el('th', null, 'Partition'), el('th', null, 'State'), el('th', { class: 'num' }, 'Rows'), el('th', { class: 'num' }, 'Rate'),
          el('th', null, 'Worker'), el('th', { class: 'num' }, 'Attempts'), el('th', null, 'Error or wait'))),
        tbody));
      show(
        el('div', { class: 'crumbs' }, link('#/jobs', 'Jobs'), ' / ', link(jobHref(job), job), ' / run'),
        header, bar, el('h2', null, 'Partitions'), wrap);
      return { header, bar, tbody };
    }

    function setBar(bar, state, done, fraction) {
      bar.className = bar.className.replace(/ (running|done|failed|pending)/g, '') + ' ' + state;
      bar.firstChild.style.width = (done ? 100 : Math.max(0, Math.min(99, fraction * 100))).toFixed(1) + '%';
    }

    function partitionRow(p) {
      let r = rows.get(p.id);
      if (!r) {
        const cells = {
          id: el('span', { class: 'part-id' }), range: el('div', { class: 'range mono' }),
          bar: el('div', { class: 'bar' }, el('span')),
          state: el('td'), rows: el('td', { class: 'num rows' }), rate: el('td', { class: 'num rate' }),
          worker: el('td', { class: 'mono small' }), attempts: el('td', { class: 'num' }), why: el('td', { class: 'why' }),
        };
        const tr = el('tr', { 'data-partition': p.id },
          el('td', null, cells.id, cells.range, cells.bar), cells.state, cells.rows, cells.rate, cells.worker, cells.attempts, cells.why);
        r = { tr, cells };
        rows.set(p.id, r);
      }
      const c = r.cells;
      const cp = p.checkpoint || {};
      const done = p.state === 'done' || cp.done;
      c.id.textContent = p.id;
      c.range.textContent = p.range + (p.est_rows > 0 ? ` · est. ${fmtInt(p.est_rows)} rows` : '');
      setBar(c.bar, p.state, done, p.est_rows > 0 ? cp.rows / p.est_rows : 0);
      c.bar.title = p.est_rows > 0 ? `${fmtInt(cp.rows)} of about ${fmtInt(p.est_rows)} rows` : `${fmtInt(cp.rows)} rows`;
      c.state.replaceChildren(badge(p.state));
      c.rows.textContent = fmtInt(cp.rows);
      c.rate.textContent = p.state === 'running' ? fmtRate(rates.get(p.id)) || '…' : '—';
      c.worker.textContent = p.owner || '—';
      c.attempts.textContent = String(p.attempts || 0);
      const err = p.error || cp.error;
      c.why.className = 'why' + (err ? ' error' : p.waiting ? ' waiting' : '');
      c.why.textContent = err || p.waiting || '';
      return r.tr;
    }

    return async function render(page) {
      const run = await get(`/api/runs/${encodeURIComponent(job)}/${encodeURIComponent(id)}`);
      if (!page.alive()) return 0;
      const now = Date.now();
      const parts = run.partitions.slice().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      let copied = 0, est = 0, doneCount = 0, liveRate = 0;
      for (const p of parts) {
        const n = (p.checkpoint && p.checkpoint.rows) || 0;
        copied += n;
        est += p.est_rows > 0 ? p.est_rows : n;
        if (p.state === 'done') doneCount++;
        const before = seen.get(p.id);
        if (before && now > before.at && p.state === 'running') rates.set(p.id, ((n - before.rows) * 1000) / (now - before.at));
        if (p.state !== 'running') rates.delete(p.id);
        seen.set(p.id, { rows: n, at: now });
        liveRate += rates.get(p.id) || 0;
      }
      const going = run.state === 'running';
      const total = going ? copied : Math.max(run.rows || 0, copied);
      const took = runDuration(run);
      if (!skeleton) skeleton = build();
      document.title = `${job} ${run.state} · datashift`;
      skeleton.header.replaceChildren();
      append(skeleton.header, [
        el('div', { class: 'headline' },
          el('h1', null, 'Run ', el('span', { class: 'mono' }, run.id)),
          badge(run.state),
          el('span', { class: 'actions' }, link(jobHref(job), 'all runs of ' + job))),
        el('div', { class: 'panel facts' },
          fact('Rows', fmtInt(total), est > total ? `of about ${fmtInt(est)}` : null),
          fact('Partitions', `${doneCount} of ${parts.length} done`),
          fact('Duration', fmtDuration(took) || '—'),
          fact('Rate', going ? fmtRate(liveRate) || '…' : fmtRate(total / (took / 1000)) || '—', going ? 'now, summed over the partitions' : 'rows over the whole run'),
          fact('Started', isTime(run.started) ? fmtTime(run.started) : '—'),
          fact('Trigger', run.trigger || '—'),
          run.bad_rows ? fact('Bad rows', fmtInt(run.bad_rows)) : null),
        run.error ? el('div', { class: 'run-error' }, run.error) : null]);
      setBar(skeleton.bar, going ? 'running' : run.state === 'succeeded' ? 'done' : run.state === 'running' ? 'running' : 'failed',
        run.state === 'succeeded', est > 0 ? total / est : 0);
      const ids = new Set(parts.map((p) => p.id));
      for (const [pid, r] of rows) if (!ids.has(pid)) { r.tr.remove(); rows.delete(pid); }
      if (parts.length === 0) {
        skeleton.tbody.replaceChildren(el('tr', null, el('td', { class: 'empty', colspan: 7 }, going ? 'Planning the partitions…' : 'No partitions.')));
      } else {
        skeleton.tbody.replaceChildren(...parts.map(partitionRow));
      }
      return going ? 1000 : 15000;
    };
  }

  // ---- the router -----------------------------------------------------------

  let generation = 0;
  let timer = null;

  // start runs a page's render over and over, as often as it asks, until
  // the route changes.
  function start(render) {
    const gen = ++generation;
    clearTimeout(timer);
    let busy = false; // a look is under way
    let again = false; // and another was asked for meanwhile
    const page = {
      // alive is false once the route has changed: a look that comes back
      // then must leave the page alone.
      alive: () => gen === generation,
      // same reports whether what a page would show is what it shows
      // already: the page is then left as it is, so a selection, a
      // focused button or a click under way are not lost to a redraw.
      // Times shown relative to now are redrawn every quarter minute.
      shown: null,
      same(...what) {
        const key = JSON.stringify([what, [...inflight], follow, Math.floor(Date.now() / 15000)]);
        if (key === page.shown) return true;
        page.shown = key;
        return false;
      },
      // refresh looks again now (after a change, or to show a button busy).
      refresh() {
        if (!page.alive()) return;
        if (busy) { again = true; return; }
        clearTimeout(timer);
        timer = setTimeout(tick, 0);
      },
    };
    async function tick() {
      if (!page.alive()) return;
      busy = true;
      let next;
      try {
        next = await render(page);
        if (page.alive()) heard(true);
      } catch (e) {
        if (!page.alive()) return;
        if (e instanceof APIError) {
          heard(true);
          show(el('h1', null, e.status === 404 ? 'Not found' : 'The node answered an error'),
            el('p', { class: 'error-text' }, e.message), el('p', null, link('#/jobs', 'Back to the jobs')));
          next = 10000;
        } else {
          heard(false, e.message);
          next = 3000;
        }
      } finally {
        busy = false;
      }
      if (!page.alive() || !(next > 0)) return;
      clearTimeout(timer);
      timer = setTimeout(tick, again ? 0 : next);
      again = false;
    }
    tick();
  }

  function route() {
    const path = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
    const [first, a, b] = path;
    let nav = first;
    document.title = 'datashift';
    if (first === 'jobs' && a && !b) {
      start((page) => jobPage(page, a));
    } else if (first === 'jobs' && !a) {
      start(jobsPage);
    } else if (first === 'new' && !a) {
      nav = 'jobs';
      start(newJobPage);
    } else if (first === 'runs' && a && b && path.length === 3) {
      nav = 'jobs';
      start(runPage(a, b));
    } else if (!first || first === 'cluster') {
      nav = 'cluster';
      start(clusterPage);
    } else {
      generation++;
      clearTimeout(timer);
      show(el('h1', null, 'No such page'), el('p', null, 'Try ', link('#/cluster', 'the cluster'), ' or ', link('#/jobs', 'the jobs'), '.'));
    }
    for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('current', a.dataset.nav === nav);
  }

  showTokenState();
  window.addEventListener('hashchange', route);
  route();
})();
