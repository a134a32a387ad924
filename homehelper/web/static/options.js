// An app's settings: a form generated from its manifest's options (app card -> "Settings").
// Only changed values are sent; the server checks them all and names any it refuses. A password is
// never shown back: the form says whether it is set, and an empty field keeps it.
"use strict";
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const csrf = $('meta[name="csrf-token"]').content;
  const dialog = $("#options-dialog"), form = $("#options-form"), note = $("#options-note");
  let appId = null, loaded = null;

  const url = (id) => `/api/apps/${encodeURIComponent(id)}/options`;

  async function call(method, id, body) {
    const headers = { "X-CSRF-Token": csrf };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(url(id), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const out = await r.json().catch(() => ({}));
    if (!r.ok) { const e = new Error(out.message || r.statusText); e.errors = (out.detail || {}).errors || []; throw e; }
    return out;
  }

  function el(tag, attrs = {}, text = "") {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) if (v !== null && v !== undefined) e.setAttribute(k, v);
    if (text) e.textContent = text;
    return e;
  }

  function input(o, value, secret) {
    const attrs = { name: o.name, id: "opt-" + o.name };
    if (o.type === "bool") { const c = el("input", { ...attrs, type: "checkbox" }); c.checked = !!value; return c; }
    if (o.type === "enum") {
      const s = el("select", attrs);
      for (const c of o.choices) { const opt = el("option", { value: c }, c); opt.selected = c === value; s.append(opt); }
      return s;
    }
    if (o.type === "list") {
      const t = el("textarea", { ...attrs, rows: 3, placeholder: "one item per line" });
      t.value = (value || []).join("\n");
      return t;
    }
    if (o.type === "password") {
      return el("input", { ...attrs, type: "password", autocomplete: "new-password",
        placeholder: secret === "set" ? "set (leave empty to keep)" : "not set" });
    }
    const num = o.type === "int" || o.type === "float";
    const i = el("input", { ...attrs, type: num ? "number" : "text", step: o.type === "int" ? "1" : (num ? "any" : null),
      min: num ? o.min : null, max: num ? o.max : null, maxlength: num ? null : o.max });
    i.value = value ?? "";
    return i;
  }

  function render(data) {
    loaded = data;
    form.replaceChildren();
    if (!data.options.length) { form.append(el("p", { class: "muted" }, "This app has no settings.")); return; }
    for (const o of data.options) {
      const row = el("div", { class: "option", "data-option": o.name });
      row.append(el("label", { for: "opt-" + o.name }, o.title || o.name));
      row.append(input(o, data.values[o.name], data.secrets[o.name]));
      if (o.type === "password") {
        const state = el("span", { class: "secret-state muted" }, data.secrets[o.name]);
        row.append(state);
        if (data.secrets[o.name] === "set") {
          const forget = el("label", { class: "muted" });
          const box = el("input", { type: "checkbox", name: o.name + "__forget" });
          forget.append(box, " forget");
          row.append(forget);
        }
      }
      if (o.description) row.append(el("small", { class: "muted" }, o.description));
      row.append(el("small", { class: "error option-error" }));
      form.append(row);
    }
    const save = el("button", { type: "submit" }, "Save");
    form.append(save);
  }

  function read(o) {
    const f = form.elements[o.name];
    if (o.type === "bool") return f.checked;
    if (o.type === "list") {
      const items = f.value.split("\n").map((s) => s.trim()).filter((s) => s !== "");
      return o.items === "string" ? items : items.map(Number);
    }
    if (o.type === "int" || o.type === "float") return f.value === "" ? null : Number(f.value);
    return f.value;
  }

  function changes() {
    const out = {};
    for (const o of loaded.options) {
      if (o.type === "password") {
        const forget = form.elements[o.name + "__forget"];
        if (forget && forget.checked) out[o.name] = null;
        else if (form.elements[o.name].value !== "") out[o.name] = form.elements[o.name].value;
        continue;
      }
      const now = read(o);
      if (JSON.stringify(now) !== JSON.stringify(loaded.values[o.name] ?? null)) out[o.name] = now;
    }
    return out;
  }

  async function openFor(id, name) {
    appId = id;
    $("#options-app").textContent = name || id;
    note.textContent = "loading…"; note.className = "muted";
    form.replaceChildren();
    dialog.showModal();
    try { render(await call("GET", id)); note.textContent = ""; }
    catch (e) { note.textContent = e.message; note.className = "error"; }
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    form.querySelectorAll(".option-error").forEach((x) => { x.textContent = ""; });
    const body = changes();
    if (!Object.keys(body).length) { note.textContent = "nothing changed"; note.className = "muted"; return; }
    const btn = $('button[type="submit"]', form);
    btn.disabled = true;
    note.textContent = "saving…"; note.className = "muted";
    try {
      const out = await call("PUT", appId, body);
      render(out);
      note.textContent = out.restarted ? "saved; the app restarted to use them" : "saved";
      note.className = "ok";
    } catch (err) {
      note.textContent = err.message; note.className = "error";
      for (const line of err.errors || []) {  // "name: why": shown beside its field
        const name = line.split(":")[0];
        const row = form.querySelector(`[data-option="${CSS.escape(name)}"] .option-error`);
        if (row) row.textContent = line;
      }
    } finally { btn.disabled = false; }
  });

  document.addEventListener("click", (e) => {
    const b = e.target.closest('[data-do="settings"]');
    if (!b) return;
    const card = b.closest(".card");
    openFor(card.dataset.app, $(".name", card).textContent);
  });
})();
