// tabguard monitoring dashboard: draws what /dashboard/api/v1 returns, nothing else.
// Charts are uPlot (vendored, static/vendor/uplot). Panels load when they scroll into view.
// window.tgDashboard exposes what the browser tests and the benchmark read: the charts drawn
// (series, points, when), the time of the first drawn chart, requests pending, the last
// activity (busyAt), errors.
"use strict";

(() => {
  const API = "api/v1/";
  const KEY_ITEM = "tabguard.dashboard.key";
  const RATE_COLORS = { approve: "#15803d", deny: "#dc2626", review: "#d97706", delayed: "#7c3aed", refused: "#6b7280" };
  const BAND = "rgba(29,78,216,0.13)", BAND_INNER = "rgba(29,78,216,0.22)", LINE = "#1d4ed8";
  const EAGER_GROUPS = 2;  // decision cards drawn at once; the others when scrolled to
  const PALETTE = ["#1d4ed8", "#dc2626", "#15803d", "#d97706", "#7c3aed", "#0891b2", "#be185d", "#4d7c0f",
    "#b45309", "#4338ca", "#0f766e", "#9f1239", "#374151", "#65a30d", "#c2410c", "#6d28d9", "#0e7490", "#a21caf", "#854d0e", "#1e3a8a"];

  const state = { key: null, meta: null, start: null, end: null, range: "7d", segKey: "all", segValue: "all",
    stat: "p50", annotations: [], generation: 0, pinned: null, step: null };
  const T = window.tgDashboard = { charts: {}, firstChart: null, errors: [], loaded: 0, pending: 0, busyAt: 0, state };

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  };
  const fmtTime = (s) => new Date(s * 1000).toISOString().slice(0, 16).replace("T", " ");
  const pct = (v) => v == null ? "–" : (100 * v).toFixed(2) + "%";
  // Axis ticks: 1.5M, 250k, 0.25 (a feature can range over millions: full digits overflow).
  const compact = new Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: 3 });
  const fmtTick = (v) => v == null ? "" : (Math.abs(v) >= 1e4 ? compact.format(v) : String(+v.toPrecision(4)));

  // The y axis as wide as its longest tick label (uPlot's fixed 50 px cuts "1,500,000").
  function axisSize(u, values, axisIdx, cycleNum) {
    const axis = u.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    let size = axis.ticks.size + axis.gap;
    const longest = (values || []).reduce((acc, v) => (v != null && String(v).length > acc.length ? String(v) : acc), "");
    if (longest) {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / devicePixelRatio;
    }
    return Math.ceil(size) + 4;
  }

  // ---- API ----------------------------------------------------------------------------------

  async function api(path, params = {}) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined) q.set(k, v);
    T.pending++;
    T.busyAt = performance.now();
    try {
      const headers = state.key ? { Authorization: "Bearer " + state.key } : {};
      const r = await fetch(API + path + (q.toString() ? "?" + q : ""), { headers });
      if (r.status === 401 || r.status === 403) {
        sessionStorage.removeItem(KEY_ITEM);
        showLogin((await r.json()).error || "the key was refused");
        throw new Error("unauthorized");
      }
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || r.statusText);
      return body;
    } finally { T.pending--; T.loaded++; T.busyAt = performance.now(); }
  }

  function range() { return { start: state.start, end: state.end, step: state.step || undefined }; }
  function segmentParams() {
    if (state.segKey === "all") return { segment_key: "all" };
    return state.segValue === null ? { segment_key: state.segKey } : { segment_key: state.segKey, segment_value: state.segValue };
  }

  // ---- charts -------------------------------------------------------------------------------

  // Alerts and flag changes on every time axis: lines drawn on the canvas, and DOM markers
  // (hover for who changed what) placed over the plot.
  function annotationPlugin() {
    function place(u) {
      u.over.querySelectorAll(".tg-annotation").forEach((m) => m.remove());
      const [lo, hi] = [u.scales.x.min, u.scales.x.max];
      const byTime = new Map();  // one marker per time and kind: simultaneous alerts share it
      for (const a of state.annotations) {
        if (a.time < lo || a.time > hi) continue;
        const k = a.time + a.kind;
        if (!byTime.has(k)) byTime.set(k, []);
        byTime.get(k).push(a);
      }
      for (const group of byTime.values()) {
        const a = group[0];
        const m = el("div", { class: "tg-annotation " + a.kind, "data-time": String(a.time), "data-kind": a.kind,
          "data-count": String(group.length),
          title: group.map((g) => `${fmtTime(g.time)} UTC — ${g.label} (${g.actor})\n${g.detail}`).join("\n\n") });
        const x = u.valToPos(a.time, "x");
        m.style.left = x + "px";
        if (x > u.over.clientWidth * 0.6) m.classList.add("left");  // keep the tag inside the plot
        const text = group.length > 1 ? `${group.length} ${a.kind === "alert" ? "alerts" : "flag changes"}: ${group.map((g) => g.segment || g.label).join(", ")}` : a.label;
        m.append(el("span", { class: "tag", text: (a.kind === "alert" ? "⚠ " : "⚑ ") + text }));
        u.over.append(m);
      }
    }
    return { hooks: { ready: place, setScale: [(u, key) => { if (key === "x") place(u); }], setSize: place } };
  }

  function referencePlugin(ref) {
    return { hooks: { drawClear: (u) => {
      if (!ref) return;
      const ctx = u.ctx, y1 = u.valToPos(ref.p90, "y", true), y0 = u.valToPos(ref.p10, "y", true);
      ctx.save(); ctx.fillStyle = "rgba(107,114,128,0.14)";
      ctx.fillRect(u.bbox.left, Math.min(y0, y1), u.bbox.width, Math.abs(y0 - y1));
      const ym = u.valToPos(ref.p50, "y", true);
      ctx.strokeStyle = "rgba(107,114,128,0.8)"; ctx.setLineDash([3, 3]); ctx.beginPath();
      ctx.moveTo(u.bbox.left, ym); ctx.lineTo(u.bbox.left + u.bbox.width, ym); ctx.stroke(); ctx.restore();
    } } };
  }

  function chart(id, container, { t, series, title, yFmt, bands, ref, height = 210, bars = false, yMin = null }) {
    container.replaceChildren();
    const holder = el("div", { class: "chart", id });
    if (title) container.append(el("h3", { text: title }));
    container.append(holder);
    const width = Math.max(260, container.clientWidth - 16);
    const opts = {
      width, height, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      series: [{ value: (u, v) => v == null ? "" : fmtTime(v) }, ...series.map((s) => ({
        label: s.label, stroke: s.color, width: s.width || 1.5, dash: s.dash, fill: s.fill, show: s.show !== false,
        points: { show: false }, value: (u, v) => v == null ? "–" : (yFmt ? yFmt(v) : +v.toPrecision(4)),
        paths: bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined,
      }))],
      bands: bands || [],
      scales: { x: { time: true }, y: ref ? { range: (u, lo, hi) => [Math.min(lo, ref.p10), Math.max(hi, ref.p90)] }
        : (yMin !== null ? { range: (u, lo, hi) => [Math.min(yMin, lo), hi > yMin ? hi * 1.05 : yMin + 1] } : {}) },
      axes: [{}, { values: (u, vals) => vals.map(yFmt || fmtTick), size: axisSize, space: 24 }],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      plugins: [annotationPlugin(), referencePlugin(ref)],
    };
    const u = new uPlot(opts, [t, ...series.map((s) => s.values)], holder);
    const points = series.length ? series[0].values.length : 0;
    T.busyAt = performance.now();
    holder.dataset.series = String(series.length);
    holder.dataset.points = String(points);
    T.charts[id] = { series: series.length, points, labels: series.map((s) => s.label), plot: u, drawnAt: performance.now(),
      nonNull: series.map((s) => s.values.filter((v) => v != null).length) };
    if (T.firstChart === null) {
      T.firstChart = performance.now();
      // Marked when the browser is about to paint the chart (after the task drawing it).
      requestAnimationFrame(() => performance.mark("tg-first-chart"));
    }
    return u;
  }

  function empty(container, text) {
    container.replaceChildren(el("div", { class: "empty", text }));
  }

  // ---- panels -------------------------------------------------------------------------------

  // One segment (or all traffic): one card from the request refresh() already made. Every value
  // of a key: one card per value, each asking for its own value's data; the first ones at once,
  // the others when scrolled to — 20 values need not wait for (or send) 20 × 672 × 10 points.
  async function drawDecisions(pending) {
    const box = $("decisions");
    box.replaceChildren();
    const gen = state.generation;
    if (pending) {
      const p = await pending;
      if (gen !== state.generation) return;
      if (!p.groups.length) { empty(box, "no requests in this range"); return; }
      for (const g of p.groups) {
        const card = el("div", { class: "card" });
        box.append(card);
        drawDecisionGroup(p, g, card);
      }
      return;
    }
    const values = state.meta.segments[state.segKey] || [];
    if (!values.length) { empty(box, "no segment values of " + state.segKey); return; }
    const jobs = values.map((value, i) => {
      const card = el("div", { class: "card pending", "data-segment": state.segKey + "=" + value });
      box.append(card);
      card._load = async () => {
        const p = await api("decisions", { ...range(), segment_key: state.segKey, segment_value: value });
        if (gen !== state.generation) return;
        card.classList.remove("pending");
        if (!p.groups.length) { empty(card, `${state.segKey}=${value}: no requests in this range`); return; }
        drawDecisionGroup(p, p.groups[0], card);
      };
      if (i < EAGER_GROUPS) return card._load();
      observer.observe(card);
      return null;
    });
    await Promise.all(jobs.filter(Boolean));
  }

  function drawDecisionGroup(p, g, card) {
    const rates = el("div"), vol = el("div");
    card.append(rates, vol);
    const series = g.rates.map((l) => ({ label: (l.dashed ? "1 w earlier " : "") + l.name, values: l.values,
      color: RATE_COLORS[l.name], dash: l.dashed ? [5, 4] : undefined, width: l.dashed ? 1 : 1.6,
      show: !(l.name === "review" || l.name === "delayed") || l.values.some((v) => v) }));
    const slug = g.segment.replace(/[^A-Za-z0-9_-]/g, "_");
    chart(`chart-decisions-${slug}`, rates, { t: p.t, series, title: `${g.segment}: decision rates`, yFmt: (v) => v == null ? "" : (100 * v).toFixed(0) + "%" });
    chart(`chart-volume-${slug}`, vol, { t: p.t, height: 130, yMin: 0, title: `${g.segment}: requests per step`, series: [
      { label: "requests", values: g.volume, color: "#374151" },
      { label: "1 w earlier", values: g.volume_last_week, color: "#374151", dash: [5, 4], width: 1 }] });
  }

  function featureCard(info) {
    const card = el("div", { class: "feature lazy", "data-panel": "feature", "data-column": info.name, id: "feature-" + info.name });
    const pair = el("div", { class: "pair" });
    const raw = el("div", { class: "card" }), feat = el("div", { class: "card" });
    pair.append(raw, feat);
    card.append(el("h3", { text: info.name }), pair);
    card._load = async () => {
      const jobs = [];
      for (const [kind, box, has] of [["raw", raw, info.raw], ["feature", feat, info.feature]]) {
        if (!has) { empty(box, kind === "raw" ? "not logged as a raw attribute" : "not a model feature"); continue; }
        jobs.push(drawFeature(kind, info.name, box));
      }
      await Promise.all(jobs);
    };
    return card;
  }

  async function drawFeature(kind, column, box, title) {
    const gen = state.generation;
    const p = await api(`features/${kind}/${encodeURIComponent(column)}`, { ...range(), ...segmentParams(), stat: state.stat });
    if (gen !== state.generation) return;
    const id = `chart-${kind}-${column}`;
    const label = title || `${kind === "raw" ? "raw attribute" : "model feature"} ${column} — ${p.segment_value === null ? `${p.stat} per ${p.segment_key}` : (p.segment_key === "all" ? "all traffic" : p.segment_key + "=" + p.segment_value)}`;
    if (p.type === "empty" || !p.lines.length) { empty(box, "no values in this range"); return; }
    if (p.type === "category") {
      const series = p.lines.map((l, i) => ({ label: l.name, values: l.values, color: PALETTE[i % PALETTE.length] }));
      chart(id, box, { t: p.t, series, title: label + " (share of values)" + (p.note ? " — " + p.note : ""), yFmt: (v) => v == null ? "" : (100 * v).toFixed(0) + "%" });
      return;
    }
    if (p.segment_value === null) {
      const series = p.lines.map((l, i) => ({ label: l.name, values: l.values, color: PALETTE[i % PALETTE.length] }));
      chart(id, box, { t: p.t, series, title: label, ref: p.reference });
      return;
    }
    const byName = Object.fromEntries(p.lines.map((l) => [l.name, l.values]));
    const series = [
      { label: "p1", values: byName.p01, color: "rgba(29,78,216,0.35)", width: 1 },
      { label: "p10", values: byName.p10, color: "rgba(29,78,216,0.55)", width: 1 },
      { label: "p50", values: byName.p50, color: LINE, width: 2 },
      { label: "p90", values: byName.p90, color: "rgba(29,78,216,0.55)", width: 1 },
      { label: "p99", values: byName.p99, color: "rgba(29,78,216,0.35)", width: 1 },
      { label: "mean", values: byName.mean, color: "#d97706", width: 1, dash: [2, 3], show: false },
    ];
    chart(id, box, { t: p.t, series, title: label, ref: p.reference,
      bands: [{ series: [5, 1], fill: BAND }, { series: [4, 2], fill: BAND_INNER }] });
  }

  async function drawDrift(box) {
    const gen = state.generation;
    const p = await api("drift", { start: state.start, end: state.end, ...segmentOne(), stat: $("drift-stat").value, kind: $("drift-kind").value });
    if (gen !== state.generation) return;
    if (!p.columns.length) { empty(box, p.note || "no drift figures"); return; }
    const table = el("table", { class: "heatmap", id: "drift-heatmap", "data-columns": String(p.columns.length), "data-windows": String(p.windows.length) });
    const head = el("tr", {}, el("th", { text: `${p.stat.toUpperCase()} · ${p.segment}` }));
    // The heatmap's time axis carries the annotations too: a window holding an alert or a flag
    // change is marked in its header (hover: what, who).
    for (const w of p.windows) {
      const inside = state.annotations.filter((a) => a.time >= w && a.time < w + p.window);
      const th = el("th", { class: "win", text: fmtTime(w).slice(5, p.window >= 86400 ? 10 : 16) });
      if (inside.length) {
        th.classList.add(inside.some((a) => a.kind === "alert") ? "alert" : "flag");
        th.dataset.kind = inside.some((a) => a.kind === "alert") ? "alert" : "flag";
        th.title = inside.map((a) => `${fmtTime(a.time)} UTC — ${a.label} (${a.actor})`).join("\n");
      }
      head.append(th);
    }
    table.append(head);
    const hi = p.stat === "psi" ? 0.25 : 0.2;
    p.columns.forEach((c, i) => {
      const row = el("tr", {}, el("td", { text: c }));
      p.values[i].forEach((v, j) => {
        const cell = el("td", { class: "cell", title: `${c} ${fmtTime(p.windows[j])}: ${v == null ? "too few values" : v.toFixed(3)} (n=${p.n[i][j]})` });
        const x = v == null ? null : Math.min(1, v / hi);
        cell.style.background = x == null ? "#f3f4f6" : `hsl(${Math.round(55 - 55 * x)}, 90%, ${Math.round(96 - 46 * x)}%)`;
        row.append(cell);
      });
      table.append(row);
    });
    box.replaceChildren(table, el("p", { class: "legend-note", text: `${p.stat === "psi" ? "PSI: pale < 0.1 stable, red ≥ 0.25 large shift" : "Jensen–Shannon distance (0–1)"}; grey: fewer values than drift.min_rows. Windows of ${p.window / 3600} h.` }));
    T.charts["drift-heatmap"] = { series: p.columns.length, points: p.windows.length };
  }

  function segmentOne() {
    return state.segKey === "all" || state.segValue === null ? { segment_key: "all" } : { segment_key: state.segKey, segment_value: state.segValue };
  }

  async function drawGuards(box) {
    const gen = state.generation;
    const p = await api("guards", { ...range(), ...segmentOne() });
    if (gen !== state.generation) return;
    const top = el("div"), table = el("div");
    box.replaceChildren(top, table);
    if (!p.lines.length) empty(top, "no guard action in this range");
    else chart("chart-guards", top, { t: p.t, title: "requests with each guard action (share)", yFmt: (v) => v == null ? "" : (100 * v).toFixed(1) + "%",
      series: p.lines.map((l, i) => ({ label: l.name, values: l.values, color: PALETTE[i % PALETTE.length] })) });
    const tb = el("table", {}, el("tr", {}, ...["step", "action", "column", "requests", "share"].map((h) => el("th", { text: h }))));
    for (const r of p.table.slice(0, 15)) tb.append(el("tr", {}, el("td", { text: r.step }), el("td", { text: r.action }),
      el("td", { text: r.column }), el("td", { class: "num", text: r.n.toLocaleString() }), el("td", { class: "num", text: pct(r.rate) })));
    table.append(tb);
  }

  async function drawProbing(box) {
    const gen = state.generation;
    const p = await api("probing", range());
    if (gen !== state.generation) return;
    const a = el("div", { class: "card" }), b = el("div", { class: "card" }), c = el("div");
    box.replaceChildren(el("div", { class: "pair" }, a, b), c);
    if (p.signals.length) chart("chart-probing-signals", a, { t: p.t, title: "requests with each probing signal", series: p.signals.map((l, i) => ({ label: l.name, values: l.values, color: PALETTE[i % PALETTE.length] })) });
    else empty(a, "no probing signal in this range");
    if (p.clients.length) chart("chart-probing-clients", b, { t: p.t, title: "requests with a probing signal, per client", series: p.clients.map((l, i) => ({ label: l.name, values: l.values, color: PALETTE[i % PALETTE.length] })) });
    else empty(b, "no client with probing signals");
    const signals = [...new Set(p.table.flatMap((r) => Object.keys(r.signals)))].sort();
    const tb = el("table", {}, el("tr", {}, ...["client", "requests", "probing", "flagged", ...signals].map((h) => el("th", { text: h }))));
    for (const r of p.table) tb.append(el("tr", {}, el("td", { text: r.client }), ...[r.requests, r.probing, r.flagged, ...signals.map((s) => r.signals[s] || 0)].map((v) => el("td", { class: "num", text: v.toLocaleString() }))));
    c.append(tb);
  }

  async function drawPerformance(box) {
    const gen = state.generation;
    const p = await api("performance", { start: state.start, end: state.end, ...segmentOne() });
    if (gen !== state.generation) return;
    if (p.note) { empty(box, p.note); return; }
    const a = el("div", { class: "card" }), b = el("div", { class: "card" });
    box.replaceChildren(el("div", { class: "pair" }, a, b));
    chart("chart-performance", a, { t: p.windows, title: `AUC and default rate per ${p.window / 86400} d (${p.segment})`, series: [
      { label: "AUC", values: p.auc, color: "#1d4ed8" }, { label: "default rate", values: p.default_rate, color: "#dc2626" }] });
    const tb = el("table", {}, el("tr", {}, ...["score band", "decisions", "defaults", "default rate", "mean score"].map((h) => el("th", { text: h }))));
    for (const r of p.bands) tb.append(el("tr", {}, el("td", { text: `${r.low.toFixed(2)}–${r.high.toFixed(2)}` }), el("td", { class: "num", text: String(r.n) }),
      el("td", { class: "num", text: String(r.positives) }), el("td", { class: "num", text: pct(r.default_rate) }), el("td", { class: "num", text: r.mean_score == null ? "–" : r.mean_score.toFixed(3) })));
    b.append(el("h3", { text: "default rate by score band (calibration)" }), tb);
  }

  function drawEvents() {
    const box = $("events");
    if (!state.annotations.length) { empty(box, "no alert or flag change in this range"); return; }
    const tb = el("table", { id: "events-table" }, el("tr", {}, ...["time (UTC)", "what", "who", "state", "detail"].map((h) => el("th", { text: h }))));
    for (const a of state.annotations) tb.append(el("tr", { "data-kind": a.kind }, el("td", { text: fmtTime(a.time) }), el("td", { text: a.label }),
      el("td", { text: a.actor }), el("td", { text: a.state || "" }), el("td", { text: a.detail })));
    box.replaceChildren(tb);
  }

  // ---- lazy loading -------------------------------------------------------------------------

  const observer = new IntersectionObserver((entries) => {
    for (const e of entries) if (e.isIntersecting) { observer.unobserve(e.target); load(e.target); }
  }, { rootMargin: "200px" });

  function load(node) {
    const job = node._load ? node._load() : ({ drift: drawDrift, guards: drawGuards, probing: drawProbing, performance: drawPerformance })[node.dataset.panel](node);
    job.catch(fail);
  }

  function fail(err) {
    if (String(err && err.message) === "unauthorized") return;
    T.errors.push(String(err && err.message || err));
    $("status").textContent = "error: " + (err && err.message || err);
    $("status").className = "error";
  }

  // ---- controls -----------------------------------------------------------------------------

  function setRange(name) {
    const m = state.meta;
    state.range = name;
    if (name !== "custom") {
      state.end = m.latest ?? Math.floor(Date.now() / 1000);
      state.start = state.end - m.ranges[name];
      $("from").value = fmtTime(state.start).replace(" ", "T");
      $("to").value = fmtTime(state.end).replace(" ", "T");
    }
    document.querySelectorAll("[data-range]").forEach((b) => b.classList.toggle("active", b.dataset.range === name));
  }

  function fillControls(m) {
    const sel = $("segment");
    sel.replaceChildren(el("option", { value: "all", text: "all traffic" }));
    for (const [key, values] of Object.entries(m.segments)) {
      const g = el("optgroup", { label: key });
      g.append(el("option", { value: key + "=*", text: `every ${key} on one chart` }));
      for (const v of values) g.append(el("option", { value: key + "=" + v, text: `${key} = ${v}` }));
      sel.append(g);
    }
    $("jump").replaceChildren(el("option", { value: "", text: "go to…" }), ...m.columns.map((c) => el("option", { value: c.name, text: c.name })));
    $("jump").onchange = () => { const n = $("feature-" + $("jump").value); if (n) n.scrollIntoView(); };
    $("stat").replaceChildren(...m.stats.map((s) => el("option", { value: s, text: s })));
    $("stat").value = state.stat;
    sel.onchange = () => { setSegment(sel.value); refresh(); };
    $("stat").onchange = () => { state.stat = $("stat").value; refresh(); };
    const bucket = m.bucket;
    $("step").replaceChildren(el("option", { value: "", text: "auto" }), ...[1, 3, 6, 24].map((h) => h * 3600).filter((x) => x >= bucket && x % bucket === 0)
      .map((x) => el("option", { value: String(x), text: x >= 86400 ? x / 86400 + " d" : x / 3600 + " h" })));
    $("step").onchange = () => { state.step = $("step").value ? +$("step").value : null; refresh(); };
    document.querySelectorAll("[data-range]").forEach((b) => { b.onclick = () => { setRange(b.dataset.range); refresh(); }; });
    $("apply").onclick = () => {
      const s = Date.parse($("from").value + ":00Z") / 1000, e = Date.parse($("to").value + ":00Z") / 1000;
      if (!(s < e)) { fail(new Error("custom range: 'from' must be before 'to'")); return; }
      state.start = s; state.end = e; setRange("custom"); refresh();
    };
    $("drift-stat").onchange = $("drift-kind").onchange = () => load($("drift"));
  }

  // "all", "key=value" or "key=*" (every value of the key on one chart).
  function setSegment(v) {
    if (!v || v === "all") { state.segKey = "all"; state.segValue = "all"; v = "all"; }
    else { const i = v.indexOf("="); state.segKey = v.slice(0, i); state.segValue = v.slice(i + 1) === "*" ? null : v.slice(i + 1); }
    if ([...$("segment").options].some((o) => o.value === v)) $("segment").value = v;
  }

  async function refresh() {
    state.generation++;
    T.charts = {};
    T.firstChart = null;
    $("status").textContent = `${fmtTime(state.start)} – ${fmtTime(state.end)} UTC`;
    $("status").className = "muted";
    $("stat-label").hidden = !(state.segKey !== "all" && state.segValue === null);
    // The annotations and the decisions are asked for together; charts wait for both (every
    // time axis carries the annotations), so the first chart costs one round trip, not two.
    const annotated = api("annotations", { start: state.start, end: state.end })
      .then((r) => { state.annotations = r.items; }, (err) => { fail(err); state.annotations = []; })
      .then(drawEvents);
    const everyValue = state.segKey !== "all" && state.segValue === null;
    const decisions = everyValue ? null : api("decisions", { ...range(), ...segmentParams() });
    if (decisions) decisions.catch(() => {});  // reported by drawDecisions
    await annotated;
    const features = $("features");
    features.replaceChildren();
    // A feature named in the URL (?feature=AGE, e.g. from an alert) is drawn first.
    const cols = [...state.meta.columns].sort((a, b) => (b.name === state.pinned) - (a.name === state.pinned));
    for (const info of cols) features.append(featureCard(info));
    const ops = $("operational");
    ops.replaceChildren();
    for (const [kind, column, title] of [["score", "score", "model score"], ["latency_ms", "latency_ms", "latency (ms)"]]) {
      const box = el("div", { class: "card lazy", "data-panel": "op" });
      box._load = () => drawFeature(kind, column, box, title);
      ops.append(box);
    }
    // The other panels load once the decisions are drawn: the server answers one request at a
    // time per core, and the top panel should not queue behind a dozen feature charts.
    const gen = state.generation;
    await drawDecisions(decisions).catch(fail);
    if (gen !== state.generation) return;
    const pinned = state.pinned && $("feature-" + state.pinned);
    if (pinned) load(pinned);  // named in the URL: drawn wherever it is on the page
    document.querySelectorAll(".lazy").forEach((n) => { observer.unobserve(n); if (n !== pinned) observer.observe(n); });
  }

  async function start() {
    $("login").hidden = true;
    try {
      state.meta = await api("meta");
    } catch (err) { fail(err); return; }
    const m = state.meta;
    $("store").textContent = `${m.store} · buckets of ${m.bucket / 3600} h` + (m.latest ? ` · complete until ${fmtTime(m.latest)} UTC` : " · empty");
    $("main").hidden = false;
    $("controls").hidden = false;
    fillControls(m);
    // The URL can name the view: ?range=28d&segment=channel=partner&stat=p90&feature=PAY_AMT2
    const q = new URLSearchParams(location.search);
    if (q.get("range") in m.ranges) state.range = q.get("range");
    if (q.get("stat") && m.stats.includes(q.get("stat"))) { state.stat = q.get("stat"); $("stat").value = state.stat; }
    state.pinned = q.get("feature");
    if (q.get("step") && [...$("step").options].some((o) => o.value === q.get("step"))) { state.step = +q.get("step"); $("step").value = q.get("step"); }
    setSegment(q.get("segment"));
    setRange(state.range);
    await refresh();
  }

  function showLogin(message) {
    $("main").hidden = true;
    $("controls").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
  }

  window.addEventListener("error", (e) => T.errors.push(String(e.message)));
  window.addEventListener("unhandledrejection", (e) => T.errors.push(String(e.reason)));
  document.addEventListener("DOMContentLoaded", () => {
    $("login").onsubmit = (e) => {
      e.preventDefault();
      state.key = $("key").value.trim();
      sessionStorage.setItem(KEY_ITEM, state.key);
      start();
    };
    // Without a stored key the page still asks: a dashboard started with --open needs none.
    state.key = sessionStorage.getItem(KEY_ITEM);
    start();
  });
})();
