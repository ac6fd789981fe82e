// The fleet page: it subscribes to the server's event stream and updates
// the table, plots and lists in place. No framework; uPlot draws the plots.
"use strict";
(function () {
  const body = document.body;
  if (body.dataset.kind !== "fleet") return;
  const $ = (id) => document.getElementById(id);
  const api = "/api/" + body.dataset.refKind + "/" + encodeURIComponent(body.dataset.namespace) + "/" + encodeURIComponent(body.dataset.name);
  const tokenMeta = document.querySelector('meta[name="lockstep-token"]');
  const token = tokenMeta ? tokenMeta.content : "";
  const palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"];

  // Plot data: x (seconds) and, per cluster, weight, rate and latency.
  let xs = [];
  let series = {}; // cluster -> {w: [], r: [], l: []}
  let clusters = [];
  let charts = {};
  let last = null;
  let hold = null;
  let serverSkew = 0; // server clock minus ours, for the countdown

  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }
  function setClass(el, cls) {
    if (el && el.className !== cls) el.className = cls;
  }
  function show(el, text) {
    if (!el) return;
    setText(el, text || "");
    el.hidden = !text;
  }
  function fmtTime(s) {
    const d = new Date(s);
    return isNaN(d) ? "" : d.toISOString().substring(11, 19);
  }
  function shortHash(h) { return h ? h.substring(0, 10) : "—"; }

  function addPoint(p) {
    xs.push(p.t);
    for (const c of clusters) {
      const s = series[c];
      s.w.push(p.w && c in p.w ? p.w[c] : null);
      s.r.push(p.r && c in p.r ? p.r[c] : null);
      s.l.push(p.l && c in p.l ? p.l[c] : null);
    }
  }

  function rebuild(points) {
    xs = [];
    series = {};
    for (const c of clusters) series[c] = { w: [], r: [], l: [] };
    for (const p of points) addPoint(p);
  }

  function chartOpts(el, kind, threshold) {
    const width = Math.max(320, el.clientWidth || 420);
    const s = [{}];
    clusters.forEach((c, i) => {
      // Clusters in step draw on top of each other: each later line is
      // thinner, so every one still shows inside the one below it.
      const o = { label: c, stroke: palette[i % palette.length], width: Math.max(1.25, 5 - 1.5 * i), spanGaps: kind !== "w" };
      if (kind === "w") o.paths = uPlot.paths.stepped({ align: 1 });
      s.push(o);
    });
    const opts = { width: width, height: 200, series: s, legend: { live: false }, cursor: { drag: { x: false, y: false } }, axes: [{}, { size: 50 }] };
    if (kind === "w") opts.scales = { y: { range: [0, 100] } };
    if (kind === "r") {
      s.push({ label: "threshold " + threshold, stroke: "#111827", dash: [6, 4], width: 1.5, points: { show: false } });
      opts.scales = { y: { range: (u, min, max) => [Math.min(threshold - 0.05, min == null ? 1 : min), 1] } };
    }
    if (kind === "l") opts.scales = { y: { range: (u, min, max) => [0, Math.max(10, (max || 0) * 1.2)] } };
    return opts;
  }

  function chartData(kind) {
    const d = [xs];
    for (const c of clusters) d.push(series[c][kind]);
    if (kind === "r") d.push(xs.map(() => (last ? last.threshold : null)));
    return d;
  }

  function drawCharts(recreate) {
    for (const [kind, id] of [["w", "chart-weight"], ["r", "chart-rate"], ["l", "chart-latency"]]) {
      const el = $(id);
      if (recreate || !charts[kind]) {
        if (charts[kind]) charts[kind].destroy();
        el.textContent = "";
        charts[kind] = new uPlot(chartOpts(el, kind, last ? last.threshold : 0.9), chartData(kind), el);
      } else {
        charts[kind].setData(chartData(kind));
      }
    }
  }

  function verdictText(v) {
    if (!v) return "—";
    let t = v.verdict;
    if (v.successRate != null) t += " " + (v.successRate * 100).toFixed(1) + "%";
    return t;
  }
  function evidenceText(v) {
    if (!v || !v.evidence) return v && v.requests ? v.requests + " req" : "—";
    const e = v.evidence;
    let t = "canary " + e.canary.failures + "/" + e.canary.requests + " failed, stable " + e.stable.failures + "/" + e.stable.requests;
    if (e.decision) t += " · " + e.decision;
    return t;
  }

  function row(c) {
    const tbody = $("members").tBodies[0];
    let tr = tbody.querySelector('tr[data-cluster="' + CSS.escape(c.name) + '"]');
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.cluster = c.name;
      for (const k of ["name", "reach", "phase", "step", "weights", "images", "pods", "wave", "verdict", "evidence"]) {
        const td = document.createElement("td");
        td.className = "c-" + k;
        tr.appendChild(td);
      }
      tbody.appendChild(tr);
    }
    return tr;
  }

  function renderRow(c, i) {
    const tr = row(c);
    const cell = (k) => tr.querySelector(".c-" + k);
    const nameCell = cell("name");
    if (!nameCell.firstChild) {
      const sw = document.createElement("span");
      sw.className = "swatch";
      nameCell.appendChild(sw);
      nameCell.appendChild(document.createTextNode(""));
    }
    nameCell.firstChild.style.background = palette[i % palette.length];
    setText(nameCell.lastChild, c.name);
    const reach = cell("reach");
    setText(reach, c.reachable ? (c.found ? "yes" : "no Rollout") : "Unreachable: " + (c.error || ""));
    setClass(tr, c.reachable ? (c.aborted ? "aborted" : "") : "unreachable");
    tr.dataset.reachable = c.reachable ? "true" : "false";
    let phase = c.phase || "—";
    if (c.aborted) phase += " (aborted)";
    else if (c.paused) phase += " (paused)";
    setText(cell("phase"), phase);
    setText(cell("step"), c.step != null ? c.step + "/" + c.steps : "—");
    let w = "—";
    if (c.weights) w = c.weights.stable + "/" + c.weights.canary;
    else if (c.setWeight != null) w = 100 - c.setWeight + "/" + c.setWeight + " (steps)";
    setText(cell("weights"), w);
    const img = (s) => (s ? s.split("/").pop() : "");
    let images = img(c.stableImage);
    if (c.canaryImage && c.canaryImage !== c.stableImage) images += " → " + img(c.canaryImage);
    setText(cell("images"), images || "—");
    setText(cell("pods"), (c.replicaSets || []).map((r) => r.role + " " + r.ready + "/" + r.replicas).join(", ") || "—");
    setText(cell("wave"), c.wave || "—");
    setText(cell("verdict"), verdictText(c.verdict));
    setText(cell("evidence"), evidenceText(c.verdict));
  }

  function renderList(id, items, fn) {
    const el = $(id);
    const key = JSON.stringify(items || []);
    if (el.dataset.key === key) return;
    el.dataset.key = key;
    el.textContent = "";
    for (const it of (items || []).slice().reverse()) {
      const li = document.createElement("li");
      fn(li, it);
      el.appendChild(li);
    }
  }

  let awaitingApproval = false;
  function renderHold() {
    const el = $("hold");
    if (!hold) {
      setText(el, "—");
      return;
    }
    const left = Math.max(0, (Date.parse(hold.until) - (Date.now() + serverSkew)) / 1000);
    const total = (Date.parse(hold.until) - Date.parse(hold.since)) / 1000;
    const over = awaitingApproval ? "hold over, waiting for a person's approval" : "hold over, waiting for analysis";
    setText(el, "step " + hold.step + ": " + (left > 0 ? left.toFixed(0) + "s of " + total.toFixed(0) + "s hold left" : over) + " (since " + fmtTime(hold.since) + ")");
  }

  function renderActions(s) {
    const enabled = s.actions.enabled && token !== "" && s.fleet != null;
    let why = "";
    if (!s.actions.enabled) why = "Actions off: " + s.actions.reason;
    else if (body.dataset.tokenState === "stale") why = "Actions off: this page's token is stale";
    else if (token === "") why = "Actions off: open the URL that lockstep dashboard printed";
    const co = s.fleet && s.fleet.coordinator;
    const awaiting = co != null && co.reason === "AwaitingApproval";
    for (const b of document.querySelectorAll("button.verb")) {
      if (b.dataset.verb === "approve") {
        // Approving is asked for: the button is live only while a wave
        // or a barrier waits for a person.
        b.disabled = !enabled || !awaiting;
        b.title = why || (awaiting ? co.message : "nothing awaits approval");
        b.hidden = co == null;
        continue;
      }
      b.disabled = !enabled;
      b.title = why;
    }
    setText($("actions-off"), why);
  }

  function apply(s) {
    const recreate = s.reset || !last;
    serverSkew = Date.parse(s.at) - Date.now();
    last = s;
    const names = s.fleet ? s.fleet.clusters.map((c) => c.name) : clusters;
    const newClusters = names.join("\n") !== clusters.join("\n");
    if (s.reset || newClusters) {
      const kept = s.reset ? s.points : null;
      clusters = names;
      if (kept) rebuild(kept);
      else {
        // A member joined or left: keep the points, re-shaped.
        const old = series;
        series = {};
        for (const c of clusters) series[c] = old[c] || { w: xs.map(() => null), r: xs.map(() => null), l: xs.map(() => null) };
      }
    } else {
      for (const p of s.points || []) addPoint(p);
    }
    show($("fleet-error"), s.error || "");
    show($("metrics-error"), s.metricsError || "");
    const eb = $("error-banner");
    if (eb && !s.error) eb.hidden = true;
    const f = s.fleet;
    const co = f && f.coordinator;
    setText($("phase"), co ? co.phase || "—" : f ? "no coordinator" : "—");
    setClass($("phase"), "badge phase-" + (co ? co.phase : "none"));
    setText($("rollout"), f ? f.rollout : "—");
    setText($("revision"), co ? shortHash(co.revision) : f && f.clusters.length ? shortHash(f.clusters[0].revision) : "—");
    setText($("step"), co && co.currentStep != null ? String(co.currentStep) : "—");
    setText($("global"), co ? verdictText(co.global) : "—");
    let msg = co ? (co.reason ? co.reason + ": " : "") + (co.message || "") : "";
    if (co && co.aborted) msg = "Aborted: " + (co.abortReason || "") + (msg ? " · " + msg : "");
    setText($("message"), msg || "—");
    hold = s.hold || null;
    awaitingApproval = co != null && co.reason === "AwaitingApproval";
    renderHold();
    if (f) {
      const tbody = $("members").tBodies[0];
      for (const tr of Array.from(tbody.rows)) if (!names.includes(tr.dataset.cluster)) tr.remove();
      f.clusters.forEach(renderRow);
    }
    renderList("history", s.history, (li, e) => {
      li.textContent = fmtTime(e.time) + " " + e.action + (e.step != null ? " step " + e.step : "") + (e.reason ? " (" + e.reason + ")" : "") + (e.message ? ": " + e.message : "");
      li.className = "a-" + e.action;
    });
    renderList("events", s.events, (li, e) => {
      li.textContent = fmtTime(e.time) + " " + e.type + " " + e.reason + ": " + e.message + (e.count > 1 ? " (×" + e.count + ")" : "");
      li.className = e.type === "Warning" ? "warn" : "";
    });
    renderList("conditions", s.conditions, (li, c) => {
      li.textContent = c.type + "=" + c.status + (c.reason ? " (" + c.reason + ")" : "") + (c.message ? ": " + c.message : "");
    });
    renderActions(s);
    drawCharts(recreate || newClusters);
    body.dataset.seq = String(s.seq);
    // The moment a change is on screen is the frame after the update:
    // tests and people measuring the page read these.
    requestAnimationFrame(() => {
      const at = Date.now();
      window.lockstepRendered = { seq: s.seq, at: at, points: xs.length };
      for (const tr of $("members").tBodies[0].rows) {
        const text = tr.querySelector(".c-phase").textContent + " | " + tr.querySelector(".c-reach").textContent;
        const seen = (window.lockstepSeen[tr.dataset.cluster] = window.lockstepSeen[tr.dataset.cluster] || []);
        if (!seen.length || seen[seen.length - 1].text !== text) seen.push({ at: at, text: text });
      }
    });
  }

  function connect() {
    const es = new EventSource(api + "/stream");
    es.onopen = () => { setText($("conn"), "● live"); setClass($("conn"), "conn live"); };
    es.onerror = () => { setText($("conn"), "● reconnecting"); setClass($("conn"), "conn down"); };
    es.onmessage = (ev) => apply(JSON.parse(ev.data));
  }

  // Actions: a confirmation, then a POST with the token in a header.
  let pending = null;
  // The step a promote was clicked at: the server refuses it once the
  // fleet has moved on (another page promoted first).
  let pendingStep = null;
  function shownStep(s) {
    const f = s && s.fleet;
    if (!f) return null;
    if (f.coordinator && f.coordinator.currentStep != null) return f.coordinator.currentStep;
    const steps = (f.clusters || []).map((c) => c.step).filter((x) => x != null);
    return steps.length ? Math.min(...steps) : null;
  }
  const dlg = $("confirm");
  for (const b of document.querySelectorAll("button.verb")) {
    b.addEventListener("click", () => {
      pending = b.dataset.verb;
      pendingStep = shownStep(last);
      const text = pending === "approve"
        ? "approve what " + body.dataset.namespace + "/" + body.dataset.name + " waits for, as yourself (the hub's identity of this dashboard)? " + b.title
        : pending + " " + body.dataset.namespace + "/" + body.dataset.name + " in every cluster of the fleet?";
      setText($("confirm-text"), pending === "promote" && pendingStep != null ? text.replace("?", " (from step " + pendingStep + ")?") : text);
      setText($("confirm-ok"), pending);
      dlg.showModal();
    });
  }
  $("confirm-cancel").addEventListener("click", () => { pending = null; dlg.close(); });
  $("confirm-ok").addEventListener("click", async () => {
    const verb = pending;
    dlg.close();
    if (!verb) return;
    const out = $("action-result");
    out.hidden = false;
    setClass(out, "result");
    setText(out, verb + "…");
    try {
      const at = verb === "promote" && pendingStep != null ? "?step=" + pendingStep : "";
      const r = await fetch(api + "/actions/" + verb + at, { method: "POST", headers: { "X-Lockstep-Token": token }, credentials: "same-origin" });
      const j = await r.json();
      if (j.error) {
        setClass(out, "result error");
        setText(out, verb + " refused: " + j.error);
        return;
      }
      setClass(out, r.ok ? "result ok" : "result error");
      const lines = (j.results || []).map((c) => c.cluster + ": " + (c.ok ? "" : "failed: ") + c.message);
      setText(out, [j.message].concat(lines).join("\n"));
    } catch (e) {
      setClass(out, "result error");
      setText(out, verb + " failed: " + e);
    }
  });

  window.lockstepSeen = {};
  // What the plots hold, per cluster: points drawn and the largest weight.
  window.lockstepPlot = () => {
    const out = { points: xs.length, maxWeight: {}, rates: {} };
    for (const c of clusters) {
      out.maxWeight[c] = Math.max(-1, ...series[c].w.filter((v) => v != null));
      out.rates[c] = series[c].r.filter((v) => v != null).length;
    }
    return out;
  };
  setInterval(renderHold, 500);
  window.addEventListener("resize", () => drawCharts(true));
  connect();
})();
