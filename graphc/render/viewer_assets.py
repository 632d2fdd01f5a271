"""The style sheet and script of the backprop viewer (``graphc.render.viewer``), inlined into
every page it writes so that the page needs nothing from the network.

Kept as Python strings rather than files so that they install with the package as it is
(no package data to declare). The script reads the page's data from a JSON block and only
ever writes user text with ``textContent``, never as HTML.
"""

CSS = r"""
:root {
  --ink: #222; --muted: #6b6b6b; --value: #22aa77; --grad: #cc3333; --now: #e08600;
  --line: #d9d9d9; --panel: #f7f7f5; --sel: #fff1c9; --step: #fde3b8;
  font-family: "Helvetica Neue", Helvetica, Arial, sans-serif; color: var(--ink);
}
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; background: #fff; }
body { display: flex; flex-direction: column; font-size: 20px; }
header { display: flex; flex-wrap: nowrap; align-items: center; gap: 8px 12px;
  padding: 8px 16px; border-bottom: 1px solid var(--line); }
header h1 { font-size: 22px; margin: 0; font-weight: 600; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; min-width: 4em; }
[role=tablist] { display: flex; gap: 4px; }
button { font: inherit; font-size: 17px; padding: 4px 10px; white-space: nowrap;
  border: 1px solid #bbb; border-radius: 6px; background: #fff; cursor: pointer;
  color: var(--ink); }
button:hover { background: #f0f0f0; }
button[aria-selected=true] { background: var(--ink); color: #fff; border-color: var(--ink); }
.controls { display: flex; align-items: center; gap: 6px; }
#slider { width: 170px; accent-color: var(--now); }
#counter { font-variant-numeric: tabular-nums; min-width: 7.5em; font-size: 18px; }
.spacer { flex: 1; }
main { flex: 1; min-height: 0; display: flex; }
#stage-panel { flex: 1; min-width: 0; display: flex; flex-direction: column; padding: 8px 12px; }
.figure { flex: 1; min-height: 0; }
.figure[hidden] { display: none; }
.figure svg { width: 100%; height: 100%; display: block; }
#caption { border-top: 1px solid var(--line); padding: 8px 4px 4px; min-height: 5.5em; }
#caption h2 { font-size: 22px; margin: 0 0 6px; font-weight: 600; }
#caption table { border-collapse: collapse; font-family: "DejaVu Sans Mono", Menlo, Consolas,
  monospace; font-size: 21px; }
#caption th { color: var(--muted); font-weight: normal; text-align: left; padding: 0 14px 2px 0; }
#caption td { padding: 1px 14px 1px 0; white-space: nowrap; }
#caption td.upstream { color: var(--grad); }
#caption td.result { color: var(--now); font-weight: 700; }
#caption td.value { color: var(--value); }
#caption td.op { color: var(--muted); }
#code-panel { width: 34%; max-width: 720px; min-width: 300px; border-left: 1px solid var(--line);
  background: var(--panel); display: flex; flex-direction: column; }
#code-panel h2 { font-size: 16px; color: var(--muted); font-weight: normal; margin: 0;
  padding: 8px 12px 4px; }
.code { flex: 1; min-height: 0; overflow: auto; margin: 0; padding: 4px 0 40px;
  font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 15px; line-height: 1.45; }
.code[hidden] { display: none; }
.code .ln { display: block; padding: 0 12px; white-space: pre; cursor: default; }
.code .ln.node { cursor: pointer; }
.code .ln.node:hover, .code .ln.hover { background: #eef3fb; }
.code .ln.step { background: var(--step); }
.code .ln.sel { background: var(--sel); box-shadow: inset 4px 0 0 var(--now); }
.code .cm { color: #8a8a8a; }
.figure .node { cursor: pointer; }
.figure .node.pending { opacity: 0.35; }
.figure .node.current > ellipse, .figure .node.current > path,
.figure .node.current > polygon { stroke: var(--now); stroke-width: 4; }
.figure .node.selected > ellipse, .figure .node.selected > path,
.figure .node.selected > polygon { stroke: #3b6fd8; stroke-width: 4; }
.figure .edge.active > path, .figure .edge.active > polygon { stroke: var(--now);
  stroke-width: 3; }
.figure .edge text.hide { visibility: hidden; }
.figure .edge text.now { fill: var(--now); font-weight: bold; }
#help { font-size: 15px; color: var(--muted); }
body.present header .extra, body.present #code-panel, body.present #help { display: none; }
body.present #caption h2 { font-size: 28px; }
body.present #caption table { font-size: 26px; }
@media (max-width: 900px) { #code-panel { display: none; } }
"""

JS = r"""
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("graphc-data").textContent);
  const stages = data.stages;
  const state = { stage: 0, step: 0, variant: stages.map(s => s.variant), selected: null };
  const $ = id => document.getElementById(id);
  const slider = $("slider");

  function current() { return stages[state.stage]; }
  function figureDiv(s, v) {
    return document.querySelector(`.figure[data-stage="${s}"][data-variant="${v}"]`);
  }
  function codePre(s) { return document.querySelector(`.code[data-stage="${s}"]`); }

  function vertexOf(meta, node) {
    return node === null || node === undefined ? null : meta.vertex_of[node];
  }

  function drawFigure() {
    const st = current(), v = state.variant[state.stage], meta = st.variants[v];
    const step = st.steps[state.step], s = state.step;
    document.querySelectorAll(".figure").forEach(div => {
      div.hidden = !(+div.dataset.stage === state.stage && +div.dataset.variant === v);
    });
    const div = figureDiv(state.stage, v);
    meta.edges.forEach((e, k) => {
      const g = div.querySelector(`[data-edge="${k}"]`);
      if (!g) return;
      g.querySelectorAll("text.value").forEach(t => t.classList.toggle("hide", s < e.value));
      g.querySelectorAll("text.grad").forEach(t => {
        t.classList.toggle("hide", e.grad === null || s < e.grad);
        t.classList.toggle("now", e.grad !== null && s === e.grad);
      });
      g.classList.toggle("active", step.node !== null && e.consumer === step.node);
    });
    const now = vertexOf(meta, step.node);
    const chosen = vertexOf(meta, state.selected);
    div.querySelectorAll(".node").forEach(g => {
      const id = g.dataset.vertex;
      g.classList.toggle("current", id === now);
      g.classList.toggle("selected", id === chosen);
      g.classList.toggle("pending", s < (meta.ready[id] || 0));
    });
  }

  function drawCaption() {
    const step = current().steps[state.step];
    const box = $("caption");
    box.replaceChildren();
    const h = document.createElement("h2");
    h.textContent = step.heading;
    box.appendChild(h);
    if (!step.rows.length) return;
    const table = document.createElement("table");
    if (step.columns) {
      const tr = table.insertRow();
      step.columns.forEach(c => { const th = document.createElement("th"); th.textContent = c;
        tr.appendChild(th); });
    }
    step.rows.forEach(row => {
      const tr = table.insertRow();
      row.forEach((cell, j) => {
        const td = tr.insertCell();
        td.textContent = cell;
        const cls = (step.classes || [])[j];
        if (cls) td.className = cls;
      });
    });
    box.appendChild(table);
  }

  function drawCode() {
    const st = current(), step = st.steps[state.step];
    document.querySelectorAll(".code, .code-heading").forEach(el => {
      el.hidden = +el.dataset.stage !== state.stage;
    });
    const pre = codePre(state.stage);
    const stepLines = new Set(step.code);
    const selected = state.selected === null ? [] : st.code.lines_of[state.selected];
    const selLines = new Set(selected || []);
    pre.querySelectorAll(".ln").forEach(ln => {
      const i = +ln.dataset.line;
      ln.classList.toggle("step", stepLines.has(i));
      ln.classList.toggle("sel", selLines.has(i));
    });
    const first = [...stepLines, ...selLines].sort((a, b) => a - b)[0];
    if (first !== undefined) {
      const ln = pre.querySelector(`.ln[data-line="${first}"]`);
      if (ln) ln.scrollIntoView({ block: "nearest" });
    }
  }

  function writeHash() {
    const hash = `#stage=${current().key}&step=${state.step}` +
      (current().variants.length > 1 ? `&layers=${state.variant[state.stage]}` : "");
    try { history.replaceState(null, "", hash); } catch (err) { location.hash = hash; }
  }

  function draw() {
    const st = current();
    state.step = Math.max(0, Math.min(state.step, st.steps.length - 1));
    document.querySelectorAll("[role=tab]").forEach(b => {
      b.setAttribute("aria-selected", String(+b.dataset.stage === state.stage));
    });
    slider.max = String(st.steps.length - 1);
    slider.value = String(state.step);
    $("counter").textContent = `step ${state.step} of ${st.steps.length - 1}`;
    const layers = $("layers");
    layers.hidden = st.variants.length < 2;
    layers.textContent = state.variant[state.stage] === 1 ? "Collapse layers" : "Expand all";
    drawFigure();
    drawCaption();
    drawCode();
    writeHash();
  }

  function go(step) { state.step = step; draw(); }
  function setStage(k) {
    state.stage = Math.max(0, Math.min(k, stages.length - 1));
    state.selected = null;
    draw();
  }
  function select(node) { state.selected = node; draw(); }

  function readHash() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const k = stages.findIndex(s => s.key === params.get("stage"));
    if (k >= 0) state.stage = k;
    const layers = parseInt(params.get("layers"), 10);
    if (layers >= 0 && layers < current().variants.length) state.variant[state.stage] = layers;
    const step = parseInt(params.get("step"), 10);
    state.step = Number.isFinite(step) ? step : 0;
  }

  function present(on) {
    document.body.classList.toggle("present", on);
    const root = document.documentElement;
    if (on && !document.fullscreenElement && root.requestFullscreen) {
      root.requestFullscreen().catch(() => {});
    } else if (!on && document.fullscreenElement) {
      document.exitFullscreen().catch(() => {});
    }
  }

  document.addEventListener("keydown", ev => {
    if (ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const n = current().steps.length - 1;
    const keys = {
      ArrowRight: () => go(state.step + 1), PageDown: () => go(state.step + 1),
      " ": () => go(state.step + 1), ArrowLeft: () => go(state.step - 1),
      PageUp: () => go(state.step - 1), Home: () => go(0), End: () => go(n),
      f: () => present(!document.body.classList.contains("present")),
      F: () => present(!document.body.classList.contains("present")),
      Escape: () => present(false),
    };
    stages.forEach((s, k) => { keys[String(k + 1)] = () => setStage(k); });
    if (keys[ev.key]) { ev.preventDefault(); keys[ev.key](); }
  }, true);
  document.addEventListener("fullscreenchange", () => {
    if (!document.fullscreenElement) document.body.classList.remove("present");
  });
  slider.addEventListener("input", () => go(+slider.value));
  $("first").addEventListener("click", () => go(0));
  $("prev").addEventListener("click", () => go(state.step - 1));
  $("next").addEventListener("click", () => go(state.step + 1));
  $("last").addEventListener("click", () => go(current().steps.length - 1));
  $("present").addEventListener("click", () => present(true));
  $("layers").addEventListener("click", () => {
    state.variant[state.stage] = state.variant[state.stage] === 1 ? 0 : 1;
    draw();
  });
  document.querySelectorAll("[role=tab]").forEach(b => {
    b.addEventListener("click", () => setStage(+b.dataset.stage));
  });
  document.querySelectorAll(".figure").forEach(div => {
    const st = stages[+div.dataset.stage], meta = st.variants[+div.dataset.variant];
    div.querySelectorAll(".node").forEach(g => {
      const id = g.dataset.vertex;
      g.addEventListener("click", () => {
        if (meta.expand[id] !== undefined) {
          state.variant[+div.dataset.stage] = meta.expand[id];
          draw();
        } else if (meta.members[id]) {
          select(meta.members[id][meta.members[id].length - 1]);
        }
      });
      g.addEventListener("mouseenter", () => {
        const node = (meta.members[id] || []).slice(-1)[0];
        const lines = new Set(node === undefined ? [] : (st.code.lines_of[node] || []));
        codePre(+div.dataset.stage).querySelectorAll(".ln").forEach(ln => {
          ln.classList.toggle("hover", lines.has(+ln.dataset.line));
        });
      });
      g.addEventListener("mouseleave", () => {
        document.querySelectorAll(".ln.hover").forEach(ln => ln.classList.remove("hover"));
      });
    });
  });
  document.querySelectorAll(".code").forEach(pre => {
    const st = stages[+pre.dataset.stage];
    pre.querySelectorAll(".ln").forEach(ln => {
      const node = st.code.node_at[ln.dataset.line];
      if (node === undefined) return;
      ln.classList.add("node");
      ln.addEventListener("click", () => select(node));
    });
  });
  window.addEventListener("hashchange", () => { readHash(); draw(); });
  readHash();
  draw();
})();
"""
