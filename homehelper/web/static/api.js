// One way the dashboard's scripts call the API: JSON in and out, the CSRF header, and the server's
// own message as the error (backup.js, sources.js).
"use strict";
window.hhApi = async function (method, path, json) {
  const headers = { "X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content };
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body;
};
