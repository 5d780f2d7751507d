/* rnnbench dashboard: filters, winner maps, roofline, regressions and case histories, all from data/*.js.
 *
 * Data files are scripts that call rnnbenchData(name, payload): a <script> tag loads one from the file
 * system as from a web server (Chromium refuses fetch() of local files). data/index.js comes first; a
 * case's own file (data/s/<ab>/<id>.js) only when its history is opened.
 * The view (filters and open cases) lives in the URL's hash, so a copied link reopens it.
 * window.rnnbenchTimings records how long the first view and each history took (the browser test reads it).
 */
(function () {
  "use strict";

  var FILTERS = [
    ["machine", "machine"], ["framework", "framework"], ["device", "device"], ["variant", "cell"],
    ["formulation", "formulation"], ["pass", "pass"], ["mode", "mode"], ["dtype", "dtype"], ["shape", "shape"],
    ["source", "source"]
  ];
  var COLOURS = {
    concat: "#1f77b4", separate: "#ff7f0e", hoisted: "#2ca02c", native: "#d62728", fused: "#9467bd"
  };
  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
  var MAX_GROUPS = 6; // winner-map groups drawn at once: more is a wall nobody reads, and slow to draw
  var MAX_ROWS = 200; // cases listed at once
  var CONFIG = { displaylogo: false, responsive: true };

  var loaded = {};
  var waiting = {};
  var timings = (window.rnnbenchTimings = { start: performance.now() });
  var index = null;
  var state = { filters: {}, cases: [] };

  window.rnnbenchData = function (name, payload) {
    loaded[name] = payload;
    (waiting[name] || []).forEach(function (w) { w.resolve(payload); });
    delete waiting[name];
  };

  function load(name, src) {
    if (loaded[name]) return Promise.resolve(loaded[name]);
    return new Promise(function (resolve, reject) {
      if (waiting[name]) { waiting[name].push({ resolve: resolve, reject: reject }); return; }
      waiting[name] = [{ resolve: resolve, reject: reject }];
      var tag = document.createElement("script");
      tag.src = src;
      tag.onerror = function () {
        (waiting[name] || []).forEach(function (w) { w.reject(new Error("cannot load " + src)); });
        delete waiting[name];
      };
      document.head.appendChild(tag);
    });
  }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmtTime(s) {
    if (s === null || s === undefined) return "?";
    var a = Math.abs(s);
    if (a >= 1) return s.toPrecision(3) + " s";
    if (a >= 1e-3) return (s * 1e3).toPrecision(3) + " ms";
    if (a >= 1e-6) return (s * 1e6).toPrecision(3) + " µs";
    return (s * 1e9).toPrecision(3) + " ns";
  }

  function fmtRatio(r) { return r === null || r === undefined ? "?" : "×" + Number(r).toFixed(3); }

  // -- the view in the URL ------------------------------------------------------------------------------------

  function readHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    state.filters = {};
    FILTERS.forEach(function (f) { if (params.get(f[0])) state.filters[f[0]] = params.get(f[0]); });
    state.cases = (params.get("case") || "").split(",").filter(Boolean);
  }

  function writeHash() {
    var params = new URLSearchParams();
    FILTERS.forEach(function (f) { if (state.filters[f[0]]) params.set(f[0], state.filters[f[0]]); });
    if (state.cases.length) params.set("case", state.cases.join(","));
    var hash = "#" + params.toString();
    if (location.hash !== hash) history.replaceState(null, "", hash === "#" ? location.pathname : hash);
  }

  // -- the index ----------------------------------------------------------------------------------------------

  function decode(ix) {
    var n = ix.id.length, cases = new Array(n), byId = {};
    for (var i = 0; i < n; i++) {
      var c = { i: i, id: ix.id[i], key: ix.key[i], median: ix.median[i], date: ix.date[i], nights: ix.nights[i],
        verdict: ix.verdict[i], gflops: ix.gflops[i], intensity: ix.intensity[i], batch: ix.batch[i],
        hidden: ix.hidden[i], seq_len: ix.seq_len[i], layers: ix.layers[i] };
      Object.keys(ix.fields).forEach(function (f) { c[f] = ix.fields[f].values[ix.fields[f].codes[i]]; });
      cases[i] = c;
      byId[c.id] = c;
    }
    ix.cases = cases;
    ix.byId = byId;
    return ix;
  }

  function matching() {
    var active = FILTERS.filter(function (f) { return state.filters[f[0]]; });
    return index.cases.filter(function (c) {
      for (var k = 0; k < active.length; k++) if (c[active[k][0]] !== state.filters[active[k][0]]) return false;
      return true;
    });
  }

  function naturalSort(values) {
    return values.slice().sort(function (a, b) { return a.localeCompare(b, undefined, { numeric: true }); });
  }

  function buildFilters() {
    var form = document.getElementById("filters");
    form.textContent = "";
    FILTERS.forEach(function (f) {
      var values = naturalSort(index.fields[f[0]].values.filter(Boolean));
      var label = el("label", {}, f[1]);
      var select = el("select", { name: f[0], id: "filter-" + f[0] });
      select.appendChild(el("option", { value: "" }, "all (" + values.length + ")"));
      values.forEach(function (v) { select.appendChild(el("option", { value: v }, v)); });
      select.value = state.filters[f[0]] || "";
      select.addEventListener("change", function () {
        if (select.value) state.filters[f[0]] = select.value; else delete state.filters[f[0]];
        writeHash();
        renderAll();
      });
      label.appendChild(select);
      form.appendChild(label);
    });
    var reset = el("button", { type: "button", id: "filter-reset" }, "all cases");
    reset.addEventListener("click", function () { state.filters = {}; writeHash(); buildFilters(); renderAll(); });
    form.appendChild(reset);
  }

  // -- case history ---------------------------------------------------------------------------------------------

  function openCases(ids) {
    state.cases = ids.filter(function (id) { return index.byId[id]; });
    writeHash();
    return renderHistory(true);
  }

  function seriesFile(id) { return "data/s/" + id.slice(0, 2) + "/" + id + ".js"; }

  function renderHistory(scroll) {
    var section = document.getElementById("history");
    var chart = document.getElementById("history-chart");
    var ids = state.cases.filter(function (id) { return index.byId[id]; });
    if (!ids.length) {
      section.hidden = true;
      Plotly.purge(chart);
      document.body.dataset.history = "";
      return Promise.resolve();
    }
    var t0 = performance.now();
    section.hidden = false;
    document.body.dataset.history = "loading";
    if (scroll) {
      // the filters' header stays on top of the page: scroll the chart below it, not under it
      section.style.scrollMarginTop = document.querySelector("header").offsetHeight + 8 + "px";
      section.scrollIntoView({ block: "start" });
    }
    return Promise.all(ids.map(function (id) { return load("s:" + id, seriesFile(id)); })).then(function (all) {
      var traces = [];
      var single = all.length === 1;
      all.forEach(function (s, n) {
        var c = index.byId[s.id];
        var colour = single ? "#1f77b4" : COLOURS[c.formulation] || PALETTE[n % PALETTE.length];
        var name = escapeHtml(single ? c.formulation : c.formulation + " " + c.shape + " (" + c.machine + ")");
        traces.push({ x: s.date, y: s.high, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false,
          legendgroup: s.id });
        traces.push({ x: s.date, y: s.low, mode: "lines", line: { width: 0 }, fill: "tonexty",
          fillcolor: "rgba(120,120,120,0.18)", name: "baseline band", hoverinfo: "skip", legendgroup: s.id,
          showlegend: single });
        traces.push({ x: s.date, y: s.q75, mode: "lines", line: { width: 0 }, hoverinfo: "skip", showlegend: false,
          legendgroup: s.id });
        traces.push({ x: s.date, y: s.q25, mode: "lines", line: { width: 0 }, fill: "tonexty",
          fillcolor: hexAlpha(colour, 0.25), hoverinfo: "skip", showlegend: false, legendgroup: s.id });
        var last = s.date.length - 1;
        var custom = s.date.map(function (d, i) {
          var verdict = s.verdict[i] || "too few earlier nights";
          var paired = "";
          if (i === last && s.paired) {
            paired = "<br>paired verdict: " + escapeHtml(s.paired.verdict) + " " + fmtRatio(s.paired.ratio) +
              (s.paired.ci_low !== undefined && s.paired.ci_low !== null ?
                " [" + Number(s.paired.ci_low).toFixed(3) + ", " + Number(s.paired.ci_high).toFixed(3) + "]" : "") +
              (s.paired.method ? " (" + escapeHtml(s.paired.method) + ")" : "");
          }
          // Plotly reads hover text as a subset of HTML: text from result files is escaped first
          return [
            d.slice(0, 10), escapeHtml(s.commit[i] || "?"),
            escapeHtml(s.version[i] ? c.framework + " " + s.version[i] : c.framework),
            fmtTime(s.median[i]), fmtTime(s.q25[i]) + " – " + fmtTime(s.q75[i]),
            s.low[i] === null ? "none yet" : fmtTime(s.low[i]) + " – " + fmtTime(s.high[i]), verdict + paired
          ];
        });
        traces.push({
          x: s.date, y: s.median, customdata: custom, mode: "lines+markers", name: name, legendgroup: s.id,
          meta: s.id, line: { color: colour, width: 1.5 },
          marker: { size: 6, color: s.verdict.map(function (v) {
            return v === "regression" ? "#d62728" : v === "improvement" ? "#2ca02c" : colour;
          }) },
          hovertemplate: "<b>%{customdata[0]}</b> commit %{customdata[1]}<br>%{customdata[2]}<br>" +
            "median %{customdata[3]}, IQR %{customdata[4]}<br>baseline %{customdata[5]}<br>" +
            "verdict: %{customdata[6]}<extra>" + name + "</extra>"
        });
      });
      var title = ids.map(function (id) { return index.byId[id].key + " on " + index.byId[id].machine; });
      document.getElementById("history-title").textContent = title.join("; ");
      // the y range fits the nights, not the band: a band from the first two nights can be very wide
      var lo = Infinity, hi = 0;
      all.forEach(function (s) {
        [s.median, s.q25, s.q75].forEach(function (ys) {
          ys.forEach(function (y) { if (y > 0) { lo = Math.min(lo, y); hi = Math.max(hi, y); } });
        });
      });
      var pad = Math.max(0.05, 0.08 * Math.log10(hi / lo));
      var layout = {
        margin: { l: 70, r: 20, t: 10, b: 40 }, hovermode: "closest", height: 420,
        xaxis: { type: "date", title: { text: "night" } },
        yaxis: { type: "log", title: { text: "median time per call (s)" }, exponentformat: "SI",
          range: [Math.log10(lo) - pad, Math.log10(hi) + pad] },
        legend: { orientation: "h", y: -0.15 }
      };
      return Plotly.react(chart, traces, layout, CONFIG).then(function () {
        timings.history = performance.now() - t0;
        document.body.dataset.history = ids.join(",");
      });
    }).catch(function (err) {
      document.getElementById("history-title").textContent = String(err);
      document.body.dataset.history = "error";
    });
  }

  function hexAlpha(hex, a) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + a + ")";
  }

  function escapeHtml(s) {
    return String(s).replace(/[&<>"']/g, function (ch) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[ch];
    });
  }

  function caseLink(id, text) {
    var a = el("a", { href: "#case=" + id, "data-case": id }, text);
    a.addEventListener("click", function (ev) { ev.preventDefault(); openCases([id]); });
    return a;
  }

  // -- regressions ------------------------------------------------------------------------------------------------

  function renderRegressions(shown) {
    var keep = {};
    shown.forEach(function (c) { keep[c.id] = true; });
    var all = index.regressions;
    var rows = all.filter(function (r) { return !r.id || keep[r.id]; });
    document.getElementById("regression-note").textContent =
      all.length + " regression(s) in the newest night (from the " + index.regression_source + ")" +
      (rows.length !== all.length ? "; " + rows.length + " match the filters" : "") + ".";
    var box = document.getElementById("regression-list");
    box.textContent = "";
    if (!rows.length) return;
    var table = el("table", { id: "regression-table" });
    var head = el("tr");
    ["case", "machine", "verdict", "ratio", "interval", "new", "baseline", "commit"].forEach(function (h) {
      head.appendChild(el("th", {}, h));
    });
    table.appendChild(head);
    rows.slice(0, MAX_ROWS).forEach(function (r) {
      var tr = el("tr");
      var td = el("td");
      td.appendChild(r.id ? caseLink(r.id, r.key) : document.createTextNode(r.key));
      tr.appendChild(td);
      var c = r.id ? index.byId[r.id] : null;
      tr.appendChild(el("td", {}, r.machine || (c ? c.machine : "")));
      tr.appendChild(el("td", { class: "regression" }, r.verdict));
      tr.appendChild(el("td", { class: "num" }, fmtRatio(r.ratio)));
      var lo = r.ci_low !== undefined ? r.ci_low : null, hi = r.ci_high !== undefined ? r.ci_high : null;
      tr.appendChild(el("td", { class: "num" }, lo !== null && hi !== null ?
        "[" + Number(lo).toFixed(3) + ", " + Number(hi).toFixed(3) + "]" :
        r.low !== undefined ? "band " + fmtTime(r.low) + " – " + fmtTime(r.high) : ""));
      tr.appendChild(el("td", { class: "num" }, typeof r.new === "number" ? fmtTime(r.new) : ""));
      tr.appendChild(el("td", { class: "num" }, typeof r.base === "number" ? fmtTime(r.base) : ""));
      tr.appendChild(el("td", {}, r.commit || ""));
      table.appendChild(tr);
    });
    box.appendChild(table);
  }

  // -- winner maps -----------------------------------------------------------------------------------------------

  function groupBy(items, keyOf) {
    var groups = {}, order = [];
    items.forEach(function (it) {
      var k = keyOf(it);
      if (!groups[k]) { groups[k] = []; order.push(k); }
      groups[k].push(it);
    });
    return order.map(function (k) { return { key: k, items: groups[k] }; });
  }

  function geomean(xs) {
    return Math.exp(xs.reduce(function (a, x) { return a + Math.log(x); }, 0) / xs.length);
  }

  function renderWinners(shown) {
    var box = document.getElementById("winner-maps");
    box.querySelectorAll(".js-plotly-plot").forEach(function (d) { Plotly.purge(d); });
    box.textContent = "";
    var groups = groupBy(shown.filter(function (c) { return c.batch !== null && c.hidden !== null && c.median; }),
      function (c) {
        return [c.machine, c.framework, c.device, c.variant, c.pass, c.mode, c.dtype, c.seq_len, c.layers].join("|");
      });
    groups = groups.filter(function (g) {
      var forms = {};
      g.items.forEach(function (c) { forms[c.formulation] = true; });
      return Object.keys(forms).length >= 2;
    });
    groups.sort(function (a, b) { return b.items.length - a.items.length || (a.key < b.key ? -1 : 1); });
    var jobs = [];
    groups.slice(0, MAX_GROUPS).forEach(function (g, n) {
      var c0 = g.items[0];
      var wrap = el("div", { class: "winner-group" });
      wrap.appendChild(el("h3", {}, c0.framework + " " + c0.device + " " + c0.variant + " " + c0.pass + " (" +
        c0.mode + ", " + c0.dtype + ", T=" + c0.seq_len + ", layers=" + c0.layers + ") on " + c0.machine));
      var pair = el("div", { class: "winner-pair" });
      var ratioDiv = el("div", { id: "winner-ratio-" + n, class: "winner-ratio" });
      var bestDiv = el("div", { id: "winner-best-" + n, class: "winner-best" });
      pair.appendChild(ratioDiv);
      pair.appendChild(bestDiv);
      wrap.appendChild(pair);
      box.appendChild(wrap);
      jobs.push(drawWinner(g.items, ratioDiv, bestDiv));
    });
    if (groups.length > MAX_GROUPS) {
      box.appendChild(el("p", { class: "note" }, (groups.length - MAX_GROUPS) +
        " more groups match: narrow the filters (framework, cell, pass, dtype…) to see them."));
    }
    if (!groups.length) box.appendChild(el("p", { class: "note" }, "No group with two formulations matches."));
    return Promise.all(jobs);
  }

  function drawWinner(items, ratioDiv, bestDiv) {
    var batches = naturalSort(unique(items.map(function (c) { return String(c.batch); })));
    var hiddens = naturalSort(unique(items.map(function (c) { return String(c.hidden); })));
    var forms = naturalSort(unique(items.map(function (c) { return c.formulation; })));
    var cell = {};
    items.forEach(function (c) {
      var k = c.batch + "|" + c.hidden;
      (cell[k] = cell[k] || {});
      (cell[k][c.formulation] = cell[k][c.formulation] || []).push(c);
    });
    var z = [], text = [], hover = [], ids = [], best = [], bestText = [], bestHover = [];
    batches.forEach(function (b) {
      var zr = [], tr = [], hr = [], ir = [], br = [], btr = [], bhr = [];
      hiddens.forEach(function (h) {
        var at = cell[b + "|" + h] || {};
        var med = {};
        Object.keys(at).forEach(function (f) { med[f] = geomean(at[f].map(function (c) { return c.median; })); });
        var all = [];
        Object.keys(at).forEach(function (f) { at[f].forEach(function (c) { all.push(c.id); }); });
        ir.push(all.join(","));
        if (med.concat && med.separate) {
          var r = med.concat / med.separate;
          zr.push(Math.log2(r)); tr.push(r.toFixed(2));
          hr.push("concat " + fmtTime(med.concat) + ", separate " + fmtTime(med.separate));
        } else { zr.push(null); tr.push(""); hr.push(""); }
        var names = Object.keys(med);
        if (names.length) {
          names.sort(function (p, q) { return med[p] - med[q]; });
          br.push(forms.indexOf(names[0])); btr.push(escapeHtml(names[0]));
          bhr.push(names.map(function (f) { return escapeHtml(f) + " " + fmtTime(med[f]); }).join("<br>"));
        } else { br.push(null); btr.push(""); bhr.push(""); }
      });
      z.push(zr); text.push(tr); hover.push(hr); ids.push(ir); best.push(br); bestText.push(btr); bestHover.push(bhr);
    });
    var axes = {
      margin: { l: 50, r: 10, t: 28, b: 40 },
      xaxis: { type: "category", title: { text: "hidden" } },
      yaxis: { type: "category", title: { text: "batch" } }
    };
    var ratio = [{
      type: "heatmap", x: hiddens, y: batches, z: z, text: text, customdata: ids, texttemplate: "%{text}",
      colorscale: "RdBu", zmid: 0, zmin: -1, zmax: 1, showscale: false, hovertext: hover,
      hovertemplate: "B%{y} H%{x}: concat/separate %{text}<br>%{hovertext}<extra></extra>"
    }];
    var scale = forms.map(function (f, i) {
      var colour = COLOURS[f] || PALETTE[i % PALETTE.length];
      return [[i / forms.length, colour], [(i + 1) / forms.length, colour]];
    }).reduce(function (a, b) { return a.concat(b); }, []);
    var fastest = [{
      type: "heatmap", x: hiddens, y: batches, z: best, text: bestText, customdata: ids, texttemplate: "%{text}",
      colorscale: scale, zmin: -0.5, zmax: forms.length - 0.5, showscale: false, hovertext: bestHover,
      hovertemplate: "B%{y} H%{x}: fastest %{text}<br>%{hovertext}<extra></extra>"
    }];
    var small = { displayModeBar: false, responsive: true };
    var open = function (ev) {
      var p = ev.points && ev.points[0];
      if (p && p.customdata) openCases(String(p.customdata).split(",").filter(Boolean));
    };
    return Promise.all([
      Plotly.newPlot(ratioDiv, ratio, Object.assign({ title: { text: "concat / separate", font: { size: 12 } } }, axes),
        small),
      Plotly.newPlot(bestDiv, fastest, Object.assign({ title: { text: "fastest formulation", font: { size: 12 } } },
        axes), small)
    ]).then(function () {
      ratioDiv.on("plotly_click", open);
      bestDiv.on("plotly_click", open);
    });
  }

  function unique(xs) {
    var seen = {};
    return xs.filter(function (x) { if (seen[x]) return false; seen[x] = true; return true; });
  }

  // -- roofline ----------------------------------------------------------------------------------------------------

  function renderRoofline(shown) {
    var div = document.getElementById("roofline-chart");
    var pts = shown.filter(function (c) { return c.gflops && c.intensity; });
    if (!pts.length) {
      Plotly.purge(div);
      div.textContent = "No case matching the filters has a GFLOP/s figure.";
      return Promise.resolve();
    }
    div.textContent = "";
    var xmin = Infinity, xmax = 0;
    pts.forEach(function (c) { xmin = Math.min(xmin, c.intensity); xmax = Math.max(xmax, c.intensity); });
    var combos = {};
    pts.forEach(function (c) { combos[c.machine + "|" + c.device + "|" + c.dtype] = true; });
    var ceilings = index.ceilings.filter(function (r) { return combos[r.machine + "|" + r.device + "|" + r.dtype]; });
    var roofOf = {};
    ceilings.forEach(function (r) { roofOf[r.machine + "|" + r.device + "|" + r.dtype] = r; });
    var traces = [];
    ceilings.slice(0, 4).forEach(function (r, i) {
      if (!r.compute) return;
      var xs = [], ys = [];
      for (var k = 0; k <= 60; k++) {
        var x = xmin / 2 * Math.pow(xmax * 2 / (xmin / 2), k / 60);
        xs.push(x);
        ys.push(r.bandwidth ? Math.min(r.compute, r.bandwidth * x) : r.compute);
      }
      traces.push({ x: xs, y: ys, mode: "lines", line: { color: "#555", dash: i ? "dot" : "solid", width: 1 },
        name: escapeHtml("roof: " + r.device + " " + r.dtype + " on " + r.machine), hoverinfo: "skip" });
    });
    groupBy(pts, function (c) { return c.formulation; }).forEach(function (g, i) {
      traces.push({
        type: "scatter", mode: "markers", name: escapeHtml(g.key), x: g.items.map(function (c) { return c.intensity; }),
        y: g.items.map(function (c) { return c.gflops; }),
        customdata: g.items.map(function (c) {
          var r = roofOf[c.machine + "|" + c.device + "|" + c.dtype];
          var roof = r && r.compute ? (r.bandwidth ? Math.min(r.compute, r.bandwidth * c.intensity) : r.compute) : null;
          return [c.id, escapeHtml(c.key + " on " + c.machine), roof ? (100 * c.gflops / roof).toFixed(1) + "% of its roof" : "no roof"];
        }),
        marker: { size: 5, opacity: 0.7, color: COLOURS[g.key] || PALETTE[i % PALETTE.length] },
        hovertemplate: "%{customdata[1]}<br>%{y:.3g} GFLOP/s at %{x:.3g} FLOP/byte, %{customdata[2]}<extra></extra>"
      });
    });
    var layout = {
      margin: { l: 70, r: 20, t: 10, b: 40 }, height: 440, hovermode: "closest",
      xaxis: { type: "log", title: { text: "arithmetic intensity (FLOP/byte)" } },
      yaxis: { type: "log", title: { text: "GFLOP/s" } }
    };
    return Plotly.react(div, traces, layout, CONFIG).then(function () {
      if (!div.dataset.bound) {
        div.dataset.bound = "1";
        div.on("plotly_click", function (ev) {
          var p = ev.points && ev.points[0];
          if (p && p.customdata) openCases([p.customdata[0]]);
        });
      }
    });
  }

  // -- case list ----------------------------------------------------------------------------------------------------

  function renderCases(shown) {
    var box = document.getElementById("case-list");
    box.textContent = "";
    var rank = { regression: 0, improvement: 1 };
    var rows = shown.slice().sort(function (a, b) {
      var ra = rank[a.verdict] === undefined ? 2 : rank[a.verdict], rb = rank[b.verdict] === undefined ? 2 : rank[b.verdict];
      return ra - rb || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    });
    box.appendChild(el("p", { class: "note" }, rows.length + " case series match" +
      (rows.length > MAX_ROWS ? "; the first " + MAX_ROWS + " are listed (regressions first)" : "") + "."));
    var table = el("table", { id: "case-table" });
    var head = el("tr");
    ["case", "machine", "newest median", "newest night", "verdict", "nights"].forEach(function (h) {
      head.appendChild(el("th", {}, h));
    });
    table.appendChild(head);
    rows.slice(0, MAX_ROWS).forEach(function (c) {
      var tr = el("tr");
      var td = el("td");
      td.appendChild(caseLink(c.id, c.key));
      tr.appendChild(td);
      tr.appendChild(el("td", {}, c.machine));
      tr.appendChild(el("td", { class: "num" }, fmtTime(c.median)));
      tr.appendChild(el("td", {}, c.date));
      tr.appendChild(el("td", { class: c.verdict || "" }, c.verdict || ""));
      tr.appendChild(el("td", { class: "num" }, String(c.nights)));
      table.appendChild(tr);
    });
    box.appendChild(table);
  }

  // -- the page -------------------------------------------------------------------------------------------------------

  function renderAll() {
    var shown = matching();
    document.getElementById("summary").textContent =
      index.cases.length + " case series on " + index.fields.machine.values.length + " machine(s), nights " +
      index.first_date + " to " + index.last_date + "; " + shown.length + " match the filters. Built " +
      index.generated + ".";
    renderRegressions(shown);
    renderCases(shown);
    return Promise.all([renderWinners(shown), renderRoofline(shown)]);
  }

  function start() {
    readHash();
    document.getElementById("history-close").addEventListener("click", function () {
      state.cases = [];
      writeHash();
      renderHistory(false);
    });
    window.addEventListener("hashchange", function () {
      readHash();
      buildFilters();
      renderAll();
      renderHistory(true);
    });
    load("index", "data/index.js").then(function (ix) {
      index = decode(ix);
      timings.index = performance.now() - timings.start;
      buildFilters();
      return Promise.all([renderAll(), renderHistory(true)]);
    }).then(function () {
      timings.firstView = performance.now(); // since navigation began: plotly.min.js's parse included
      document.body.dataset.state = "ready";
    }).catch(function (err) {
      document.getElementById("summary").textContent = "Could not load the dashboard's data: " + err;
      document.body.dataset.state = "error";
    });
  }

  start();
})();
