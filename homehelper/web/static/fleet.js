// The fleet on the dashboard: every HomeHelper over this Redis, its figures and apps, and actions on
// any node's app. Read when a person clicks (Show fleet, Refresh, after an action): no timers.
"use strict";
(() => {
  const $ = (sel) => document.querySelector(sel);
  const csrf = $('meta[name="csrf-token"]').content;
  const say = (text, cls = "muted") => { const s = $("#fleet-status"); s.textContent = text; s.className = cls; };
  const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
  const when = (t) => (typeof t === "number" ? new Date(t * 1000).toLocaleString() : "?");
  const pct = (x) => (typeof x === "number" ? `${x.toFixed(0)}%` : "–");
  const ACTIONS = ["start", "stop", "restart"];
  const notes = new Map();  // node -> [text, class]: the last action's outcome survives the re-render

  async function call(method, path) {
    const r = await fetch(path, { method, headers: { "X-CSRF-Token": csrf } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.message || r.statusText);
    return body;
  }

  function statusText(n) {
    if (n.status === "online") return "online";
    if (n.status === "offline") return `offline since ${when(n.since)}`;
    return `unknown (last seen ${when(n.seen)})`;
  }

  function appRow(node, app, note) {
    const li = el("li", undefined, "fleet-app");
    const health = app.healthy === true ? "healthy" : app.healthy === false ? "unhealthy" : "";
    li.append(el("span", app.name || app.id, "name"), " ", el("span", app.state + (health ? ` · ${health}` : ""), `state ${app.state}`));
    if (node.status !== "online") return li;
    const acts = app.approved === false ? [...ACTIONS, "approve"] : ACTIONS;
    for (const action of acts) {
      const b = el("button", action);
      b.type = "button";
      b.addEventListener("click", () => act(node.node, app.id, action, b, note));
      li.append(" ", b);
    }
    return li;
  }

  function card(n) {
    const s = n.summary || {};
    const art = el("article", undefined, `card fleet-node ${n.status}`);
    art.dataset.node = n.node;
    const head = el("header");
    head.append(el("h3", n.node, "name"), el("span", statusText(n), `state ${n.status}`));
    art.append(head);
    const m = s.machine || {};
    const dl = el("dl");
    const row = (k, v) => dl.append(el("dt", k), el("dd", v));
    row("version", s.version || "?");
    row("up", typeof s.uptime === "number" ? `${Math.round(s.uptime / 60)} min` : "?");
    row("cpu / mem", `${pct(m.cpu)} / ${pct(m.memory)}`);
    row("alerts", m.alerts && m.alerts.length ? m.alerts.map((a) => a.metric || a.kind || "alert").join(", ") : "none");
    row("apps", Object.entries(s.counts || {}).map(([k, v]) => `${v} ${k}`).join(", ") || "none");
    art.append(dl);
    if (typeof s.url === "string" && /^https?:\/\//.test(s.url)) {
      const a = el("a", "open its dashboard (apps, logs, events)");
      a.href = s.url; a.rel = "noopener"; a.target = "_blank";
      const p = el("p"); p.append(a); art.append(p);
    }
    const [text, cls] = notes.get(n.node) || ["", "muted"];
    const note = el("p", text, `progress ${cls}`);
    note.setAttribute("aria-live", "polite");
    const ul = el("ul", undefined, "fleet-apps");
    for (const app of s.apps || []) ul.append(appRow(n, app, note));
    art.append(ul, note);
    return art;
  }

  async function show() {
    say("reading the fleet…");
    const f = await call("GET", "/api/fleet");
    const box = $("#fleet-nodes");
    box.replaceChildren();
    if (!f.enabled) { say("no Redis configured: this node is not in a fleet"); box.hidden = true; return; }
    for (const n of f.nodes) box.append(card(n));
    box.hidden = false;
    if (f.redis === "unknown") say(`Redis is away (${f.error}): the fleet is unknown, this node works alone`, "bad");
    else say(`${f.nodes.filter((n) => n.status === "online").length} of ${f.nodes.length} nodes online`);
  }

  async function act(node, app, action, button, note) {
    const tell = (text, cls) => { notes.set(node, [text, cls]); note.textContent = text; note.className = `progress ${cls}`; };
    button.disabled = true;
    tell(`${action} ${app} on ${node}…`, "muted");
    try {
      const r = await call("POST", `/api/fleet/${encodeURIComponent(node)}/apps/${encodeURIComponent(app)}/${action}`);
      if (r.ok) tell(`${action} ${app} on ${node}: ${r.app ? r.app.state : "done"} (${r.took_s ?? 0} s)`, "ok");
      else tell(`${action} ${app} on ${node}: ${r.error}`, "bad");  // refused, expired, or the timeout, named
      if (r.ok) await show();
    } catch (err) { tell(`${action} ${app} on ${node}: ${err.message}`, "bad"); }
    finally { button.disabled = false; }
  }

  const run = () => show().catch((err) => say(err.message, "bad"));
  $("#fleet-show").addEventListener("click", run);
  const refresh = $("#refresh");  // the dashboard's Refresh: the fleet too, once it is shown
  if (refresh) refresh.addEventListener("click", () => { if (!$("#fleet-nodes").hidden) run(); });
})();
