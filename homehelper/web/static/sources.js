// Apps from a source: the "Add app" dialog (preview the manifest and its permissions, then install)
// and each card's "Versions" dialog (check for an update, update with rollback, switch back, auto-update).
// Nothing runs until a button is clicked (no timers).
"use strict";
(() => {
  const $ = (sel) => document.querySelector(sel);
  const addDialog = $("#add-dialog"), versions = $("#versions-dialog");
  let token = null, appId = null;

  const call = window.hhApi;  // static/api.js
  const say = (el, text, cls = "muted") => { el.textContent = text; el.className = cls; };
  // The dashboard refreshes once a dialog that changed something closes (behind a modal dialog the
  // page is inert: its Refresh button takes no click).
  let changed = false;
  function refreshDashboard() { changed = true; }
  for (const d of [addDialog, versions]) {
    d.addEventListener("close", () => { if (changed) { changed = false; $("#refresh").click(); } });
  }
  const short = (v) => (v || "").startsWith("local-") ? v : (v || "").slice(0, 12);

  $("#add-app").addEventListener("click", () => {
    token = null; $("#add-shown").hidden = true;
    say($("#add-note"), "Nothing is installed before you confirm.");
    addDialog.showModal();
  });

  $("#add-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const btn = $("#add-preview"); btn.disabled = true; $("#add-shown").hidden = true; token = null;
    say($("#add-note"), "fetching and checking…");
    try {
      const body = { source: $("#add-source").value.trim(), subdir: $("#add-subdir").value.trim(),
        ref: $("#add-ref").value.trim() || null };
      const p = (await call("POST", "/api/apps/add", body)).preview;
      token = p.token;
      $("#add-id").textContent = `${p.app_id} · ${p.name}${p.version ? " " + p.version : ""}`;
      $("#add-type").textContent = p.type;
      $("#add-from").textContent = `${p.source}${p.subdir ? "/" + p.subdir : ""} (${p.kind}${p.commit ? ", " + short(p.commit) : ""})`;
      const grants = [...p.permissions, ...p.devices];
      $("#add-grants").textContent = grants.length ? grants.join(", ") + " (you approve these before it starts)" : "nothing beyond its sandbox";
      $("#add-description").textContent = p.description || "";
      $("#add-shown").hidden = false;
      say($("#add-note"), "Check what it asks for, then install.");
    } catch (err) { say($("#add-note"), err.message, "bad"); } finally { btn.disabled = false; }
  });

  $("#add-confirm").addEventListener("click", async (e) => {
    if (!token) return;
    e.target.disabled = true; say($("#add-note"), "installing…");
    try {
      const r = (await call("POST", "/api/apps/add", { token })).added;
      token = null; $("#add-shown").hidden = true;
      say($("#add-note"), `added ${r.app_id} (${short(r.version)}): start it from its card`, "ok");
      refreshDashboard();
    } catch (err) { say($("#add-note"), err.message, "bad"); } finally { e.target.disabled = false; }
  });

  const api = (what) => `/api/apps/${encodeURIComponent(appId)}/${what}`;

  async function show() {
    const data = await call("GET", api("source"));
    const s = data.source, list = $("#versions-list");
    list.replaceChildren();
    for (const b of ["#versions-check", "#versions-update", "#versions-auto"]) $(b).disabled = !s;
    if (!s) { $("#versions-source").textContent = "Not added from a source: copied into the apps folder by hand."; return; }
    $("#versions-source").textContent = `From ${s.url}${s.subdir ? "/" + s.subdir : ""} (${s.kind}${s.ref ? ", ref " + s.ref : ""})`
      + (s.available ? ` · update available: ${short(s.available)}` : "");
    $("#versions-check").disabled = s.kind !== "git";
    $("#versions-auto").checked = !!s.auto_update;
    $("#versions-auto").disabled = s.kind !== "git";
    for (const v of data.versions) {
      const li = document.createElement("li");
      li.dataset.version = v.version;
      li.append(`${short(v.version)} · installed ${new Date(v.installed_at * 1000).toLocaleString()} `);
      if (v.current) li.append(Object.assign(document.createElement("strong"), { textContent: "current" }));
      else {
        const b = Object.assign(document.createElement("button"), { type: "button", textContent: "Switch to this" });
        b.addEventListener("click", () => update({ to: v.version }));
        li.append(b);
      }
      list.append(li);
    }
  }

  async function update(body) {
    const note = $("#versions-note");
    say(note, "updating… (the app is checked for its grace period, and rolled back if it fails)");
    try {
      const r = await call("POST", api("update"), body);
      say(note, r.updated ? `now at ${short(r.version)}` : r.message, "ok");
    } catch (err) { say(note, err.message, "bad"); }
    await show().catch(() => {});
    refreshDashboard();
  }

  document.addEventListener("click", (e) => {
    const b = e.target.closest('[data-do="versions"]');
    if (!b) return;
    const card = b.closest(".card");
    appId = card.dataset.app;
    $("#versions-app").textContent = $(".name", card).textContent;
    say($("#versions-note"), "");
    versions.showModal();
    show().catch((err) => say($("#versions-note"), err.message, "bad"));
  });
  $("#versions-check").addEventListener("click", async () => {
    say($("#versions-note"), "checking…");
    try {
      const r = await call("POST", api("check-update"));
      say($("#versions-note"), r.update_available ? `${short(r.latest)} is available` : "up to date", "ok");
      await show();
    } catch (err) { say($("#versions-note"), err.message, "bad"); }
  });
  $("#versions-update").addEventListener("click", () => update({}));
  $("#versions-auto").addEventListener("change", async (e) => {
    try {
      await call("POST", api("auto-update"), { enabled: e.target.checked });
      say($("#versions-note"), e.target.checked ? "checked daily, updated when there is a new commit" : "auto-update off", "ok");
    } catch (err) { say($("#versions-note"), err.message, "bad"); e.target.checked = !e.target.checked; }
  });
})();
