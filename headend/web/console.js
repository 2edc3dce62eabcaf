/* derloop console: a fleet overview, a site page and a dispatch form over the headend's JSON
 * API (docs/operations.md, "The web console"). Live by the headend's event stream (GET
 * /events, Server-Sent Events) read with fetch() and a stream reader, which, unlike
 * EventSource, can send the Authorization header: a "sites" event (at most one a second, when
 * something changed) fetches the page's snapshot again (GET /sites or GET /sites/:id), a
 * "telemetry" event of the open site draws its point on the charts at once, a "dispatch" event
 * of a setpoint this page sent fetches its acks (GET /dispatch/:id). The stream reconnects
 * with a growing delay (Last-Event-ID: what was missed is replayed, or the hello says so and
 * the snapshot is fetched again); after STREAM_FAILS failures in a row the page polls once a
 * second instead, says so in its status line, and tries the stream again every minute. With
 * tokens, the token typed in is kept in sessionStorage and sent as Bearer; the X-Derloop-Role
 * header of each answer says whether the dispatch form may be used. */
"use strict";

const POLL_MS = 1000;
const SAFETY_MS = 10000;          /* with the stream: a snapshot anyway (stale states age) */
const STREAM_FAILS = 3;           /* failures in a row before polling */
const STREAM_RETRY_MS = 60000;    /* while polling, the stream is tried again this often */
const PAGE = 200;                 /* rows of the sites table */
const FLEET_POINTS = 3600;        /* an hour of fleet totals at 1 Hz */
const HISTORY_MS = 2 * 3600e3;    /* the site charts start with the last two hours */
const BUCKET_MS = 10e3;           /* history averaged per 10 s */
const FINAL = ["APPLIED", "REJECTED", "EXPIRED", "FAILED"];
const COLORS = { grid: "#455a64", pv: "#f9a825", battery: "#2e7d32", ev: "#1565c0", boiler: "#c62828" };

const $ = (id) => document.getElementById(id);
const st = {
  token: sessionStorage.getItem("derloop-token") || "",
  role: "", sort: "site_id", q: "", group: "", site: null, tracked: [], busy: false,
  mode: "connecting", fails: 0, lastId: null, ctrl: null, lastTick: 0, gen: 0,
};

/* ---- the API ---------------------------------------------------------------------------- */

async function api(path, opts) {
  const o = Object.assign({ headers: {} }, opts || {});
  if (st.token) o.headers["Authorization"] = "Bearer " + st.token;
  if (o.body) o.headers["Content-Type"] = "application/json";
  const r = await fetch(path, o);
  const role = r.headers.get("X-Derloop-Role");
  if (role) setRole(role);
  if (r.status === 401) {
    $("login").hidden = false;
    $("login-msg").textContent = st.token ? "token refused" : "this headend asks for a token";
    throw new Error("401");
  }
  const body = await r.json().catch(() => null);
  return { status: r.status, body: body };
}

function setRole(role) {
  if (role === st.role) return;
  st.role = role;
  $("role").textContent = role;
  const may = role === "operator" || role === "admin";
  for (const el of $("dispatch-form").querySelectorAll("input, select, button")) el.disabled = !may;
  $("d-note").textContent = may ? "" : "a viewer sees; dispatching needs an operator token";
}

$("login-btn").onclick = () => {
  st.token = $("token").value.trim();
  sessionStorage.setItem("derloop-token", st.token);
  $("login").hidden = true;
  st.role = "";
  tick();
  connect();
};

/* ---- formatting ------------------------------------------------------------------------- */

const kw = (w) => (w === null || w === undefined ? "–" : (w / 1000).toFixed(1));
const pct = (s) => (s === null || s === undefined ? "–" : (100 * s).toFixed(0) + " %");
const hms = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
function esc(s) {
  return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
const badge = (s) => `<span class="state state-${esc(s)}">${esc(s)}</span>`;
function tiles(el, pairs) {
  el.innerHTML = pairs.map(([k, v]) => `<div>${esc(k)}<b>${esc(v)}</b></div>`).join("");
}

/* ---- charts (Chart.js from Debian's libjs-chart.js, embedded in der-headend) ------------- */

function lineChart(canvas, series, yTitle, yMax) {
  return new Chart(canvas, {
    type: "line",
    data: { datasets: series.map(([label, color]) => ({
      label: label, borderColor: color, backgroundColor: color, data: [],
      pointRadius: 0, borderWidth: 1.5, tension: 0 })) },
    options: {
      animation: false, parsing: false, normalized: true, maintainAspectRatio: false,
      interaction: { mode: "nearest", intersect: false },
      scales: {
        x: { type: "linear", ticks: { callback: (v) => hms(v), maxTicksLimit: 8 } },
        y: { title: { display: true, text: yTitle }, max: yMax },
      },
      plugins: { legend: { position: "right" } },
    },
  });
}

function push(chart, i, x, y, keep) {
  const d = chart.data.datasets[i].data;
  if (y === null || y === undefined) return;
  if (d.length && d[d.length - 1].x >= x) return; /* no new sample since the last poll */
  d.push({ x: x, y: y });
  if (d.length > keep) d.splice(0, d.length - keep);
}

const fleetChart = lineChart($("fleet-chart"),
  [["grid", COLORS.grid], ["PV", COLORS.pv], ["battery", COLORS.battery]], "kW");
let powerChart = null, socChart = null;

/* ---- fleet page ------------------------------------------------------------------------- */

function renderFleet(r) {
  const t = r.totals;
  tiles($("totals"), [
    ["sites", t.sites], ["connected", t.connected], ["stale", t.stale], ["offline", t.offline],
    ["grid kW", kw(t.grid_w)], ["import kW", kw(t.import_w)], ["export kW", kw(t.export_w)],
    ["PV kW", kw(t.pv_w)], ["battery kW", kw(t.battery_w)], ["mean SoC", pct(t.soc_mean)],
    ["setpoints", t.active_setpoints], ["alarms", t.alarms]]);
  push(fleetChart, 0, r.now_ms, t.grid_w / 1000, FLEET_POINTS);
  push(fleetChart, 1, r.now_ms, t.pv_w / 1000, FLEET_POINTS);
  push(fleetChart, 2, r.now_ms, t.battery_w / 1000, FLEET_POINTS);
  fleetChart.update("none");
  $("count").textContent = r.sites.length < r.total
    ? `${r.sites.length} of ${r.total} sites shown` : `${r.total} sites`;
  $("sites").querySelector("tbody").innerHTML = r.sites.map((s) =>
    `<tr class="site-row" data-site="${esc(s.site_id)}"><td>${esc(s.site_id)}</td>` +
    `<td>${esc(s.group)}</td><td>${badge(s.state)}</td><td>${esc(s.gateway_id)}</td>` +
    `<td class="num">${kw(s.grid_w)}</td><td class="num">${kw(s.pv_w)}</td>` +
    `<td class="num">${kw(s.battery_w)}</td><td class="num">${pct(s.soc_mean)}</td>` +
    `<td class="num">${s.active_setpoints}</td><td class="num">${s.alarms}</td></tr>`).join("");
  const sel = $("group-filter");
  if (sel.options.length - 1 !== r.groups.length) {
    sel.innerHTML = `<option value="">all groups</option>` + r.groups.map((g) =>
      `<option value="${esc(g.group)}">${esc(g.group)} (${g.sites})</option>`).join("");
    sel.value = st.group;
  }
  st.groups = r.groups.map((g) => g.group);
  st.siteIds = r.sites.map((s) => s.site_id);
  fillTargets();
}

$("sites").querySelector("tbody").onclick = (e) => {
  const tr = e.target.closest("tr.site-row");
  if (tr) location.hash = "#/site/" + encodeURIComponent(tr.dataset.site);
};
for (const th of $("sites").querySelectorAll("th[data-sort]")) {
  th.onclick = () => {
    const k = th.dataset.sort;
    st.sort = st.sort === k ? "-" + k : k;
    for (const o of $("sites").querySelectorAll("th")) o.classList.remove("sorted", "desc");
    th.classList.add("sorted");
    if (st.sort[0] === "-") th.classList.add("desc");
    tick();
  };
}
$("search").oninput = () => { st.q = $("search").value.trim(); tick(); };
$("group-filter").onchange = () => { st.group = $("group-filter").value; tick(); };

/* ---- site page -------------------------------------------------------------------------- */

const KINDS = { battery: "battery", pv: "pv", evse: "ev", boiler: "boiler" };

/* The last hours from GET /telemetry: per asset, mean power per bucket; per kind, the sum. */
async function loadHistory(site) {
  const from = Date.now() - HISTORY_MS;
  const sums = {}, socs = {};
  for (const a of site.assets) {
    const kind = a.grid_meter ? "grid" : KINDS[a.type];
    if (!kind) continue;
    const r = await api(`/telemetry/${encodeURIComponent(a.asset_id)}?from=${Math.floor(from)}&limit=20000`);
    if (r.status !== 200) continue;
    const b = {};
    for (const s of r.body.samples) {
      const k = Math.floor(s.ts_ms / BUCKET_MS) * BUCKET_MS;
      const e = b[k] || (b[k] = { p: 0, n: 0, soc: 0, ns: 0 });
      if (s.power_w !== null) { e.p += s.power_w; e.n++; }
      if (s.soc !== null) { e.soc += s.soc; e.ns++; }
    }
    for (const [k, e] of Object.entries(b)) {
      if (e.n) {
        const m = sums[kind] || (sums[kind] = {});
        m[k] = (m[k] || 0) + e.p / e.n;
      }
      if (a.type === "battery" && e.ns) (socs[a.asset_id] || (socs[a.asset_id] = [])).push({ x: +k, y: 100 * e.soc / e.ns });
    }
  }
  ["grid", "pv", "battery", "ev", "boiler"].forEach((kind, i) => {
    const m = sums[kind] || {};
    powerChart.data.datasets[i].data = Object.keys(m).map(Number).sort((x, y) => x - y)
      .map((k) => ({ x: k, y: m[k] / 1000 }));
  });
  socChart.data.datasets.forEach((ds) => { ds.data = (socs[ds.label] || []).sort((x, y) => x.x - y.x); });
}

async function openSite(id) {
  const r = await api("/sites/" + encodeURIComponent(id));
  if (r.status !== 200) { $("site-title").textContent = (r.body && r.body.error) || "no such site"; return; }
  if (powerChart) powerChart.destroy();
  if (socChart) socChart.destroy();
  powerChart = lineChart($("power-chart"), [["grid", COLORS.grid], ["PV", COLORS.pv],
    ["battery", COLORS.battery], ["EV", COLORS.ev], ["boiler", COLORS.boiler]], "kW");
  const bats = r.body.assets.filter((a) => a.type === "battery").map((a) => a.asset_id);
  const hues = ["#2e7d32", "#66bb6a", "#00897b", "#9ccc65", "#558b2f", "#26a69a"];
  socChart = lineChart($("soc-chart"), bats.map((b, i) => [b, hues[i % hues.length]]), "SoC %", 100);
  await loadHistory(r.body);
  $("d-kind").value = "site_id";
  $("d-target").value = id;
  st.siteAssets = r.body.assets.map((a) => a.asset_id);
  renderSite(r.body);
}

function lifecycle(d) {
  const states = [d.state === "QUEUED" && !d.acks.length ? "QUEUED" : "SENT"]
    .concat(d.acks.map((a) => a.state));
  return `<span class="life">${states.map((s) => `<span class="${esc(s)}">${esc(s)}</span>`).join("→")}</span>`;
}

function renderSite(s) {
  $("site-title").textContent = `${s.site_id}${s.group ? " · " + s.group : ""}`;
  tiles($("site-summary"), [
    ["state", s.state], ["gateway", s.gateway_id || "–"], ["grid kW", kw(s.grid_w)],
    ["PV kW", kw(s.pv_w)], ["battery kW", kw(s.battery_w)], ["EV kW", kw(s.ev_w)],
    ["boiler kW", kw(s.boiler_w)], ["mean SoC", pct(s.soc_mean)], ["alarms", s.alarms],
    ["config", s.config.desired_version === null ? "local"
      : `v${s.config.desired_version} ${s.config.in_sync ? "in sync" : "pending"}`]]);
  const x = s.updated_ms;
  if (x) {
    [s.grid_w, s.pv_w, s.battery_w, s.ev_w, s.boiler_w].forEach((w, i) =>
      push(powerChart, i, x, w === null ? null : w / 1000, 100000));
    powerChart.update("none");
    for (const a of s.assets) {
      const ds = socChart.data.datasets.findIndex((d) => d.label === a.asset_id);
      if (ds >= 0 && a.latest && a.latest.soc !== null) push(socChart, ds, a.latest.ts_ms, 100 * a.latest.soc, 100000);
    }
    socChart.update("none");
  }
  $("assets").querySelector("tbody").innerHTML = s.assets.map((a) => {
    const l = a.latest || {};
    const state = !a.connected ? "offline" : !a.latest ? "stale" : l.online ? "ok" : "alarm";
    return `<tr><td>${esc(a.asset_id)}</td><td>${esc(a.type)}${a.grid_meter ? " (grid)" : ""}</td>` +
      `<td>${badge(state)}</td><td class="num">${kw(l.power_w)}</td><td class="num">${kw(l.setpoint_w)}</td>` +
      `<td class="num">${a.type === "battery" ? pct(l.soc) : ""}</td>` +
      `<td>${esc(a.device_state || l.status || "")}</td></tr>`;
  }).join("");
  $("dispatches").querySelector("tbody").innerHTML = s.dispatches.map((d) =>
    `<tr><td>${esc(d.setpoint_id)}</td><td>${esc(d.asset_id || "site")}</td>` +
    `<td class="num">${kw(d.power_w)}</td><td>${esc(d.state)}</td><td>${lifecycle(d)}</td>` +
    `<td>${hms(d.created_ms)}</td></tr>`).join("");
}

/* ---- the dispatch form ------------------------------------------------------------------ */

function fillTargets() {
  const kind = $("d-kind").value;
  const ids = kind === "group_id" ? st.groups || [] : kind === "asset_id" ? st.siteAssets || [] : st.siteIds || [];
  $("d-targets").innerHTML = ids.slice(0, 500).map((i) => `<option value="${esc(i)}">`).join("");
}
$("d-kind").onchange = fillTargets;

$("d-send").onclick = async () => {
  const body = { mw: parseFloat($("d-mw").value), ttl_s: parseInt($("d-ttl").value, 10) };
  body[$("d-kind").value] = $("d-target").value.trim();
  const r = await api("/dispatch", { method: "POST", body: JSON.stringify(body) });
  if (r.status !== 202) {
    /* 403 included: the headend's message names the role needed ("needs operator"); the
     * form is disabled for a viewer, but a token revoked or changed between two polls gets
     * here */
    $("d-status").innerHTML = `<div class="err" id="d-error">${esc(r.status)}: ${esc(r.body && r.body.error)}</div>`;
    return;
  }
  const sps = r.body.setpoints || [{ setpoint_id: r.body.setpoint_id, site_id: r.body.site_id || r.body.asset_id }];
  st.tracked = sps.map((s) => ({ id: s.setpoint_id, target: s.site_id, state: s.state || r.body.state, acks: [] }));
  st.skipped = r.body.skipped || [];
  renderTracked();
  /* states the stream announced before this answer arrived: fetched once */
  if (st.mode === "stream") await pollTracked();
};

function renderTracked() {
  const rows = st.tracked.slice(0, 20).map((t) =>
    `<div class="sp" data-setpoint="${esc(t.id)}" data-state="${esc(t.state)}">${esc(t.id)} ${esc(t.target || "")}<br>` +
    lifecycle({ state: t.state, acks: t.acks }) + `</div>`);
  const n = {};
  for (const t of st.tracked) n[t.state] = (n[t.state] || 0) + 1;
  const sum = Object.entries(n).map(([k, v]) => `${v} ${k}`).join(", ");
  const skipped = st.skipped && st.skipped.length ? `<div class="muted">${st.skipped.length} skipped: ` +
    st.skipped.slice(0, 5).map((s) => `${esc(s.site_id)} (${esc(s.reason)})`).join(", ") + `</div>` : "";
  $("d-status").innerHTML = `<div id="d-summary">${esc(sum)}</div>` + skipped + rows.join("");
}

async function pollTracked() {
  const open = st.tracked.filter((t) => !FINAL.includes(t.state)).slice(0, 50);
  for (const t of open) {
    const r = await api("/dispatch/" + encodeURIComponent(t.id));
    if (r.status === 200) { t.state = r.body.state; t.acks = r.body.acks; }
  }
  if (open.length) renderTracked();
}

/* ---- routing and the poll loop ---------------------------------------------------------- */

function route() {
  const m = location.hash.match(/^#\/site\/(.+)$/);
  st.site = m ? decodeURIComponent(m[1]) : null;
  $("fleet-view").hidden = !!st.site;
  $("site-view").hidden = !st.site;
  $("crumb").textContent = st.site ? "› " + st.site : "";
  if (st.site) openSite(st.site).catch(() => {});
}
window.onhashchange = () => { route(); connect(); }; /* the stream's ?site= follows the page */

async function tick() {
  if (st.busy) return;
  st.busy = true;
  try {
    if (st.site) {
      const r = await api("/sites/" + encodeURIComponent(st.site));
      if (r.status === 200 && powerChart) renderSite(r.body);
    } else {
      const qs = new URLSearchParams({ limit: PAGE, sort: st.sort });
      if (st.q) qs.set("q", st.q);
      if (st.group) qs.set("group", st.group);
      const r = await api("/sites?" + qs);
      if (r.status === 200) renderFleet(r.body);
    }
    if (st.mode !== "stream") await pollTracked();
    st.lastTick = Date.now();
    status();
  } catch (e) {
    $("conn").textContent = e.message === "401" ? "signed out" : "headend unreachable";
  } finally {
    st.busy = false;
  }
}

function status() {
  const how = st.mode === "stream" ? "live (stream)"
    : st.mode === "polling" ? "live (polling: the event stream failed)"
    : "live (polling while the event stream connects)";
  $("conn").textContent = how + " " + hms(Date.now());
}

/* ---- the event stream (GET /events) ----------------------------------------------------- */

function onEvent(type, data) {
  if (type === "hello") {
    if (!data.resumed) tick(); /* events were missed or this is the first connect: snapshot */
  } else if (type === "sites") {
    tick();
  } else if (type === "telemetry" && st.site === data.site_id && powerChart) {
    st.pointsStreamed = (st.pointsStreamed || 0) + 1;
    const g = data.site;
    [g.grid_w, g.pv_w, g.battery_w, g.ev_w, g.boiler_w].forEach((w, i) =>
      push(powerChart, i, g.updated_ms, w === null ? null : w / 1000, 100000));
    powerChart.update("none");
    const ds = socChart.data.datasets.findIndex((d) => d.label === data.asset_id);
    if (ds >= 0 && data.soc !== null) {
      push(socChart, ds, data.ts_ms, 100 * data.soc, 100000);
      socChart.update("none");
    }
  } else if (type === "dispatch") {
    const t = st.tracked.find((x) => x.id === data.setpoint_id);
    if (t) {
      api("/dispatch/" + encodeURIComponent(t.id)).then((r) => {
        if (r.status === 200) { t.state = r.body.state; t.acks = r.body.acks; renderTracked(); }
      }).catch(() => {});
    }
  }
}

/* One connection: the blocks of text/event-stream ("field: value" lines, a blank line between
 * events, ":" comments) handed to onEvent. Resolves when the stream ends. */
async function readStream(gen) {
  const qs = st.site ? "?site=" + encodeURIComponent(st.site) : "";
  const headers = {};
  if (st.token) headers["Authorization"] = "Bearer " + st.token;
  if (st.lastId) headers["Last-Event-ID"] = st.lastId;
  st.ctrl = new AbortController();
  const r = await fetch("/events" + qs, { headers: headers, signal: st.ctrl.signal });
  if (r.status === 401) {
    $("login").hidden = false;
    throw new Error("401");
  }
  if (r.status !== 200 || !r.body) throw new Error("status " + r.status);
  const reader = r.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done || gen !== st.gen) return;
    buf += dec.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let type = "message", data = "";
      for (const line of block.split("\n")) {
        const c = line.indexOf(":");
        const k = c < 0 ? line : line.slice(0, c);
        const v = c < 0 ? "" : line.slice(c + 1).replace(/^ /, "");
        if (k === "event") type = v;
        else if (k === "data") data += (data ? "\n" : "") + v;
        else if (k === "id") st.lastId = v;
      }
      st.mode = "stream";
      st.fails = 0;
      status();
      if (data) {
        try { onEvent(type, JSON.parse(data)); } catch (e) { /* one bad event: skip it */ }
      }
    }
  }
}

/* (Re)connects: a new generation ends the previous connection. Backoff 1, 2, 4 ... 15 s. */
async function connect() {
  const gen = ++st.gen;
  if (st.ctrl) st.ctrl.abort();
  for (;;) {
    try {
      await readStream(gen);
    } catch (e) {
      if (gen !== st.gen) return;
      if (e.message === "401") { st.mode = "connecting"; return; } /* the login reconnects */
    }
    if (gen !== st.gen) return;
    /* until the stream is back, the page polls (the interval below sees mode != stream) */
    st.fails++;
    st.mode = st.fails >= STREAM_FAILS ? "polling" : "connecting";
    status();
    const wait = st.mode === "polling" ? STREAM_RETRY_MS : Math.min(15000, 1000 * 2 ** (st.fails - 1));
    await new Promise((res) => setTimeout(res, wait));
    if (gen !== st.gen) return;
  }
}

route();
tick();
connect();
setInterval(() => {
  const every = st.mode === "stream" ? SAFETY_MS : POLL_MS;
  if (Date.now() - st.lastTick >= every - 50) tick();
}, POLL_MS);
