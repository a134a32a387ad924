// Backups on the dashboard: back up now, list and download archives, restore one app's data.
// Nothing runs until a button is clicked (no timers).
"use strict";
(() => {
  const $ = (sel) => document.querySelector(sel);
  const say = (text, cls = "muted") => { const s = $("#backup-status"); s.textContent = text; s.className = cls; };

  const call = window.hhApi;  // static/api.js

  function size(n) { return n > 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.ceil(n / 1024)} kB`; }

  function option(value, text) { const o = document.createElement("option"); o.value = value; o.textContent = text; return o; }

  async function show() {
    const [list, apps] = await Promise.all([call("GET", "/api/backups"), call("GET", "/api/apps")]);
    $("#backup-where").textContent = `In ${list.folder}` + (list.schedule ? `; scheduled ${list.schedule}, keeping ${list.keep}` : "; no schedule (backup.schedule)");
    const ul = $("#backup-list"); ul.replaceChildren();
    const archives = $("#restore-archive"); archives.replaceChildren();
    for (const b of list.backups) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = `/api/backups/${encodeURIComponent(b.name)}`; a.download = b.name; a.textContent = b.name;
      li.append(a, ` · ${size(b.size)}`);
      ul.append(li);
      archives.append(option(b.name, b.name));
    }
    if (!list.backups.length) ul.append(Object.assign(document.createElement("li"), { textContent: "none yet" }));
    const sel = $("#restore-app"); sel.replaceChildren();
    for (const app of apps) sel.append(option(app.id, app.name || app.id));
    $("#restore-go").disabled = !list.backups.length || !apps.length;
    $("#backup-panel").hidden = false;
  }

  $("#backup-now").addEventListener("click", async (e) => {
    e.target.disabled = true; say("backing up…");
    try {
      const r = (await call("POST", "/api/backups")).backup;
      say(`written ${r.name} (${size(r.size)}, ${r.apps.length} apps, secrets ${r.secrets})`, "ok");
      if (!$("#backup-panel").hidden) await show();
    } catch (err) { say(err.message, "bad"); } finally { e.target.disabled = false; }
  });
  $("#backup-show").addEventListener("click", () => show().catch((err) => say(err.message, "bad")));
  $("#restore-go").addEventListener("click", async (e) => {
    const app = $("#restore-app").value, archive = $("#restore-archive").value;
    if (!app || !archive || !confirm(`Replace the data of ${app} with its copy in ${archive}? The app is stopped meanwhile.`)) return;
    e.target.disabled = true; say(`restoring ${app}…`);
    try {
      const r = (await call("POST", `/api/apps/${encodeURIComponent(app)}/restore`, { archive })).restored;
      say(`${app}: ${r.files} files restored from ${archive}` + (r.restarted ? "; started again" : ""), "ok");
    } catch (err) { say(err.message, "bad"); } finally { e.target.disabled = false; }
  });
})();
