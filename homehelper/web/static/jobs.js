// Job cards (type "job"): schedule, next run, last run (result, duration) and the "Run now" button.
// app.js calls hhJobs.fill(card, app) after filling a card; the button is a plain data-action.
"use strict";
window.hhJobs = (() => {
  const when = (t) => (t == null ? "—" : new Date(t * 1000).toLocaleString());
  const secs = (d) => (d == null ? "" : d < 10 ? `${d.toFixed(1)} s` : `${Math.round(d)} s`);

  function lastRun(r) {
    if (!r) return "never";
    const how = r.result === "success" ? "ok"
      : r.result === "exit-code" ? `failed (exit status ${r.exit_status})` : `failed (${r.result})`;
    return `${when(r.started)} · ${how} · ${secs(r.duration)}`;
  }

  function fill(el, a) {
    const job = a.type === "job" ? (a.job || {}) : null;
    el.querySelectorAll(".job").forEach((n) => { n.hidden = !job; });
    const run = el.querySelector('[data-action="run"]');
    run.hidden = !job;
    if (!job) return;
    el.querySelector(".job-schedule").textContent = `${job.schedule || "—"} · timeout ${job.timeout ?? "—"} s`;
    el.querySelector(".job-next").textContent = job.next_run == null ? "not scheduled (Start arms it)" : when(job.next_run);
    el.querySelector(".job-last").textContent = lastRun(job.last_run);
    el.querySelector(".port").textContent = "—";
    run.disabled = ["running", "installing", "invalid"].includes(a.state);
    // Stop pauses the schedule (and ends a run); Start arms it and runs the job now.
    el.querySelector('[data-action="stop"]').disabled = !["scheduled", "running"].includes(a.state);
    el.querySelector('[data-action="start"]').disabled = ["scheduled", "running", "invalid"].includes(a.state);
  }

  return { fill };
})();
