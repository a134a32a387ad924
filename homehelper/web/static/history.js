// HomeHelper dashboard: the history on disk (charts that outlive a restart) and the Redis panel.
// Asks only when a person looks: after a refresh (app.js sends "hh:refreshed") or a click. No timers.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const RANGES = ["1h", "24h", "30d"];
  // series -> [field, label, unit, fixed scale or null]
  const FIELDS = {
    machine: [["cpu", "CPU", "%", [0, 100]], ["memory", "Memory", "%", [0, 100]], ["disk", "Disk /", "%", [0, 100]],
              ["temperature", "Temperature", " °C", [20, 90]], ["load", "Load", "", null]],
    app: [["cpu", "CPU", "%", null], ["memory", "Memory", " MB", null]],
    redis: [["memory_mb", "Memory", " MB", null], ["ops", "Ops/s", "", null], ["clients", "Clients", "", null],
            ["p99", "Publish p99", " ms", null], ["buffered", "Buffered", "", null], ["dropped", "Dropped", "", null],
            ["stream", "Stream length", "", null], ["evicted", "Evicted", "", null]],
  };
  const kind = (series) => (series.startsWith("app:") ? "app" : series);
  const value = (series, field, p) => {
    const v = p[field];
    return typeof v !== "number" ? null : (kind(series) === "app" && field === "memory" ? v / 1048576 : v);
  };
  const fmt = (v, unit) => (typeof v === "number" ? (Math.round(v * 10) / 10) + unit : "—");

  async function get(path) {
    const r = await fetch(path, { headers: { Accept: "application/json" } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.message || r.statusText);
    return body;
  }
  const history = (series, range, points) =>
    get(`/api/history?series=${encodeURIComponent(series)}&range=${range}&points=${points}`);

  // A polyline in a viewBox: the same look as the system panel's charts.
  function svgChart(points, series, field, scale, w, h) {
    const xs = points.map((p) => p.at), ys = points.map((p) => value(series, field, p));
    const pairs = xs.map((x, i) => [x, ys[i]]).filter(([, y]) => y !== null);
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    if (pairs.length < 2) return { svg, lo: null, hi: null, count: pairs.length };
    const vals = pairs.map(([, y]) => y);
    const lo = Math.min(scale ? scale[0] : Infinity, ...vals), hi = Math.max(scale ? scale[1] : -Infinity, ...vals);
    const span = hi - lo || 1, t0 = pairs[0][0], tspan = pairs[pairs.length - 1][0] - t0 || 1;
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", pairs.map(([x, y]) => `${((x - t0) / tspan) * w},${h - ((y - lo) / span) * h}`).join(" "));
    svg.append(line);
    return { svg, lo: Math.min(...vals), hi: Math.max(...vals), count: pairs.length };
  }

  // --- the larger chart, with a time range ------------------------------------------------
  const dialog = $("#history-dialog");
  let current = null; // {series, field, range, title}
  async function openChart(series, field, title) {
    current = { series, field, range: "1h", title };
    $("#history-title").textContent = title;
    const pick = $("#history-field");
    pick.replaceChildren();
    for (const [f, label] of FIELDS[kind(series)]) {
      const o = document.createElement("option");
      o.value = f; o.textContent = label; o.selected = f === field;
      pick.append(o);
    }
    dialog.showModal();
    await drawChart();
  }
  async function drawChart() {
    const box = $("#history-chart"), note = $("#history-note");
    for (const b of dialog.querySelectorAll("[data-range]")) b.setAttribute("aria-pressed", String(b.dataset.range === current.range));
    note.textContent = "loading…";
    try {
      const h = await history(current.series, current.range, 360);
      const [, label, unit, scale] = FIELDS[kind(current.series)].find(([f]) => f === current.field);
      const c = svgChart(h.points, current.series, current.field, scale, 600, 200);
      c.svg.setAttribute("aria-label", `${current.title} ${label}, ${current.range}`);
      box.replaceChildren(c.svg);
      box.dataset.points = String(c.count);
      if (c.count < 2) { note.textContent = "not enough history for this range yet"; return; }
      const first = new Date(h.points[0].at * 1000), last = new Date(h.points[h.points.length - 1].at * 1000);
      const when = current.range === "30d" ? (d) => d.toLocaleDateString() : (d) => d.toLocaleString();
      note.textContent = `${label}: ${fmt(c.lo, unit)}–${fmt(c.hi, unit)} · ${when(first)} → ${when(last)} · ` +
        `${c.count} points of ${h.step} s`;
    } catch (e) { note.textContent = e.message; box.replaceChildren(); }
  }
  if (dialog) {
    dialog.querySelectorAll("[data-range]").forEach((b) => b.addEventListener("click", () => {
      current.range = b.dataset.range; drawChart();
    }));
    $("#history-field").addEventListener("change", (e) => { current.field = e.target.value; drawChart(); });
  }

  // --- the system panel's charts open the larger one ------------------------------------------
  $("#charts").addEventListener("click", (e) => {
    const chart = e.target.closest(".chart");
    if (!chart || !available) return;
    const label = chart.firstChild.textContent;
    const f = FIELDS.machine.find(([, l]) => l === label);
    if (f) openChart("machine", f[0], "Machine");
  });

  // --- a sparkline per app card -------------------------------------------------------------
  async function cardSpark(card) {
    const id = card.dataset.app;
    let box = $(".spark", card);
    if (!box) {
      box = document.createElement("button");
      box.type = "button"; box.className = "spark chart"; box.title = "CPU history: click for more";
      $(".actions", card).before(box);
      box.addEventListener("click", () => openChart(`app:${id}`, "cpu", card.querySelector(".name").textContent));
    }
    try {
      const h = await history(`app:${id}`, "1h", 60);
      const c = svgChart(h.points, `app:${id}`, "cpu", null, 100, 20);
      c.svg.setAttribute("aria-label", `${id} CPU history`);
      const label = document.createElement("small");
      label.className = "muted";
      label.textContent = c.count > 1 ? `CPU 1 h: ${fmt(c.lo, "%")}–${fmt(c.hi, "%")}` : "CPU history: none yet";
      box.replaceChildren(label, c.svg);
    } catch (e) { box.replaceChildren(e.message); }
  }

  // --- Redis -------------------------------------------------------------------------------
  async function renderRedis(bus) {
    const panel = $("#redis-panel");
    if (!bus || !bus.enabled) { panel.hidden = true; return; }
    panel.hidden = false;
    let s;
    try { s = await get("/api/redis"); } catch (e) { $("#redis-figures").textContent = e.message; return; }
    const r = s.redis || {}, b = s.bridge || {};
    const alerts = Object.fromEntries((s.alerts || []).map((a) => [a.metric, a.level]));
    const mb = (v) => (typeof v === "number" ? fmt(v / 1048576, " MB") : "—");
    const rows = [
      ["redis_memory", "Memory", mb(r.used_memory) + (r.maxmemory ? ` of ${mb(r.maxmemory)}` : " (no limit)")],
      [null, "Ops/s", fmt(r.ops_per_sec, "")],
      [null, "Clients", fmt(r.connected_clients, "")],
      [null, "Pub/sub", `${fmt(r.pubsub_channels, "")} channels, ${fmt(r.pubsub_patterns, "")} patterns`],
      [null, "Stream", fmt(r.stream_length, " events")],
      [null, "Evicted", fmt(r.evicted_keys, "")],
      ["redis_latency", "Publish p50/p99", `${fmt(b.publish_p50_ms, "")}/${fmt(b.publish_p99_ms, " ms")}`],
      ["redis_dropped", "Buffered/dropped", `${fmt(b.buffered, "")}/${fmt(b.dropped, "")}`],
      [null, "Reconnects", fmt(b.reconnects, "")],
    ];
    const box = $("#redis-figures");
    box.replaceChildren();
    for (const [metric, label, text] of rows) {
      const m = document.createElement("div");
      m.className = "metric " + ({ warning: "warn", critical: "bad", careful: "warn" }[alerts[metric]] || "");
      m.innerHTML = "<span></span><b></b>";
      m.firstChild.textContent = label; m.lastChild.textContent = text;
      box.append(m);
    }
    if (s.error) { const p = document.createElement("p"); p.className = "error"; p.textContent = s.error; box.append(p); }
  }
  $("#redis-chart").addEventListener("click", () => openChart("redis", "ops", "Redis"));

  let available = null; // does this server keep a history? asked once
  document.addEventListener("hh:refreshed", async (e) => {
    const snap = e.detail || {};
    if (available === null) available = await get("/api/history").then((s) => s.available === true, () => null);
    $("#redis-chart").hidden = !available;
    renderRedis(snap.bus);
    if (available) document.querySelectorAll(".card[data-app]").forEach((card) => { cardSpark(card); });
  });
})();
