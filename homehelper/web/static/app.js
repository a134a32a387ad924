// HomeHelper dashboard: one websocket, on-click refresh, no timers but the UI countdown.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const csrf = $('meta[name="csrf-token"]').content;
  const pending = new Map(); // request id -> {resolve, reject, progress}
  let ws = null, nextId = 1, retry = 500;

  // --- websocket ------------------------------------------------------------
  function connect() {
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    ws = new WebSocket(url);
    setStatus("connecting…");
    ws.onopen = () => { retry = 500; setStatus("connected", "ok"); refresh(); };
    ws.onclose = () => {
      setStatus("disconnected", "bad");
      for (const p of pending.values()) p.reject(new Error("connection lost"));
      pending.clear();
      setTimeout(connect, retry); retry = Math.min(retry * 2, 15000);
    };
    ws.onmessage = (e) => onMessage(JSON.parse(e.data));
  }

  function onMessage(msg) {
    if (msg.type === "ping") { ws.send(JSON.stringify({ type: "pong" })); return; }
    const p = pending.get(msg.id);
    if (msg.type === "progress") { if (p && p.progress) p.progress(msg.event); return; }
    if (msg.type === "log") { appendLog(msg.lines); return; }
    if (!p) return;
    if (msg.type === "reply") { pending.delete(msg.id); p.resolve(p.whole ? msg : msg.data); }
    else if (msg.type === "error") { pending.delete(msg.id); p.reject(new Error(msg.message || msg.error)); }
  }

  function request(type, body = {}, progress = null, whole = false) {
    return new Promise((resolve, reject) => {
      if (!ws || ws.readyState !== WebSocket.OPEN) { reject(new Error("not connected")); return; }
      const id = nextId++;
      pending.set(id, { resolve, reject, progress, whole });
      ws.send(JSON.stringify({ ...body, type, id }));
    });
  }

  async function post(path, json) {
    const headers = { "X-CSRF-Token": csrf };
    if (json !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method: "POST", headers, body: json === undefined ? undefined : JSON.stringify(json) });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.message || r.statusText);
    return body;
  }

  function setStatus(text, cls = "") { const s = $("#status"); s.textContent = text; s.className = "status " + cls; }

  // --- refresh ----------------------------------------------------------------
  let shown = { snap: {}, digests: {} }; // the last snapshot rendered, and its sections' digests
  async function refresh() {
    const btn = $("#refresh");
    btn.disabled = true;
    try {
      // only the sections that changed since the last refresh come back; the rest are the ones we have
      const msg = await request("refresh", { what: "all", have: shown.digests }, null, true);
      const snap = { ...shown.snap, ...msg.data };
      shown = { snap, digests: msg.digests || {} };
      renderApps(snap.apps); renderSystem(snap.system); renderEvents(snap.events); renderBus(snap.bus);
      document.dispatchEvent(new CustomEvent("hh:refreshed", { detail: snap }));  // static/history.js
      setStatus("updated " + new Date().toLocaleTimeString(), "ok");
    } catch (e) { setStatus(e.message, "bad"); }
    finally { btn.disabled = false; }
  }

  // --- apps -------------------------------------------------------------------
  function renderApps(apps) {
    const box = $("#apps");
    box.replaceChildren();
    if (!apps.length) { box.innerHTML = '<p class="muted">No apps found in the apps folder.</p>'; return; }
    for (const a of apps) box.append(card(a));
  }

  function card(a) {
    const el = $("#card-tpl").content.firstElementChild.cloneNode(true);
    el.dataset.app = a.id;
    fillCard(el, a);
    el.addEventListener("click", (e) => {
      const b = e.target.closest("button");
      if (!b) return;
      if (b.dataset.action) act(el, b.dataset.action);
      else if (b.dataset.do === "logs") openLogs(a.id);
      else if (b.dataset.do === "open") openUI(a.id, a.name || a.id);
      else if (b.dataset.do === "approve") approve(el);
    });
    return el;
  }

  function fillCard(el, a) {
    $(".name", el).textContent = a.name || a.id;
    setState(el, a.state);
    $(".type", el).textContent = a.type || "—";
    $(".port", el).textContent = a.port ?? "—";
    $(".health", el).textContent = a.healthy == null ? "—" : (a.healthy ? "healthy" : "unhealthy " + (a.health_detail || ""));
    const r = a.resources;
    $(".res", el).textContent = r && r.source !== "absent"
      ? `${fmt(r.cpu_percent, "%")} / ${fmt(r.memory == null ? null : r.memory / 1048576, " MB")}` : "—";
    $(".last-error", el).textContent = a.errors ? a.errors.join("; ") : (a.last_error || "");
    $('[data-do="open"]', el).hidden = !a.has_ui;
    $('[data-do="settings"]', el).hidden = !a.has_options;  // static/options.js
    fillSandbox(el, a);
    const running = ["running", "starting", "backoff"].includes(a.state);
    $('[data-action="start"]', el).disabled = running || a.state === "invalid";
    $('[data-action="stop"]', el).disabled = !running && !["quarantined", "awaiting_approval"].includes(a.state);
    $('[data-action="restart"]', el).disabled = a.state === "invalid";
    if (window.hhJobs) window.hhJobs.fill(el, a); // jobs.js: schedule, next and last run, "Run now"
  }

  // What the app may touch beyond its sandbox, and the approve button while that is not approved.
  // The list shown is the list sent: the server refuses it if the manifest asks for another by now.
  function fillSandbox(el, a) {
    const grants = [...(a.permissions || []), ...(a.devices || [])];
    el.grants = grants;
    $(".grants", el).textContent = grants.length ? grants.join(", ") + (a.approved ? "" : " (not approved)") : "none";
    $(".sandbox", el).textContent = a.sandbox === "sandboxed"
      ? "sandboxed" + (a.exposure == null ? "" : ` · exposure ${a.exposure} ${a.exposure_level || ""}`)
      : (a.sandbox ? "unsandboxed: runs as HomeHelper's user" : "—");
    const asks = grants.length > 0 && a.approved === false;
    $(".approval", el).hidden = !asks;
    $(".asks", el).textContent = grants.join(", ");
  }

  async function approve(el) {
    const id = el.dataset.app, prog = $(".progress", el), btn = $('[data-do="approve"]', el);
    btn.disabled = true;
    prog.textContent = "approving…";
    try {
      const out = await post(`/api/apps/${encodeURIComponent(id)}/approve`, { grants: el.grants });
      fillCard(el, out.app);
      // Approving started it (the user wanted it running): follow the start to its end like a Start
      // click does (a start of a starting app changes nothing, and its progress reaches this card).
      if (["starting", "installing"].includes(out.app.state)) await act(el, "start");
    } catch (e) {
      $(".last-error", el).textContent = e.message;
      const a = await request("refresh", { what: "app", app: id }).catch(() => null);
      if (a) fillCard(el, a);
    } finally { prog.textContent = ""; btn.disabled = false; }
  }

  function setState(el, state) { const s = $(".state", el); s.textContent = state; s.className = "state " + state; }

  async function act(el, action) {
    const id = el.dataset.app, prog = $(".progress", el);
    el.querySelectorAll("button[data-action]").forEach((b) => { b.disabled = true; });
    prog.textContent = action + "…";
    try {
      const out = await request("action", { app: id, action }, (ev) => {
        if (ev.kind === "app_state_changed") setState(el, ev.state);
        prog.textContent = ev.kind.replace(/_/g, " ") + (ev.step ? ": " + ev.step : "");
      });
      fillCard(el, out.app);
      prog.textContent = "";
    } catch (e) {
      prog.textContent = "";
      $(".last-error", el).textContent = e.message;
      const a = await request("refresh", { what: "app", app: id }).catch(() => null);
      if (a) fillCard(el, a);
    }
  }

  // --- system -------------------------------------------------------------------
  // The sensor snapshot's shape belongs to the monitor; read the few fields we show, tolerantly.
  function pick(o, ...paths) {
    for (const p of paths) {
      const v = p.split(".").reduce((x, k) => (x == null ? undefined : x[k]), o);
      if (v != null) return v;
    }
    return null;
  }
  const METRICS = [
    // key, label, unit, where in a sample, chart scale (fixed: a flat line must look flat)
    ["cpu", "CPU", "%", ["cpu.percent", "cpu"], [0, 100]],
    ["memory", "Memory", "%", ["memory.percent", "memory"], [0, 100]],
    ["disk", "Disk /", "%", ["root_disk.percent", "disk"], [0, 100]],
    ["temperature", "Temperature", " °C", ["temperature"], [20, 90]],
  ];

  // Redis connected, or the in-process bus alone (embedded default)
  function renderBus(bus) {
    const b = $("#bus");
    if (!bus) { b.textContent = ""; return; }
    b.title = bus.identity_note || "";
    if (!bus.enabled) { b.textContent = "bus: in-process only"; b.className = "status"; }
    else if (bus.connected) {
      const shared = bus.identity === "shared";  // any app may publish on any channel
      b.textContent = shared ? "bus: Redis, apps share one identity" : "bus: Redis";
      b.className = shared ? "status warn" : "status ok";
    }
    else {
      b.textContent = "bus: Redis unreachable" + (bus.buffered ? ` (${bus.buffered} waiting)` : "");
      b.className = "status bad";
    }
  }

  function renderSystem(sys) {
    const box = $("#metrics"), charts = $("#charts");
    box.replaceChildren(); charts.replaceChildren();
    if (!sys || !sys.available) { box.innerHTML = '<p class="muted">No sensor readings on this node.</p>'; return; }
    const now = { ...(sys.now || {}) }, levels = now.levels || {};
    const disks = now.disks || [];
    now.root_disk = disks.find((d) => d.mount === "/") || disks[0];
    for (const [key, label, unit, paths, scale] of METRICS) {
      const v = pick(now, ...paths);
      const m = document.createElement("div");
      m.className = "metric " + ({ warning: "warn", critical: "bad" }[levels[key]] || "");
      m.dataset.metric = key;
      m.innerHTML = "<span></span><b></b>";
      m.firstChild.textContent = label; m.lastChild.textContent = fmt(v, unit);
      box.append(m);
      const series = (sys.history || []).map((s) => pick(s, ...paths)).filter((x) => typeof x === "number");
      if (series.length > 1) charts.append(chart(label, unit, series, scale));
    }
    const t = now.throttled;
    const m = document.createElement("div");
    m.className = "metric" + (t && t.any_now ? " bad" : t && t.any_since_boot ? " warn" : "");
    m.dataset.metric = "throttling";
    m.innerHTML = "<span>Throttling</span><b></b>";
    m.lastChild.textContent = throttleText(t);
    box.append(m);
  }

  // get_throttled decoded by the monitor: {now: {flag: bool}, since_boot: {...}, any_now, any_since_boot}
  function throttleText(t) {
    if (t == null) return "n/a";
    const on = (o) => Object.entries(o || {}).filter(([, v]) => v === true).map(([k]) => k.replace(/_/g, " "));
    if (t.any_now) return on(t.now).join(", ");
    if (t.any_since_boot) return "earlier: " + on(t.since_boot).join(", ");
    return "none";
  }

  function chart(label, unit, series, scale) {
    const w = 100, h = 30;
    const lo = Math.min(scale[0], ...series), hi = Math.max(scale[1], ...series), span = hi - lo || 1;
    const pts = series.map((v, i) => `${(i / (series.length - 1)) * w},${h - ((v - lo) / span) * h}`).join(" ");
    const div = document.createElement("div");
    div.className = "chart";
    div.innerHTML = `<span></span> <small class="muted"></small>` +
      `<svg viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" role="img"><polyline points="${pts}"/></svg>`;
    div.firstChild.textContent = label;
    div.querySelector("small").textContent =
      `${fmt(Math.min(...series), "")}–${fmt(Math.max(...series), unit)} (last ${series.length})`;
    div.querySelector("svg").setAttribute("aria-label", label + " history");
    return div;
  }

  function fmt(v, unit) { return typeof v === "number" ? (Math.round(v * 10) / 10) + unit : "—"; }

  // --- events -------------------------------------------------------------------
  function renderEvents(events) {
    const ol = $("#events");
    ol.replaceChildren();
    for (const ev of [...(events || [])].reverse()) {
      const li = document.createElement("li");
      const t = document.createElement("time");
      t.textContent = ev.at ? new Date(ev.at * 1000).toLocaleTimeString() : "";
      li.append(t, `${(ev.kind || "").replace(/_/g, " ")}${ev.app_id ? " · " + ev.app_id : ""}` +
        `${ev.state ? " → " + ev.state : ""}${ev.reason ? " (" + ev.reason + ")" : ""}`);
      ol.append(li);
    }
    if (!ol.children.length) ol.innerHTML = '<li class="muted">No events yet.</li>';
  }

  // --- logs -----------------------------------------------------------------------
  let logApp = null;
  async function openLogs(id) {
    logApp = id;
    $("#log-search").reset();
    $("#log-found").textContent = "";
    $("#log-app").textContent = id;
    $("#log-lines").textContent = "";
    $("#log-download").href = `/api/apps/${encodeURIComponent(id)}/logs/download`;
    $("#log-dialog").showModal();
    await followLogs();
  }
  // The search (text, time range) runs on the server over every kept line; a follow then shows
  // only new lines holding the text. A range that ends in the past is not followed.
  async function getJSON(path) {
    const r = await fetch(path);
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.message || r.statusText);
    return body;
  }
  function logSearch() {
    const q = {}, grep = $("#log-grep").value, since = $("#log-since").value, until = $("#log-until").value;
    if (grep) q.grep = grep;
    if (since) q.since = new Date(since).toISOString();
    if (until) q.until = new Date(until).toISOString();
    return q;
  }
  async function followLogs() {
    const q = logSearch(), searching = Object.keys(q).length > 0;
    try {
      if ($("#log-follow").checked && !q.until) {
        const r = await request("logs.follow", { app: logApp, lines: 500, ...q });
        $("#log-lines").textContent = "";
        appendLog(r.lines);
        $("#log-found").textContent = searching ? `${r.lines.length} matching (last 500 at most)` : "";
      } else {
        await request("logs.unfollow");
        if (searching) {
          const r = await getJSON(`/api/apps/${encodeURIComponent(logApp)}/logs?` +
            new URLSearchParams({ lines: 500, ...q }));
          $("#log-lines").textContent = "";
          appendLog(r.lines);
          $("#log-found").textContent = `${r.lines.length} matching (last 500 at most)`;
        }
      }
    } catch (e) { appendLog(["[" + e.message + "]"]); }
  }
  $("#log-search").addEventListener("submit", (e) => { e.preventDefault(); followLogs(); });
  $("#log-search").addEventListener("reset", () => { if (logApp) setTimeout(followLogs, 0); });
  function appendLog(lines) {
    const pre = $("#log-lines"), atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
    pre.append(lines.map((l) => l + "\n").join(""));
    if (pre.childNodes.length > 200) pre.textContent = pre.textContent.split("\n").slice(-5000).join("\n");
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }
  $("#log-follow").addEventListener("change", followLogs);
  $("#log-dialog").addEventListener("close", () => { logApp = null; request("logs.unfollow").catch(() => {}); });

  // --- UI modal (Streamlit) -------------------------------------------------------
  let uiApp = null, ttlLeft = null, countdown = null;
  async function openUI(id, name) {
    uiApp = id;
    $("#ui-app").textContent = name + " (starting…)";
    $("#ui-dialog").showModal();
    try {
      const r = await post(`/api/apps/${encodeURIComponent(id)}/open`);
      $("#ui-app").textContent = name;
      $("#ui-frame").src = r.url;
      $("#ui-keepalive").hidden = r.ttl_left == null;  // service UIs have no idle stop
      setTTL(r.ttl_left);
    } catch (e) { $("#ui-app").textContent = name + ": " + e.message; }
  }
  function setTTL(left) {
    ttlLeft = left;
    clearInterval(countdown);
    const show = () => {
      $("#ui-ttl").textContent = ttlLeft == null ? "" : `stops in ${Math.max(0, Math.round(ttlLeft))} s if idle`;
    };
    show();
    // a local countdown only while the modal is open: no request on a timer
    if (ttlLeft != null) countdown = setInterval(() => { ttlLeft -= 1; show(); }, 1000);
  }
  $("#ui-keepalive").addEventListener("click", async () => {
    try { setTTL((await post(`/api/apps/${encodeURIComponent(uiApp)}/keepalive`)).ttl_left); }
    catch (e) { $("#ui-ttl").textContent = e.message; }
  });
  $("#ui-dialog").addEventListener("close", () => { clearInterval(countdown); $("#ui-frame").src = "about:blank"; });

  // --- wiring -----------------------------------------------------------------------
  document.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => b.closest("dialog").close()));
  $("#refresh").addEventListener("click", refresh);
  $("#rescan").addEventListener("click", async () => {
    try { await request("rescan"); await refresh(); } catch (e) { setStatus(e.message, "bad"); }
  });
  $("#notify-test").addEventListener("click", async () => {
    try {
      const r = await post("/api/notify/test");
      const bad = r.results.filter((x) => !x.ok).map((x) => `${x.url}: ${x.error}`);
      setStatus(`test notification sent to ${r.sent} of ${r.results.length}` + (bad.length ? ` (failed: ${bad.join("; ")})` : ""),
                bad.length ? "bad" : "ok");
    } catch (e) { setStatus(e.message, "bad"); }
  });
  const logout = $("#logout");
  if (logout) logout.addEventListener("click", async () => { await post("/logout").catch(() => {}); location.href = "/login"; });
  // Connect once every deferred script has run: the first refresh's cards need jobs.js and the others,
  // and a fast reply would otherwise be drawn before a slow script arrives (and stay so until the next click).
  document.addEventListener("DOMContentLoaded", connect, { once: true });
})();
