/* taxiflow live dashboard: plain ES2020, Apache ECharts (global `echarts`), no build step.
 *
 * Data flow: GET /api/jobs → tabs; for the selected job GET /api/{job}/series (all outputs of every window the
 * server keeps) [+ /api/{job}/open for alerts and dispatch], then Server-Sent Events from /api/{job}/events
 * (`window` events, merged by window end). Every chart is redrawn from the in-memory windows.
 *
 * Test hooks: window.dashboard (see the bottom of this file for numbers()).
 */
'use strict';
(function () {
  // ---------------------------------------------------------------- helpers
  const $ = (sel, root) => (root || document).querySelector(sel);
  const last = (a) => (a.length ? a[a.length - 1] : null);
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const pad = (n, w) => String(n).padStart(w || 2, '0');

  /** UTC text of a time in ms: "2013-01-01 02:00:00 UTC" (seconds dropped when zero). */
  function utc(ms, withSeconds) {
    if (!isNum(ms)) return '—';
    const d = new Date(ms);
    let s = d.getUTCFullYear() + '-' + pad(d.getUTCMonth() + 1) + '-' + pad(d.getUTCDate()) + ' ' +
      pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes());
    if (withSeconds || d.getUTCSeconds() || d.getUTCMilliseconds()) s += ':' + pad(d.getUTCSeconds());
    return s + ' UTC';
  }

  /** An ISO-8601 date-time as ms; a time without a zone designator is UTC. NaN if unparsable. */
  function parseUtc(s) {
    if (isNum(s)) return s;
    if (typeof s !== 'string' || !s) return NaN;
    let t = s.trim().replace(' ', 'T');
    // more than 3 fractional digits: keep milliseconds (Date.parse is not required to accept more)
    t = t.replace(/(\.\d{3})\d+/, '$1');
    if (!/(Z|[+-]\d\d:?\d\d)$/i.test(t)) t += 'Z';
    return Date.parse(t);
  }

  function fmtInt(n) { return isNum(n) ? n.toLocaleString('en-US') : '—'; }
  function parseIntText(s) { const v = Number(String(s).replace(/,/g, '').trim()); return Number.isFinite(v) ? v : null; }
  function fmtNum(n, d) { return isNum(n) ? n.toFixed(d == null ? 2 : d) : '—'; }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  }
  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    if (attrs) for (const k of Object.keys(attrs)) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'class') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    if (children) for (const c of children) if (c != null) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    return e;
  }

  async function getJSON(url) {
    const r = await fetch(url, { cache: 'no-store' });
    let body = null;
    try { body = await r.json(); } catch (_) { body = null; }
    if (!r.ok) throw new Error((body && body.error) || ('HTTP ' + r.status + ' for ' + url));
    return body;
  }

  // ---------------------------------------------------------------- geohash
  const B32 = '0123456789bcdefghjkmnpqrstuvwxyz';
  /** Bounding box [lonMin, latMin, lonMax, latMax] of a base32 geohash, or null if it is not one. */
  function geohashBox(gh) {
    if (typeof gh !== 'string' || !gh) return null;
    let even = true;
    const lon = [-180, 180], lat = [-90, 90];
    for (const ch of gh.toLowerCase()) {
      const cd = B32.indexOf(ch);
      if (cd < 0) return null;
      for (let mask = 16; mask; mask >>= 1) {
        const r = even ? lon : lat;
        const mid = (r[0] + r[1]) / 2;
        if (cd & mask) r[0] = mid; else r[1] = mid;
        even = !even;
      }
    }
    return [lon[0], lat[0], lon[1], lat[1]];
  }

  // ---------------------------------------------------------------- maps (registered once)
  const maps = { nyc: null, world: null, worldNames: {} };

  /** Rings that jump across ±180° (Fiji, Chukotka) would be drawn as lines across the whole map: move their
   * few points on the far side to the near side (lon ± 360). Polar rings (Antarctica) are left as they are. */
  function fixAntimeridian(geom) {
    if (!geom) return;
    const polys = geom.type === 'MultiPolygon' ? geom.coordinates : geom.type === 'Polygon' ? [geom.coordinates] : [];
    for (const poly of polys) for (const ring of poly) {
      let jump = false, east = 0, minLat = 90;
      for (let i = 0; i < ring.length; i++) {
        if (ring[i][0] > 0) east++;
        if (ring[i][1] < minLat) minLat = ring[i][1];
        if (i && Math.abs(ring[i][0] - ring[i - 1][0]) > 180) jump = true;
      }
      if (!jump || minLat < -60) continue;
      const toEast = east * 2 >= ring.length;
      for (const c of ring) {
        if (toEast && c[0] < 0) c[0] += 360;
        else if (!toEast && c[0] > 0) c[0] -= 360;
      }
    }
  }
  async function ensureMap(name) {
    if (maps[name]) return maps[name];
    const gj = await getJSON('/assets/' + name + '.geo.json');
    if (name === 'world') {
      for (const f of gj.features || []) {
        const p = f.properties || (f.properties = {});
        // a few features have no ISO code: give them a unique key that no data uses
        if (!p.iso || p.iso === '-99') p.iso = 'name:' + (p.name || Math.random());
        maps.worldNames[p.iso] = p.name || p.iso;
        fixAntimeridian(f.geometry);
      }
    }
    echarts.registerMap(name, gj);
    maps[name] = gj;
    return gj;
  }

  // ---------------------------------------------------------------- state
  const KINDS = ['taxi', 'pageviews', 'ticker', 'alerts', 'dispatch'];
  /* `/?live=0` opens no event stream: a still page, e.g. for `chromium --headless --virtual-time-budget=…
   * --screenshot`, whose virtual time never advances while a stream is open. */
  const LIVE = new URLSearchParams(location.search).get('live') !== '0';
  let jobs = [];          // from /api/jobs
  let S = null;           // state of the selected job's view

  const dashboard = {
    ready: false,
    job: null,
    window: null,
    windows: [],
    delays: [],
    received: 0,
    charts: {},
    selectWindow: (end) => selectWindow(end),
    numbers: () => numbers(),
  };
  window.dashboard = dashboard;

  function newState(job, token) {
    return {
      job, token, kind: null,
      wins: new Map(),       // end → {end, emitted_ms, outputs}
      ends: [],              // ascending
      selected: null,
      es: null,
      conn: 'connecting',
      loaded: false,
      pending: [],
      lastDelay: null,
      open: [],
      openSeq: 0,
      trimTimer: null, openTimer: null, trimming: false, trimAgain: false,
      charts: {},
      drawn: {},
      renderTimer: null,
      lastRender: -Infinity,
      hasCountries: false,
      error: null,
    };
  }

  function kindOf(job, outputs) {
    const n = String(job).toLowerCase();
    if (KINDS.includes(n)) return n;
    const has = (o) => outputs.has(o);
    if (has('pickup_count') || has('trip_duration')) return 'taxi';
    if (has('total') || has('by_path') || has('today') || has('by_country')) return 'pageviews';
    if (has('ticker_averages')) return 'ticker';
    if (has('dispatch')) return 'dispatch';
    if (has('alerts')) return 'alerts';
    for (const k of KINDS) if (n.includes(k)) return k;
    return 'generic';
  }

  // ---------------------------------------------------------------- windows store
  function mergeWindow(w) {
    if (!w || !isNum(Number(w.end))) return false;
    const end = Number(w.end);
    const old = S.wins.get(end);
    if (old && isNum(old.emitted_ms) && isNum(w.emitted_ms) && w.emitted_ms < old.emitted_ms) return false;
    S.wins.set(end, { end, emitted_ms: w.emitted_ms, outputs: w.outputs || {} });
    if (!old) {
      S.ends.push(end);
      S.ends.sort((a, b) => a - b);
    }
    return true;
  }
  function syncWindowsHook() { dashboard.windows = S.ends.slice(); }
  function docs(win, output) {
    const o = win && win.outputs && win.outputs[output];
    return Array.isArray(o) ? o : [];
  }

  // ---------------------------------------------------------------- status line and tabs
  function renderTabs() {
    const nav = $('#tabs');
    nav.textContent = '';
    for (const j of jobs) {
      const a = el('a', { href: '#' + encodeURIComponent(j.job), class: 'tab' + (S && S.job === j.job ? ' active' : ''), 'data-job': j.job, text: j.job });
      if (S && S.job === j.job) a.setAttribute('aria-current', 'page');
      nav.appendChild(a);
    }
  }

  function renderStatus() {
    const st = $('#status');
    if (!S) return;
    const labels = { connecting: 'connecting', live: 'live', reconnecting: 'reconnecting', closed: 'disconnected', paused: 'not live (live=0)' };
    const parts = [];
    parts.push('<span class="conn conn-' + S.conn + '">' + esc(labels[S.conn] || S.conn) + '</span>');
    parts.push('<span class="stat"><b id="stat-windows">' + S.ends.length + '</b> windows</span>');
    parts.push('<span class="stat">last window <b id="stat-last">' + esc(S.ends.length ? utc(last(S.ends)) : '—') + '</b></span>');
    parts.push('<span class="stat">push delay <b id="stat-delay">' + (S.lastDelay == null ? '—' : esc(String(S.lastDelay)) + ' ms') + '</b></span>');
    parts.push('<span class="stat">events <b id="stat-events">' + dashboard.received + '</b></span>');
    const info = jobs.find((j) => j.job === S.job);
    if (info && isNum(info.watermark)) parts.push('<span class="stat">watermark <b>' + esc(utc(info.watermark)) + '</b></span>');
    if (info && isNum(info.dead_letters)) parts.push('<span class="stat' + (info.dead_letters ? ' warn' : '') + '">dead letters <b>' + fmtInt(info.dead_letters) + '</b></span>');
    if (S.error) parts.push('<span class="stat err">' + esc(S.error) + '</span>');
    st.innerHTML = parts.join(' ');
  }

  // ---------------------------------------------------------------- job selection
  function jobFromHash() {
    let h = location.hash.replace(/^#/, '');
    try { h = decodeURIComponent(h); } catch (_) { /* keep raw */ }
    if (jobs.some((j) => j.job === h)) return h;
    return jobs.length ? jobs[0].job : null;
  }

  async function loadJobs() {
    try {
      const r = await getJSON('/api/jobs');
      jobs = (r && Array.isArray(r.jobs)) ? r.jobs : [];
    } catch (e) {
      jobs = [];
      $('#status').innerHTML = '<span class="conn conn-closed">offline</span><span class="stat err">' + esc(e.message) + '</span>';
    }
    if (!jobs.length) {
      $('#view').innerHTML = '<p class="placeholder">No job yet; retrying…</p>';
      setTimeout(loadJobs, 2000);
      return;
    }
    selectJob(jobFromHash());
  }

  function teardown() {
    if (!S) return;
    if (S.es) S.es.close();
    clearTimeout(S.trimTimer);
    clearTimeout(S.openTimer);
    clearTimeout(S.renderTimer);
    for (const c of Object.values(S.charts)) if (c && !c.isDisposed()) c.dispose();
    S = null;
  }

  let tokenSeq = 0;
  async function selectJob(job) {
    if (S && S.job === job) return;
    teardown();
    const token = ++tokenSeq;
    S = newState(job, token);
    const st = S;
    dashboard.ready = false;
    dashboard.job = job;
    dashboard.window = null;
    dashboard.windows = [];
    dashboard.delays = [];
    dashboard.received = 0;
    dashboard.charts = {};
    renderTabs();
    renderStatus();
    $('#view').innerHTML = '<p class="placeholder">Loading ' + esc(job) + '…</p>';
    openEvents(st);
    try {
      const base = '/api/' + encodeURIComponent(job);
      const series = await getJSON(base + '/series');
      if (S !== st) return;
      for (const w of (series && series.windows) || []) mergeWindow(w);
      const outs = new Set();
      for (const w of st.wins.values()) for (const k of Object.keys(w.outputs || {})) outs.add(k);
      st.kind = kindOf(job, outs);
      if (st.kind === 'alerts' || st.kind === 'dispatch') {
        const open = await getJSON(base + '/open').catch(() => ({ open: [] }));
        if (S !== st) return;
        st.open = (open && Array.isArray(open.open)) ? open.open : [];
      }
      if (st.kind === 'taxi') await ensureMap('nyc');
      if (st.kind === 'pageviews') await ensureMap('world');
      if (S !== st) return;
      st.selected = last(st.ends);
      buildView();
      st.loaded = true;
      // events that came while the initial data loaded (then ask which windows the server still keeps)
      const early = st.pending.splice(0);
      for (const w of early) { mergeWindow(w); if (st.selected == null || st.selected < last(st.ends)) st.selected = last(st.ends); }
      flushRender();
      dashboard.ready = true;
      if (early.length) scheduleTrim();
    } catch (e) {
      if (S !== st) return;
      st.error = e.message;
      $('#view').innerHTML = '<p class="placeholder err">Could not load ' + esc(job) + ': ' + esc(e.message) + ' — retrying…</p>';
      renderStatus();
      setTimeout(() => { if (S === st) { teardown(); selectJob(job); } }, 3000);
    }
  }

  function openEvents(st) {
    if (!LIVE || typeof EventSource === 'undefined') { st.conn = 'paused'; return; }
    const es = new EventSource('/api/' + encodeURIComponent(st.job) + '/events');
    st.es = es;
    let hadError = false;
    es.onopen = () => {
      if (S !== st) return;
      st.conn = 'live';
      renderStatus();
      if (hadError && st.loaded) resync(st);
      hadError = false;
    };
    es.onerror = () => {
      if (S !== st) return;
      hadError = true;
      st.conn = es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
      renderStatus();
    };
    es.addEventListener('window', (ev) => {
      if (S !== st) return;
      let w;
      try { w = JSON.parse(ev.data); } catch (_) { return; }
      dashboard.received += 1;
      if (w && isNum(w.emitted_ms)) {
        const d = Date.now() - w.emitted_ms;
        dashboard.delays.push(d);
        st.lastDelay = d;
      }
      if (!st.loaded) { st.pending.push(w); renderStatus(); return; }
      onWindow(w);
    });
  }

  /** After a reconnect: refetch everything the server keeps (events may have been missed). */
  async function resync(st) {
    try {
      const series = await getJSON('/api/' + encodeURIComponent(st.job) + '/series');
      if (S !== st) return;
      const wasLatest = st.selected == null || st.selected === last(st.ends);
      const listed = new Set();
      for (const w of (series && series.windows) || []) { mergeWindow(w); listed.add(Number(w.end)); }
      dropUnlisted(listed);
      if (wasLatest) st.selected = last(st.ends);
      flushRender();
      if (st.kind === 'alerts' || st.kind === 'dispatch') scheduleOpen();
    } catch (_) { /* the status line shows the connection state */ }
  }

  function onWindow(w) {
    const wasLatest = S.selected == null || S.selected === last(S.ends);
    if (!mergeWindow(w)) return;
    if (wasLatest) S.selected = last(S.ends);
    syncWindowsHook();
    dashboard.window = S.selected;
    // an isolated event is drawn at once; a burst is drawn at most every RENDER_MIN_MS (the charts take tens of ms)
    if (!S.renderTimer && performance.now() - S.lastRender >= RENDER_MIN_MS) flushRender();
    else requestRender();
    scheduleTrim();
    if (S.kind === 'alerts' || S.kind === 'dispatch') scheduleOpen();
  }

  const RENDER_MIN_MS = 200;
  function requestRender() {
    if (!S || S.renderTimer) return;
    const st = S;
    st.renderTimer = setTimeout(() => { if (S === st) flushRender(); }, Math.max(0, st.lastRender + RENDER_MIN_MS - performance.now()));
  }
  function flushRender() {
    if (!S) return;
    clearTimeout(S.renderTimer);
    S.renderTimer = null;
    renderAll();
    S.lastRender = performance.now();
  }

  /** Keep the windows the server keeps: drop the ones it no longer lists (older than its newest listed). */
  function dropUnlisted(listed) {
    let maxListed = -Infinity;
    for (const e of listed) if (e > maxListed) maxListed = e;
    const before = S.ends.length;
    S.ends = S.ends.filter((e) => listed.has(e) || e > maxListed);
    const kept = new Set(S.ends);
    for (const e of [...S.wins.keys()]) if (!kept.has(e)) S.wins.delete(e);
    if (S.ends.length !== before && S.selected != null && !S.wins.has(S.selected)) {
      const next = S.ends.find((e) => e >= S.selected);
      S.selected = next != null ? next : last(S.ends);
    }
    return S.ends.length !== before;
  }

  /** After events: ask the server which windows it keeps (at most every 400 ms while events come, and once
   * after the last), drop those it no longer lists, and fetch any it lists that the page lacks or has an older
   * emission of (an event the stream did not deliver). */
  function scheduleTrim() {
    const st = S;
    if (st.trimTimer || st.trimming) { st.trimAgain = true; return; }
    st.trimTimer = setTimeout(() => { st.trimTimer = null; syncWithServer(st); }, 400);
  }

  async function syncWithServer(st) {
    st.trimming = true;
    st.trimAgain = false;
    const base = '/api/' + encodeURIComponent(st.job);
    try {
      const [r, js] = await Promise.all([getJSON(base + '/windows'), getJSON('/api/jobs').catch(() => null)]);
      if (S !== st) return;
      if (js && Array.isArray(js.jobs) && js.jobs.length) {
        const names = (a) => a.map((j) => j.job).join('\n');
        const changed = names(js.jobs) !== names(jobs);
        jobs = js.jobs;
        if (changed) renderTabs();
      }
      const rows = (r && Array.isArray(r.windows)) ? r.windows : [];
      const listed = new Set(rows.map((w) => Number(w.end)));
      let changed = dropUnlisted(listed);
      const missing = rows.filter((w) => {
        const have = st.wins.get(Number(w.end));
        return !have || (isNum(w.emitted_ms) && isNum(have.emitted_ms) && have.emitted_ms < w.emitted_ms);
      });
      if (missing.length) {
        const got = missing.length > 4
          ? (((await getJSON(base + '/series')) || {}).windows || [])
          : await Promise.all(missing.map((w) => getJSON(base + '/window/' + Number(w.end)).catch(() => null)));
        if (S !== st) return;
        const wasLatest = st.selected == null || st.selected === last(st.ends);
        for (const w of got) if (w && listed.has(Number(w.end))) changed = mergeWindow(w) || changed;
        if (wasLatest) st.selected = last(st.ends);
      }
      if (changed) flushRender(); else renderStatus();
    } catch (_) {
      /* keep what we have; the next event tries again */
    } finally {
      st.trimming = false;
      if (S === st && st.trimAgain) scheduleTrim();
    }
  }

  function scheduleOpen() {
    const st = S;
    clearTimeout(st.openTimer);
    st.openTimer = setTimeout(async () => {
      const seq = ++st.openSeq;
      try {
        const r = await getJSON('/api/' + encodeURIComponent(st.job) + '/open');
        if (S !== st || seq !== st.openSeq) return;
        st.open = (r && Array.isArray(r.open)) ? r.open : [];
        renderOpen();
        renderStatus();
      } catch (_) { /* keep the last table */ }
    }, 150);
  }

  // ---------------------------------------------------------------- view skeletons
  function chartBox(id) { return el('div', { class: 'chart', id }); }

  function sliderControls() {
    return el('div', { class: 'controls' }, [
      el('label', { for: 'slider', class: 'ctl-label', text: 'Window' }),
      el('input', { type: 'range', id: 'slider', min: '0', max: '0', step: '1', value: '0' }),
      el('span', { id: 'window-label', class: 'window-label', text: '—' }),
      el('span', { id: 'window-pos', class: 'muted' }),
    ]);
  }

  function buildView() {
    const view = $('#view');
    view.textContent = '';
    view.className = 'kind-' + S.kind;
    const k = S.kind;
    if (k === 'taxi') {
      const ctl = sliderControls();
      ctl.appendChild(el('label', { for: 'min-pickups', class: 'ctl-label', text: 'Min pickups' }));
      ctl.appendChild(el('input', { type: 'number', id: 'min-pickups', min: '0', step: '1', value: '3' }));
      ctl.appendChild(el('span', { id: 'cell-count', class: 'muted' }));
      view.appendChild(ctl);
      view.appendChild(el('div', { class: 'grid two' }, [
        el('section', { class: 'panel' }, [chartBox('chart-map')]),
        el('section', { class: 'panel' }, [chartBox('chart-durations')]),
      ]));
    } else if (k === 'pageviews') {
      view.appendChild(sliderControls());
      view.appendChild(el('div', { class: 'grid two' }, [
        el('section', { class: 'panel' }, [chartBox('chart-pv')]),
        el('section', { class: 'panel', id: 'countries-panel' }, [
          chartBox('chart-countries'),
          el('div', { id: 'no-countries', class: 'no-data', hidden: '', text: 'no --geoip: no countries' }),
          el('div', { id: 'unknown-countries', class: 'overlay-note', text: '' }),
        ]),
      ]));
      const table = el('table', { id: 'top-pages', class: 'data' }, [
        el('caption', { id: 'top-caption', text: 'Top pages' }),
        el('thead', null, [el('tr', null, [el('th', { text: '#' , class: 'rank'}), el('th', { text: 'path' }), el('th', { class: 'num', text: 'PV' }), el('th', { class: 'num', text: 'UV' })])]),
        el('tbody'),
      ]);
      view.appendChild(el('div', { class: 'grid two' }, [
        el('section', { class: 'panel' }, [table]),
        el('section', { class: 'panel' }, [el('div', { id: 'today', class: 'today' })]),
      ]));
    } else if (k === 'ticker') {
      view.appendChild(el('section', { class: 'panel' }, [chartBox('chart-prices')]));
    } else if (k === 'alerts' || k === 'dispatch') {
      const cols = openColumns();
      const table = el('table', { id: 'open', class: 'data' }, [
        el('caption', { id: 'open-caption', text: k === 'dispatch' ? 'Open work orders' : 'Open alerts' }),
        el('thead', null, [el('tr', null, cols.map((c) => el('th', { class: c.num ? 'num' : '', text: c.label })))]),
        el('tbody'),
      ]);
      view.appendChild(el('div', { class: 'grid two' }, [
        el('section', { class: 'panel scroll' }, [table]),
        el('section', { class: 'panel' }, [chartBox('chart-timeline')]),
      ]));
    } else {
      view.appendChild(el('section', { class: 'panel' }, [
        el('table', { id: 'generic', class: 'data' }, [el('caption', { text: 'Windows' }), el('thead'), el('tbody')]),
      ]));
    }
    initCharts();
    wireControls();
  }

  function initCharts() {
    const mk = (name, id) => {
      const node = document.getElementById(id);
      if (!node) return;
      const c = echarts.init(node, null, { renderer: 'canvas' });
      S.charts[name] = c;
    };
    if (S.kind === 'taxi') { mk('map', 'chart-map'); mk('durations', 'chart-durations'); }
    if (S.kind === 'pageviews') { mk('pv', 'chart-pv'); mk('countries', 'chart-countries'); }
    if (S.kind === 'ticker') mk('prices', 'chart-prices');
    if (S.kind === 'alerts' || S.kind === 'dispatch') mk('timeline', 'chart-timeline');
    dashboard.charts = S.charts;
    if (S.charts.map) {
      S.charts.map.setOption(taxiMapBase());
    }
    if (S.charts.durations) {
      S.charts.durations.setOption(lineBase('Average trip duration to the airports', 'minutes', ['JFK', 'LGA']));
      S.charts.durations.on('click', (p) => { if (p && Array.isArray(p.value)) selectWindow(p.value[0]); });
    }
    if (S.charts.pv) {
      S.charts.pv.setOption(lineBase('Page views and unique visitors per window', 'count', ['PV', 'UV']));
      S.charts.pv.on('click', (p) => { if (p && Array.isArray(p.value)) selectWindow(p.value[0]); });
    }
    if (S.charts.countries) S.charts.countries.setOption(worldBase());
    if (S.charts.prices) S.charts.prices.setOption(pricesBase());
    if (S.charts.timeline) S.charts.timeline.setOption(timelineBase());
  }

  function wireControls() {
    const slider = $('#slider');
    const onSlide = () => {
      const e = S.ends[Number(slider.value)];
      if (e != null && e !== S.selected) selectWindow(e);
    };
    if (slider) { slider.addEventListener('input', onSlide); slider.addEventListener('change', onSlide); }
    const min = $('#min-pickups');
    if (min) { min.addEventListener('input', () => renderSelection()); min.addEventListener('change', () => renderSelection()); }
  }

  // ---------------------------------------------------------------- chart option bases
  const COLORS = ['#2f6fdf', '#e8684a', '#3aa675', '#9a60b4', '#f2a31b', '#1fa2b8', '#d14a8b', '#6b7a8f'];
  const AXIS_LABEL = { color: '#333', fontSize: 12, hideOverlap: true };
  const TITLE = (text) => ({ text, left: 'center', top: 6, textStyle: { fontSize: 15, fontWeight: 600, color: '#1d2330' }, subtextStyle: { color: '#555', fontSize: 12 } });

  function axisTooltip(unit) {
    return {
      trigger: 'axis',
      axisPointer: { type: 'line', label: { show: false } },
      formatter: (ps) => {
        if (!Array.isArray(ps) || !ps.length) return '';
        const t = ps[0].value && ps[0].value[0];
        let s = '<b>' + esc(utc(t)) + '</b>';
        for (const p of ps) {
          if (p.seriesId === '_sel') continue;
          const v = p.value && p.value[1];
          s += '<br>' + p.marker + esc(p.seriesName) + ': <b>' + (Number.isInteger(v) ? fmtInt(v) : fmtNum(v, 2)) + '</b>' + (unit ? ' ' + esc(unit) : '');
        }
        return s;
      },
    };
  }

  function timeAxis(name) {
    return {
      type: 'time', name, nameLocation: 'middle', nameGap: 30, nameTextStyle: { color: '#555' },
      axisLabel: Object.assign({}, AXIS_LABEL, { formatter: { year: '{yyyy}', month: '{yyyy}-{MM}', day: '{MM}-{dd}', hour: '{HH}:{mm}', minute: '{HH}:{mm}', second: '{HH}:{mm}:{ss}', millisecond: '{HH}:{mm}:{ss}' } }),
      axisLine: { lineStyle: { color: '#888' } },
      splitLine: { show: false },
    };
  }

  function lineBase(title, yName, names) {
    return {
      useUTC: true,
      color: COLORS,
      animation: false, // a window is drawn complete at once (screenshots, quick updates)
      title: TITLE(title),
      legend: { top: 44, data: names },
      tooltip: axisTooltip(yName === 'minutes' ? 'min' : ''),
      grid: { left: 56, right: 28, top: 96, bottom: 84 },
      xAxis: timeAxis('window end (UTC)'),
      yAxis: { type: 'value', name: yName, nameTextStyle: { color: '#555' }, axisLabel: AXIS_LABEL, splitLine: { lineStyle: { color: '#eceef2' } } },
      dataZoom: [{ type: 'inside', filterMode: 'none' }, { type: 'slider', height: 18, bottom: 8, filterMode: 'none', labelFormatter: (v) => utc(v) }],
      series: names.map((n) => ({ id: n, name: n, type: 'line', showSymbol: true, symbolSize: 7, connectNulls: false, data: [] }))
        .concat([{ id: '_sel', name: 'selected window', type: 'line', silent: true, data: [], markLine: selectionMarkLine(null) }]),
    };
  }

  function selectionMarkLine(end) {
    return {
      silent: true, symbol: 'none', animation: false,
      lineStyle: { color: '#7a8290', type: 'dashed', width: 1 },
      label: { formatter: 'selected', color: '#555', position: 'insideEndTop' },
      data: end == null ? [] : [{ xAxis: end }],
    };
  }

  function taxiMapBase() {
    return {
      useUTC: true,
      title: Object.assign(TITLE('Pickup hot spots'), { backgroundColor: 'rgba(255,255,255,0.88)', padding: [4, 10], borderRadius: 4 }),
      tooltip: {
        trigger: 'item',
        formatter: (p) => {
          if (p && p.seriesId === 'cells' && Array.isArray(p.value)) return 'geohash <b>' + esc(p.name) + '</b><br>pickups: <b>' + fmtInt(p.value[4]) + '</b>';
          return p && p.componentType === 'geo' ? esc(p.name) : '';
        },
      },
      geo: {
        map: 'nyc', roam: true, center: [-73.95, 40.73], zoom: 3.2, scaleLimit: { min: 0.8, max: 60 },
        left: 10, right: 10, top: 56, bottom: 10,
        selectedMode: false,
        label: { show: false },
        itemStyle: { areaColor: '#eef0f3', borderColor: '#8c929c', borderWidth: 1 },
        emphasis: { disabled: true },
        tooltip: { show: true },
      },
      visualMap: {
        type: 'continuous', seriesIndex: 0, dimension: 4, min: 0, max: 10, calculable: true, realtime: true,
        left: 16, bottom: 24, itemHeight: 140, text: ['more pickups', 'fewer'], textStyle: { color: '#333' },
        inRange: { color: ['#ffe08a', '#fd8d3c', '#e31a1c', '#800026'] },
        backgroundColor: 'rgba(255,255,255,0.85)', padding: 8,
      },
      series: [{
        id: 'cells', name: 'pickups', type: 'custom', coordinateSystem: 'geo', geoIndex: 0,
        progressive: 0, animation: false, tooltip: { show: true },
        renderItem: (params, api) => {
          const p0 = api.coord([api.value(0), api.value(1)]);
          const p1 = api.coord([api.value(2), api.value(3)]);
          let x = Math.min(p0[0], p1[0]), y = Math.min(p0[1], p1[1]);
          let w = Math.abs(p1[0] - p0[0]), h = Math.abs(p1[1] - p0[1]);
          if (w < 2) { x -= (2 - w) / 2; w = 2; }
          if (h < 2) { y -= (2 - h) / 2; h = 2; }
          return {
            type: 'rect',
            shape: { x, y, width: w, height: h },
            style: { fill: api.visual('color'), stroke: 'rgba(60,20,0,0.35)', lineWidth: 0.5 },
            emphasis: { style: { stroke: '#000', lineWidth: 1.5 } },
          };
        },
        data: [],
      }],
    };
  }

  function worldBase() {
    return {
      animation: false,
      title: TITLE('Page views by country'),
      tooltip: {
        trigger: 'item',
        formatter: (p) => {
          if (!p) return '';
          const name = maps.worldNames[p.name] || p.name;
          const v = p.value;
          return esc(name) + ' (' + esc(p.name) + ')<br>PV: <b>' + (isNum(v) ? fmtInt(v) : '0') + '</b>';
        },
      },
      visualMap: {
        type: 'continuous', seriesIndex: 0, min: 0, max: 10, calculable: true, left: 16, bottom: 24, itemHeight: 120,
        text: ['more PV', 'fewer'], textStyle: { color: '#333' },
        inRange: { color: ['#cfe3f7', '#5b9bd5', '#1f4e9c', '#0b2a63'] },
      },
      series: [{
        id: 'countries', name: 'PV', type: 'map', map: 'world', nameProperty: 'iso', roam: true,
        top: 56, bottom: 16, left: 10, right: 10, scaleLimit: { min: 0.8, max: 20 },
        selectedMode: false,
        label: { show: false },
        itemStyle: { areaColor: '#f1f2f4', borderColor: '#a4a9b1', borderWidth: 0.5 },
        emphasis: { label: { show: false }, itemStyle: { areaColor: '#ffd166' } },
        data: [],
      }],
    };
  }

  function pricesBase() {
    const o = lineBase('Average price per ticker (1-minute windows)', 'price', []);
    o.xAxis = timeAxis('event_time (UTC)');
    o.yAxis.scale = true;
    o.legend = { top: 44, type: 'scroll' };
    o.series = [];
    return o;
  }

  function timelineBase() {
    const names = S.kind === 'dispatch' ? ['dispatched', 'closed'] : ['alerts', 'revokes'];
    return {
      useUTC: true,
      animation: false, // a window is drawn complete at once (screenshots, quick updates)
      color: S.kind === 'dispatch' ? ['#2f6fdf', '#9aa3b2'] : ['#e8684a', '#3aa675'],
      title: TITLE(S.kind === 'dispatch' ? 'Work orders dispatched and closed per minute' : 'Alerts and revokes per minute'),
      legend: { top: 44, data: names },
      tooltip: axisTooltip(''),
      grid: { left: 48, right: 24, top: 96, bottom: 84 },
      xAxis: timeAxis('minute bucket end (UTC)'),
      yAxis: { type: 'value', name: 'messages', minInterval: 1, nameTextStyle: { color: '#555' }, axisLabel: AXIS_LABEL, splitLine: { lineStyle: { color: '#eceef2' } } },
      dataZoom: [{ type: 'inside', filterMode: 'none' }, { type: 'slider', height: 18, bottom: 8, filterMode: 'none', labelFormatter: (v) => utc(v) }],
      series: names.map((n) => ({ id: n, name: n, type: 'bar', stack: 'n', barMaxWidth: 28, data: [] })),
    };
  }

  // ---------------------------------------------------------------- rendering
  /** "2013-01-01 02:00 – 2016-01-30 11:00 UTC · 101 windows": the subtitle of the charts over all windows. */
  function rangeText(ends) {
    if (!ends.length) return 'no windows yet';
    const a = utc(ends[0]), b = utc(last(ends));
    const n = ends.length + (ends.length === 1 ? ' window' : ' windows');
    return (ends.length === 1 ? a : a.replace(/ UTC$/, '') + ' – ' + b) + ' · ' + n;
  }

  function renderAll() {
    if (!S || !S.loaded) return;
    syncWindowsHook();
    const k = S.kind;
    if (k === 'taxi') { renderDurations(); }
    if (k === 'pageviews') { renderPv(); renderToday(); }
    if (k === 'ticker') renderPrices();
    if (k === 'alerts' || k === 'dispatch') { renderTimeline(); renderOpen(); }
    if (k === 'generic') renderGeneric();
    renderSelection();
    renderStatus();
  }

  function selectWindow(end) {
    if (!S || !S.loaded) return null;
    end = Number(end);
    if (!S.ends.length || !Number.isFinite(end)) return null;
    if (!S.wins.has(end)) {
      // nearest known window
      let best = S.ends[0];
      for (const e of S.ends) if (Math.abs(e - end) < Math.abs(best - end)) best = e;
      end = best;
    }
    S.selected = end;
    if (S.renderTimer) flushRender(); else renderSelection();
    return end;
  }

  /** Slider, window label and the parts that show the selected window. */
  function renderSelection() {
    if (!S || !S.loaded) return;
    if (S.selected != null && !S.wins.has(S.selected)) S.selected = last(S.ends);
    dashboard.window = S.selected;
    const slider = $('#slider');
    if (slider) {
      const idx = S.ends.indexOf(S.selected);
      slider.max = String(Math.max(0, S.ends.length - 1));
      slider.value = String(Math.max(0, idx));
      slider.disabled = S.ends.length < 2;
      $('#window-label').textContent = S.selected == null ? 'no window' : 'ending ' + utc(S.selected);
      $('#window-pos').textContent = S.ends.length ? '(' + (idx + 1) + ' of ' + S.ends.length + (idx === S.ends.length - 1 ? ', latest' : '') + ')' : '';
    }
    if (S.kind === 'taxi') renderTaxiMap();
    if (S.kind === 'pageviews') { renderCountries(); renderTopPages(); }
    const mark = selectionMarkLine(S.selected);
    if (S.charts.durations) S.charts.durations.setOption({ series: [{ id: '_sel', markLine: mark }] });
    if (S.charts.pv) S.charts.pv.setOption({ series: [{ id: '_sel', markLine: mark }] });
  }

  // ---- taxi
  function minPickups() {
    const inp = $('#min-pickups');
    const v = inp ? Number(inp.value) : 3;
    return inp && inp.value !== '' && Number.isFinite(v) ? v : 0;
  }

  /** True when `part` already shows the selected window as it is now (same window object, same extra state). */
  function unchanged(part, extra) {
    const key = { end: S.selected, win: S.wins.get(S.selected), extra };
    const old = S.drawn[part];
    S.drawn[part] = key;
    return !!old && old.end === key.end && old.win === key.win && old.extra === key.extra;
  }

  function renderTaxiMap() {
    const chart = S.charts.map;
    if (!chart) return;
    const min = minPickups();
    if (unchanged('map', min)) return;
    const counts = new Map();
    for (const d of docs(S.wins.get(S.selected), 'pickup_count')) {
      if (!d || typeof d.location !== 'string' || !isNum(d.pickup_count)) continue;
      counts.set(d.location, (counts.get(d.location) || 0) + d.pickup_count);
    }
    const data = [];
    let max = 0;
    for (const [gh, n] of counts) {
      if (n < min) continue;
      const b = geohashBox(gh);
      if (!b) continue;
      data.push({ name: gh, value: [b[0], b[1], b[2], b[3], n] });
      if (n > max) max = n;
    }
    data.sort((a, b) => a.value[4] - b.value[4]); // hottest drawn on top
    const lo = Math.max(0, min);
    chart.setOption({
      title: { subtext: S.selected == null ? 'no window' : 'window ending ' + utc(S.selected) + ' · pickup_count ≥ ' + min },
      visualMap: { min: lo, max: Math.max(lo + 1, max), range: null },
      series: [{ id: 'cells', data }],
    });
    const cc = $('#cell-count');
    if (cc) cc.textContent = data.length + ' of ' + counts.size + ' cells shown';
  }

  function renderDurations() {
    const chart = S.charts.durations;
    if (!chart) return;
    const per = { JFK: [], LGA: [] };
    for (const end of S.ends) {
      const acc = {};
      for (const d of docs(S.wins.get(end), 'trip_duration')) {
        if (!d || !isNum(d.avg_trip_duration)) continue;
        const a = d.airport_code;
        if (!per[a]) continue;
        (acc[a] || (acc[a] = [])).push(d.avg_trip_duration);
      }
      for (const a of Object.keys(acc)) {
        let s = 0;
        for (const v of acc[a]) s += v;
        per[a].push([end, s / acc[a].length]);
      }
    }
    chart.setOption({ title: { subtext: rangeText(S.ends) }, series: [{ id: 'JFK', data: per.JFK }, { id: 'LGA', data: per.LGA }] });
  }

  // ---- pageviews
  function renderPv() {
    const chart = S.charts.pv;
    if (!chart) return;
    const pv = [], uv = [];
    for (const end of S.ends) {
      const t = docs(S.wins.get(end), 'total')[0];
      if (!t) continue;
      if (isNum(t.pv)) pv.push([end, t.pv]);
      if (isNum(t.uv)) uv.push([end, t.uv]);
    }
    chart.setOption({ title: { subtext: rangeText(S.ends) }, series: [{ id: 'PV', data: pv }, { id: 'UV', data: uv }] });
  }

  function renderToday() {
    const box = $('#today');
    if (!box) return;
    let best = null;
    for (const end of S.ends) for (const d of docs(S.wins.get(end), 'today')) {
      if (!d) continue;
      const k = isNum(d.window_end_ms) ? d.window_end_ms : end;
      if (!best || k >= best.k) best = { k, d };
    }
    box.textContent = '';
    box.appendChild(el('h2', { text: 'Today so far' }));
    if (!best) { box.appendChild(el('p', { class: 'muted', text: 'no today row yet' })); return; }
    box.appendChild(el('div', { class: 'day', 'data-k': 'day', text: String(best.d.day) }));
    box.appendChild(el('div', { class: 'kpis' }, [
      el('div', { class: 'kpi' }, [el('span', { class: 'big', 'data-k': 'pv', text: fmtInt(best.d.pv) }), el('span', { class: 'kpi-label', text: 'page views' })]),
      el('div', { class: 'kpi' }, [el('span', { class: 'big', 'data-k': 'uv', text: fmtInt(best.d.uv) }), el('span', { class: 'kpi-label', text: 'unique visitors' })]),
    ]));
    box.appendChild(el('p', { class: 'muted', text: 'as of the window ending ' + utc(best.k) }));
  }

  function renderTopPages() {
    const table = $('#top-pages');
    if (!table) return;
    if (unchanged('top')) return;
    const rows = docs(S.wins.get(S.selected), 'by_path').filter((d) => d && typeof d.path === 'string' && isNum(d.pv));
    rows.sort((a, b) => (b.pv - a.pv) || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    const top = rows.slice(0, 10);
    const tb = table.tBodies[0];
    tb.textContent = '';
    top.forEach((d, i) => {
      tb.appendChild(el('tr', null, [
        el('td', { class: 'rank', text: String(i + 1) }),
        el('td', { class: 'path', 'data-k': 'path', title: d.path, text: d.path }),
        el('td', { class: 'num', 'data-k': 'pv', text: fmtInt(d.pv) }),
        el('td', { class: 'num', 'data-k': 'uv', text: isNum(d.uv) ? fmtInt(d.uv) : '' }),
      ]));
    });
    if (!top.length) tb.appendChild(el('tr', { class: 'empty' }, [el('td', { colspan: '4', class: 'muted', text: 'no pages in this window' })]));
    $('#top-caption').textContent = 'Top pages · window ending ' + utc(S.selected) + ' · ' + rows.length + ' paths';
  }

  function renderCountries() {
    const chart = S.charts.countries;
    const node = $('#chart-countries');
    const none = $('#no-countries');
    const unk = $('#unknown-countries');
    S.hasCountries = false;
    for (const w of S.wins.values()) if (docs(w, 'by_country').length) { S.hasCountries = true; break; }
    if (unchanged('countries', S.hasCountries)) return;
    if (!S.hasCountries) {
      node.hidden = true;
      none.hidden = false;
      unk.textContent = '';
      unk.hidden = true;
      if (chart) chart.setOption({ series: [{ id: 'countries', data: [] }] });
      return;
    }
    const wasHidden = node.hidden;
    node.hidden = false;
    none.hidden = true;
    if (wasHidden && chart) chart.resize();
    const per = new Map();
    let unknown = 0, max = 0;
    for (const d of docs(S.wins.get(S.selected), 'by_country')) {
      if (!d || typeof d.country !== 'string' || !isNum(d.pv)) continue;
      if (d.country === '--') { unknown += d.pv; continue; }
      per.set(d.country, (per.get(d.country) || 0) + d.pv);
    }
    const data = [];
    for (const [iso, pv] of per) { data.push({ name: iso, value: pv }); if (pv > max) max = pv; }
    unk.hidden = false;
    unk.textContent = 'unknown: ' + unknown;
    unk.setAttribute('data-unknown', String(unknown));
    chart.setOption({
      title: { subtext: 'window ending ' + utc(S.selected) },
      visualMap: { min: 0, max: Math.max(1, max), range: null },
      series: [{ id: 'countries', data }],
    });
  }

  // ---- ticker
  function renderPrices() {
    const chart = S.charts.prices;
    if (!chart) return;
    const per = new Map(); // ticker → Map(ms → price)
    for (const end of S.ends) {
      const w = S.wins.get(end);
      for (const out of Object.keys(w.outputs || {})) {
        for (const d of docs(w, out)) {
          if (!d || typeof d.ticker !== 'string') continue;
          if (!per.has(d.ticker)) per.set(d.ticker, new Map());
          if (!isNum(d.price)) continue;
          const t = parseUtc(d.event_time);
          if (!Number.isFinite(t)) continue;
          per.get(d.ticker).set(t, d.price);
        }
      }
    }
    const names = [...per.keys()].filter((t) => per.get(t).size).sort();
    const series = names.map((t) => ({
      id: 'ticker:' + t, name: t, type: 'line', showSymbol: false, symbolSize: 5, emphasis: { focus: 'series' },
      data: [...per.get(t).entries()].sort((a, b) => a[0] - b[0]),
    }));
    chart.setOption({ title: { subtext: rangeText(S.ends) }, legend: { top: 44, type: 'scroll', data: names }, series }, { replaceMerge: ['series'] });
  }

  // ---- alerts / dispatch
  function openColumns() {
    if (S.kind === 'dispatch') {
      return [
        { key: 'device', label: 'device', num: true },
        { key: 'alert_type', label: 'alert_type' },
        { key: 'priority', label: 'priority', num: true },
        { key: 'alert_id', label: 'alert_id', fmt: (v) => String(v == null ? '' : v).slice(0, 12) },
        { key: 'dispatch_time', label: 'dispatch_time' },
      ];
    }
    return [
      { key: 'device', label: 'device', num: true },
      { key: 'alert_type', label: 'alert_type' },
      { key: 'priority', label: 'priority', num: true },
      { key: 'alert_id', label: 'alert_id', fmt: (v) => String(v == null ? '' : v).slice(0, 12) },
      { key: 'alert_time', label: 'alert_time' },
    ];
  }

  function renderOpen() {
    const table = $('#open');
    if (!table) return;
    const cols = openColumns();
    const items = S.open.filter((d) => d && typeof d === 'object').slice();
    const dev = (d) => (isNum(d.device) ? d.device : Number(d.device));
    items.sort((a, b) => {
      const x = dev(a), y = dev(b);
      if (x !== y) return (Number.isFinite(x) ? x : Infinity) - (Number.isFinite(y) ? y : Infinity) || String(a.device).localeCompare(String(b.device));
      const p = String(a.alert_id), q = String(b.alert_id);
      return p < q ? -1 : p > q ? 1 : 0;
    });
    const tb = table.tBodies[0];
    tb.textContent = '';
    for (const d of items) {
      tb.appendChild(el('tr', null, cols.map((c) => {
        const v = d[c.key];
        const text = c.fmt ? c.fmt(v) : (v == null ? '' : String(v));
        const td = el('td', { class: c.num ? 'num' : '', 'data-k': c.key, text });
        if (c.key === 'alert_id' && v != null) td.title = String(v);
        return td;
      })));
    }
    if (!items.length) tb.appendChild(el('tr', { class: 'empty' }, [el('td', { colspan: String(cols.length), class: 'muted', text: 'nothing open' })]));
    $('#open-caption').textContent = (S.kind === 'dispatch' ? 'Open work orders' : 'Open alerts') + ' · ' + items.length + ' by device';
  }

  function renderTimeline() {
    const chart = S.charts.timeline;
    if (!chart) return;
    const kinds = S.kind === 'dispatch' ? ['dispatch', 'close'] : ['alert', 'revoke'];
    const a = [], b = [];
    for (const end of S.ends) {
      const w = S.wins.get(end);
      let n0 = 0, n1 = 0;
      for (const out of Object.keys(w.outputs || {})) for (const d of docs(w, out)) {
        if (!d) continue;
        if (d.type === kinds[0]) n0++;
        else if (d.type === kinds[1]) n1++;
      }
      a.push([end, n0]);
      b.push([end, n1]);
    }
    const names = S.kind === 'dispatch' ? ['dispatched', 'closed'] : ['alerts', 'revokes'];
    chart.setOption({ title: { subtext: rangeText(S.ends) }, series: [{ id: names[0], data: a }, { id: names[1], data: b }] });
  }

  // ---- unknown job kinds
  function renderGeneric() {
    const table = $('#generic');
    if (!table) return;
    const outs = new Set();
    for (const w of S.wins.values()) for (const k of Object.keys(w.outputs || {})) outs.add(k);
    const names = [...outs].sort();
    table.tHead.textContent = '';
    table.tHead.appendChild(el('tr', null, [el('th', { text: 'window end' })].concat(names.map((n) => el('th', { class: 'num', text: n })))));
    const tb = table.tBodies[0];
    tb.textContent = '';
    for (const end of S.ends.slice().reverse()) {
      const w = S.wins.get(end);
      tb.appendChild(el('tr', null, [el('td', { text: utc(end) })].concat(names.map((n) => el('td', { class: 'num', text: String(docs(w, n).length) })))));
    }
  }

  // ---------------------------------------------------------------- numbers(): what is drawn
  function seriesData(chart, id) {
    if (!chart || chart.isDisposed()) return [];
    const opt = chart.getOption();
    const s = (opt.series || []).find((x) => x.id === id);
    return (s && Array.isArray(s.data)) ? s.data : [];
  }
  function pairsToObject(data) {
    const o = {};
    for (const p of data) {
      const v = Array.isArray(p) ? p : (p && p.value);
      if (Array.isArray(v) && v[1] != null) o[String(v[0])] = v[1];
    }
    return o;
  }
  function tableRows(table) {
    if (!table) return [];
    return [...table.tBodies[0].rows].filter((r) => !r.classList.contains('empty'));
  }

  function numbers() {
    if (!S || !S.loaded) return { job: dashboard.job, ready: false };
    if (S.renderTimer) flushRender(); // draw what a throttled burst of events left pending
    const slider = $('#slider');
    const win = slider ? (S.ends[Number(slider.value)] == null ? null : S.ends[Number(slider.value)]) : S.selected;
    const k = S.kind;
    if (k === 'taxi') {
      const cells = {};
      for (const d of seriesData(S.charts.map, 'cells')) {
        if (d && Array.isArray(d.value)) cells[d.name] = d.value[4];
      }
      const inp = $('#min-pickups');
      const min = inp && inp.value !== '' ? Number(inp.value) : null;
      return {
        window: win, cells, min,
        jfk: pairsToObject(seriesData(S.charts.durations, 'JFK')),
        lga: pairsToObject(seriesData(S.charts.durations, 'LGA')),
      };
    }
    if (k === 'pageviews') {
      const todayBox = $('#today');
      let today = null;
      const day = todayBox && todayBox.querySelector('[data-k=day]');
      if (day) {
        today = {
          day: day.textContent,
          pv: parseIntText(todayBox.querySelector('[data-k=pv]').textContent),
          uv: parseIntText(todayBox.querySelector('[data-k=uv]').textContent),
        };
      }
      const top = tableRows($('#top-pages')).map((r) => [
        r.querySelector('[data-k=path]').textContent,
        parseIntText(r.querySelector('[data-k=pv]').textContent),
        parseIntText(r.querySelector('[data-k=uv]').textContent),
      ]);
      const countries = {};
      const node = $('#chart-countries');
      if (node && !node.hidden) {
        for (const d of seriesData(S.charts.countries, 'countries')) if (d && d.name != null) countries[d.name] = d.value;
        const unk = $('#unknown-countries');
        if (unk && !unk.hidden && unk.textContent) {
          const n = parseIntText(unk.textContent.replace(/^unknown:\s*/, ''));
          if (n) countries['--'] = n;
        }
      }
      return {
        window: win,
        pv: pairsToObject(seriesData(S.charts.pv, 'PV')),
        uv: pairsToObject(seriesData(S.charts.pv, 'UV')),
        today, top, countries,
      };
    }
    if (k === 'ticker') {
      const prices = {};
      const chart = S.charts.prices;
      if (chart && !chart.isDisposed()) {
        for (const s of chart.getOption().series || []) prices[s.name] = pairsToObject(s.data || []);
      }
      return { prices };
    }
    if (k === 'alerts' || k === 'dispatch') {
      const cols = openColumns();
      const open = tableRows($('#open')).map((r) => {
        const o = {};
        for (const c of cols) {
          const td = r.querySelector('[data-k=' + c.key + ']');
          const t = td ? td.textContent : '';
          o[c.key] = c.num ? parseIntText(t) : t;
        }
        return o;
      });
      const names = k === 'dispatch' ? ['dispatched', 'closed'] : ['alerts', 'revokes'];
      const a = pairsToObject(seriesData(S.charts.timeline, names[0]));
      const b = pairsToObject(seriesData(S.charts.timeline, names[1]));
      const timeline = {};
      for (const e of Object.keys(a)) timeline[e] = [a[e], b[e] == null ? 0 : b[e]];
      for (const e of Object.keys(b)) if (!(e in timeline)) timeline[e] = [0, b[e]];
      return { open, timeline };
    }
    return { window: win, windows: S.ends.length };
  }

  // ---------------------------------------------------------------- boot
  window.addEventListener('hashchange', () => { if (jobs.length) selectJob(jobFromHash()); });
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (S) for (const c of Object.values(S.charts)) if (c && !c.isDisposed()) c.resize(); }, 100);
  });
  loadJobs();
})();
