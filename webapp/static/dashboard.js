/* Dashboard: fetches the JSON API of the same origin and renders it.
 * Every value that comes from events (site ids, paths, sources, property values...) is written with
 * textContent / new Option(), never as HTML. */
(function () {
  "use strict";

  var REFRESH_MS = 5000;
  var RANGES = {
    today: "Today",
    yesterday: "Yesterday",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    day: "Custom day"
  };
  var PROP_KEY_MAX = 300;

  var $ = function (id) { return document.getElementById(id); };
  var nf = new Intl.NumberFormat();
  var nf2 = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

  // ---- state (mirrors the URL query string) -------------------------------------------------
  // prop: the custom property key the Events panel's Properties tab shows (there is no endpoint
  // listing the keys, so it is typed in and kept in the URL).
  var state = { site: "", range: "today", date: "", prop: "" };
  var sitesKnown = null;       // array of site ids from /sites, null until loaded
  var generation = 0;          // bumped on every selection change; stale answers are dropped
  var running = 0;             // refreshes in flight; a timer tick skips while one runs
  var chart = null, chartInterval = null;
  var formSiteEdited = false;
  var lastOk = null;
  var sitesRendered = false;  // the select still shows "Loading sites…"

  function todayUTC() { return new Date().toISOString().slice(0, 10); }
  function addDays(iso, n) {
    var d = new Date(iso + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }
  function isDate(s) { return /^\d{4}-\d{2}-\d{2}$/.test(s || "") && !isNaN(Date.parse(s + "T00:00:00Z")); }
  function cleanProp(s) { s = (s || "").trim(); return s.length <= PROP_KEY_MAX ? s : ""; }

  function readURL() {
    var q = new URLSearchParams(location.search);
    var range = q.get("range");
    state.site = q.get("site") || "";
    state.range = RANGES.hasOwnProperty(range) ? range : "today";
    state.date = isDate(q.get("date")) ? q.get("date") : "";
    if (state.range === "day" && !state.date) state.date = todayUTC();
    state.prop = cleanProp(q.get("prop"));
  }

  function urlFor(s) {
    var q = new URLSearchParams();
    if (s.site) q.set("site", s.site);
    q.set("range", s.range);
    if (s.range === "day") q.set("date", s.date || todayUTC());
    if (s.prop) q.set("prop", s.prop);
    return location.pathname + "?" + q.toString();
  }

  function pushURL(replace) {
    var url = urlFor(state);
    if (url === location.pathname + location.search) return;
    if (replace) history.replaceState(null, "", url); else history.pushState(null, "", url);
  }

  // The period shown and the previous period of the same length.
  function period() {
    var t = todayUTC(), from, to, days, prevLabel;
    switch (state.range) {
      case "yesterday": from = to = addDays(t, -1); days = 1; prevLabel = "the day before"; break;
      case "7d": from = addDays(t, -6); to = t; days = 7; prevLabel = "previous 7 days"; break;
      case "30d": from = addDays(t, -29); to = t; days = 30; prevLabel = "previous 30 days"; break;
      case "day": from = to = state.date || t; days = 1; prevLabel = "the day before"; break;
      default: from = to = t; days = 1; prevLabel = "yesterday";
    }
    return {
      from: from, to: to, days: days, prevLabel: prevLabel,
      prevFrom: addDays(from, -days), prevTo: addDays(to, -days),
      interval: days === 1 ? "hour" : "day"
    };
  }

  function rangeQuery(from, to) {
    return from === to ? "date=" + from : "from=" + from + "&to=" + to;
  }

  // ---- API -----------------------------------------------------------------------------------
  function ApiError(status, message) { this.status = status; this.message = message; }

  // A dashboard opened from a share link sends the link's token with each data call
  // (a header, so the secret never appears in the data calls' URLs).
  var shareMeta = document.querySelector('meta[name="analytics-share"]');
  var apiHeaders = { Accept: "application/json" };
  if (shareMeta) apiHeaders["X-Share-Token"] = shareMeta.getAttribute("content");

  function api(path) {
    return fetch(path, { headers: apiHeaders, cache: "no-store" }).then(
      function (resp) {
        return resp.json().then(function (d) { return d; }, function () { return null; }).then(function (data) {
          if (!resp.ok) {
            var msg = data && typeof data.error === "string" ? data.error : resp.statusText || "request failed";
            throw new ApiError(resp.status, "the API answered " + resp.status + ": " + msg);
          }
          if (data === null) throw new ApiError(resp.status, "the API answered something that is not JSON");
          return data;
        });
      },
      function () {
        throw new ApiError(0, "cannot reach the analytics API (network error)");
      });
  }

  function q(s) { return encodeURIComponent(s); }

  // ---- small DOM helpers -------------------------------------------------------------------
  function setText(el, text) { el.textContent = text == null ? "" : String(text); }
  function show(el, on) { el.hidden = !on; }
  function msg(el, text, isError) {
    setText(el, text || "");
    el.classList.toggle("is-error", !!isError);
    show(el, !!text);
  }
  function fmt(n) { return typeof n === "number" && isFinite(n) ? nf.format(n) : "–"; }

  function pad2(n) { return n < 10 ? "0" + n : "" + n; }

  // Seconds as m:ss, or h:mm:ss from an hour on.
  function fmtDuration(sec) {
    if (typeof sec !== "number" || !isFinite(sec)) return "–";
    sec = Math.max(0, Math.round(sec));
    var h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
    return h ? h + ":" + pad2(m) + ":" + pad2(s) : m + ":" + pad2(s);
  }
  function fmtRatio(n) { return typeof n === "number" && isFinite(n) ? nf2.format(n) : "–"; }
  function fmtPercent(n) { return typeof n === "number" && isFinite(n) ? nf.format(n) + "%" : "–"; }

  // The change from the previous period: a relative change in percent, or for a rate (bounce
  // rate) the difference in percentage points. Nothing when there is nothing to compare with.
  // lowerIsBetter colours a fall as good (a lower bounce rate).
  function changeInfo(cur, prev, points, lowerIsBetter) {
    if (typeof cur !== "number" || typeof prev !== "number") return null;
    var diff;
    if (points) diff = Math.round(cur - prev);
    else if (prev === 0) return null;
    else diff = Math.round(((cur - prev) / prev) * 100);
    var unit = points ? " pts" : "%";
    if (diff === 0) return { text: "±0" + unit, cls: "" };
    var good = (diff > 0) !== !!lowerIsBetter;
    return {
      text: (diff > 0 ? "▲ " : "▼ ") + Math.abs(diff) + unit,
      cls: good ? "change-good" : "change-bad"
    };
  }

  function setFigure(id, value, text) {
    setText($(id).querySelector('[data-role="value"]'), typeof value === "number" ? text : "–");
  }

  function setChange(id, c, prevText, prevLabel, unavailable) {
    var el = $(id).querySelector('[data-role="change"]');
    el.className = "figure-change " + (c ? c.cls : "");
    if (unavailable) setText(el, "previous period unavailable");
    else if (c) setText(el, c.text + " vs " + prevLabel + " (" + prevText + ")");
    else setText(el, "\u00a0");
  }

  var FIGURES = [
    // id, field, formatter, compare in points, lower is better
    ["fig-visitors", "visitors", fmt, false, false],
    ["fig-visits", "visits", fmt, false, false],
    ["fig-pageviews", "pageviews", fmt, false, false],
    ["fig-views-per-visit", "views_per_visit", fmtRatio, false, false],
    ["fig-bounce-rate", "bounce_rate", fmtPercent, true, true],
    ["fig-visit-duration", "visit_duration", fmtDuration, false, false]
  ];

  function clearFigures() {
    FIGURES.forEach(function (f) {
      setText($(f[0]).querySelector('[data-role="value"]'), "–");
      setText($(f[0]).querySelector('[data-role="change"]'), "\u00a0");
    });
    setText($("fig-bots").querySelector('[data-role="value"]'), "–");
  }

  function barRow(label, value, max, extras, title) {
    var tr = document.createElement("tr");
    var td = document.createElement("td");
    td.className = "label";
    var bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = (max > 0 ? Math.max(1, (value / max) * 100) : 0).toFixed(1) + "%";
    var text = document.createElement("span");
    text.className = "text";
    setText(text, label);
    td.title = title || label;
    td.appendChild(bar);
    td.appendChild(text);
    tr.appendChild(td);
    var num = document.createElement("td");
    num.className = "num";
    setText(num, fmt(value));
    tr.appendChild(num);
    (extras || []).forEach(function (x) {
      var cell = document.createElement("td");
      cell.className = "num extra";
      setText(cell, x);
      tr.appendChild(cell);
    });
    return tr;
  }

  // ---- banner and live indicator -------------------------------------------------------------
  function setBanner(text) { setText($("error-banner"), text || ""); show($("error-banner"), !!text); }

  function setIndicator(kind, text) {
    $("live-indicator").setAttribute("data-state", kind);
    setText($("live-text"), text);
  }

  function timeNow() {
    var d = new Date();
    return [d.getHours(), d.getMinutes(), d.getSeconds()].map(function (n) { return n < 10 ? "0" + n : n; }).join(":");
  }

  // ---- sites ---------------------------------------------------------------------------------
  function renderSites(ids) {
    var select = $("site-select");
    var wanted = ids.slice();
    if (state.site && wanted.indexOf(state.site) === -1) wanted.unshift(state.site);
    var current = Array.prototype.map.call(select.options, function (o) { return o.value; });
    if (!sitesRendered || current.join("\n") !== wanted.join("\n")) {
      sitesRendered = true;
      select.textContent = "";
      if (!wanted.length) select.appendChild(new Option("No sites yet", ""));
      wanted.forEach(function (id) { select.appendChild(new Option(id, id)); });
      var dl = $("site-options");
      dl.textContent = "";
      ids.forEach(function (id) { var o = document.createElement("option"); o.value = id; dl.appendChild(o); });
    }
    select.disabled = !wanted.length;
    select.value = state.site;
  }

  function loadSites(gen) {
    return api("/sites").then(function (data) {
      if (gen !== generation) return;
      var ids = (data.sites || []).map(function (s) { return String(s.site_id); });
      sitesKnown = ids;
      if (!state.site && ids.length) {
        state.site = ids[0];
        pushURL(true);
        syncControls();
      }
      renderSites(ids);
      return null;
    }, function (err) {
      if (gen !== generation) return err;
      // Keep working with the site from the URL; say what went wrong.
      renderSites(state.site ? [state.site] : []);
      return err;
    });
  }

  // ---- figures (GET /stats/aggregate, this period and the previous one) ---------------------
  function loadFigures(gen, p) {
    var base = "/stats/aggregate?site_id=" + q(state.site) + "&";
    var cur = api(base + rangeQuery(p.from, p.to));
    var prev = api(base + rangeQuery(p.prevFrom, p.prevTo));
    return Promise.allSettled([cur, prev]).then(function (r) {
      if (gen !== generation) return null;
      var a = r[0].status === "fulfilled" ? r[0].value : null;
      var b = r[1].status === "fulfilled" ? r[1].value : null;
      FIGURES.forEach(function (f) {
        var id = f[0], field = f[1], format = f[2];
        var value = a ? a[field] : undefined;
        setFigure(id, value, format(value));
        // A rate has no previous value to compare with when the previous period had no visits.
        var prevValue = b && (!f[3] || b.visits > 0) ? b[field] : undefined;
        var c = a ? changeInfo(value, prevValue, f[3], f[4]) : null;
        setChange(id, c, format(prevValue), p.prevLabel, !!a && !b);
      });
      setText($("fig-bots").querySelector('[data-role="value"]'), a ? fmt(a.bots) : "–");
      msg($("figures-msg"), a ? "" : "Could not load the figures: " + r[0].reason.message + ".", !a);
      return a ? null : r[0].reason;
    });
  }

  // ---- chart (GET /stats/timeseries) ---------------------------------------------------------
  function cssVar(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function ensureChart(interval) {
    if (chart && chartInterval === interval) return chart;
    if (chart) { chart.destroy(); chart = null; }
    var el = $("chart");
    el.textContent = "";
    var accent = cssVar("--accent", "#4f46e5"), users = cssVar("--users", "#0e9f6e");
    var muted = cssVar("--muted", "#6b7280"), grid = cssVar("--border", "#e3e6ee");
    var axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    function xLabel(ts) {
      var d = new Date(ts * 1000);
      return interval === "hour" ? pad2(d.getUTCHours()) + ":00" : months[d.getUTCMonth()] + " " + d.getUTCDate();
    }
    var xAxis = Object.assign({}, axis, {
      space: interval === "hour" ? 44 : 56,
      incrs: interval === "hour" ? [3600, 7200, 10800, 21600, 43200] : [86400, 172800, 604800, 2592000],
      values: function (u, splits) { return splits.map(xLabel); }
    });
    chartInterval = interval;
    chart = new window.uPlot({
      width: Math.max(280, el.clientWidth),
      height: 260,
      tzDate: function (ts) { return window.uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(4, Math.ceil((max || 0) * 1.15))]; } } },
      series: [
        { label: interval === "hour" ? "Hour (UTC)" : "Day (UTC)",
          value: function (u, ts) { return ts == null ? "–" : xLabel(ts); } },
        { label: "Visitors", stroke: users, width: 2, fill: users + "22", points: { size: 5 } },
        { label: "Pageviews", stroke: accent, width: 2, points: { size: 5 } }
      ],
      axes: [xAxis, Object.assign({ size: 50 }, axis)]
    }, [[], [], []], el);
    return chart;
  }

  // Visitors come from the unfiltered series (every visitor, whatever they sent); pageviews from
  // the series filtered to event_type=pageview, whose `views` counts exactly what the Pageviews
  // card counts (the unfiltered `views` counts every event type).
  function loadChart(gen, p) {
    setText($("chart-interval"), p.interval === "hour" ? "by hour, UTC" : "by day, UTC");
    if (typeof window.uPlot !== "function") {
      msg($("chart-msg"), "The chart library did not load.", true);
      return Promise.resolve(null);
    }
    var url = "/stats/timeseries?site_id=" + q(state.site) + "&from=" + p.from + "&to=" + p.to + "&interval=" + p.interval;
    return Promise.all([api(url), api(url + "&event_type=pageview")]).then(function (answers) {
      if (gen !== generation) return null;
      var all = answers[0], pv = answers[1];
      if (!Array.isArray(all) || !Array.isArray(pv)) throw new ApiError(200, "unexpected time series answer");
      var views = {};
      pv.forEach(function (r) { views[r.t] = r.views || 0; });
      var xs = [], vis = [], vs = [];
      all.forEach(function (r) {
        xs.push(Date.parse(r.t) / 1000);
        vis.push(typeof r.visitors === "number" ? r.visitors : null);
        vs.push(views[r.t] || 0);
      });
      ensureChart(p.interval).setData([xs, vis, vs]);
      msg($("chart-msg"), "", false);
      return null;
    }).catch(function (err) {
      if (gen !== generation) return null;
      if (chart) chart.setData([[], [], []]);
      msg($("chart-msg"), "Could not load the time series: " + err.message + ".", true);
      return err;
    });
  }

  function describe(p) {
    if (state.range === "today") return "today (" + p.from + ")";
    if (state.range === "yesterday") return "yesterday (" + p.from + ")";
    if (p.from === p.to) return p.from;
    return RANGES[state.range].toLowerCase() + " (" + p.from + " – " + p.to + ")";
  }

  // ---- panels (GET /stats/breakdown?property=...) --------------------------------------------
  var regionNames = null;
  try { regionNames = new Intl.DisplayNames(["en"], { type: "region" }); } catch (e) { regionNames = null; }

  // 🇩🇪 from "DE": two regional indicator symbols. Only for two ASCII letters.
  function flag(code) {
    if (!/^[A-Za-z]{2}$/.test(code)) return "";
    var up = code.toUpperCase();
    return String.fromCodePoint(0x1F1E6 + up.charCodeAt(0) - 65, 0x1F1E6 + up.charCodeAt(1) - 65);
  }
  function countryLabel(code) {
    var name = "";
    if (/^[A-Za-z]{2}$/.test(code) && regionNames) {
      try { name = regionNames.of(code.toUpperCase()) || ""; } catch (e) { name = ""; }
    }
    var f = flag(code);
    return (f ? f + " " : "") + (name && name !== code.toUpperCase() ? name : code);
  }

  function plain(v) { return v === "" ? "(empty)" : v; }
  function bounce(r) { return [fmtPercent(r.bounce_rate), fmtDuration(r.visit_duration)]; }
  function visitsOf(r) { return [fmt(r.visits)]; }
  function eventsOf(r) { return [fmt(r.events)]; }
  var SOURCE_COLS = ["Bounce", "Duration"];

  // Per property: the first column's heading, the extra columns and their values, and the label.
  var PROPERTIES = {
    source: { head: "Source", cols: SOURCE_COLS, extras: bounce },
    referrer: { head: "Referrer", cols: SOURCE_COLS, extras: bounce },
    utm_source: { head: "utm_source", cols: SOURCE_COLS, extras: bounce },
    utm_medium: { head: "utm_medium", cols: SOURCE_COLS, extras: bounce },
    utm_campaign: { head: "utm_campaign", cols: SOURCE_COLS, extras: bounce },
    utm_content: { head: "utm_content", cols: SOURCE_COLS, extras: bounce },
    utm_term: { head: "utm_term", cols: SOURCE_COLS, extras: bounce },
    page: { head: "Page", cols: ["Pageviews"], extras: function (r) { return [fmt(r.pageviews)]; } },
    entry_page: { head: "Entry page", cols: ["Visits"], extras: visitsOf },
    exit_page: { head: "Exit page", cols: ["Visits"], extras: visitsOf },
    country: { head: "Country", cols: ["Visits"], extras: visitsOf, label: countryLabel },
    region: { head: "Region", cols: ["Visits"], extras: visitsOf },
    city: { head: "City", cols: ["Visits"], extras: visitsOf },
    browser: { head: "Browser", cols: ["Visits"], extras: visitsOf },
    os: { head: "Operating system", cols: ["Visits"], extras: visitsOf },
    device: { head: "Size", cols: ["Visits"], extras: visitsOf },
    event_type: { head: "Event", cols: ["Events"], extras: eventsOf },
    props: { head: "Value", cols: ["Events"], extras: eventsOf }
  };

  // Each panel: its tabs' default, the tab shown, and a counter so a late answer for a tab that
  // is no longer shown is dropped.
  var panels = {
    sources: { tab: "source", seq: 0 },
    pages: { tab: "page", seq: 0 },
    locations: { tab: "country", seq: 0 },
    devices: { tab: "browser", seq: 0 },
    events: { tab: "event_type", seq: 0 }
  };

  // The breakdown property a panel's tab stands for ("" when it needs input first).
  function propertyOf(name) {
    var tab = panels[name].tab;
    if (tab === "utm") return $("utm-select").value;
    if (tab === "props") return state.prop ? "props:" + state.prop : "";
    return tab;
  }

  function panelEl(name, role) { return $("panel-" + name).querySelector('[data-role="' + role + '"]'); }

  function renderTabs(name) {
    var root = $("panel-" + name);
    Array.prototype.forEach.call(root.querySelectorAll('[role="tab"]'), function (b) {
      var on = b.getAttribute("data-tab") === panels[name].tab;
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
      if (on) $("panel-" + name + "-body").setAttribute("aria-labelledby", b.id);
    });
    if (name === "sources") show($("utm-picker"), panels.sources.tab === "utm");
    if (name === "events") show($("prop-form"), panels.events.tab === "props");
  }

  function emptyText(name, property, p) {
    var where = " for " + state.site + " in " + describe(p) + ".";
    if (property === "page") return "No page views" + where;
    if (name === "events" && property.indexOf("props:") === 0) {
      return "No events with the property “" + state.prop + "”" + where;
    }
    if (property === "region" || property === "city") {
      return "No " + (property === "city" ? "cities" : "regions") + where +
        " Regions and cities need a GeoIP database (GEOIP_DB).";
    }
    return "No data" + where;
  }

  function renderRows(name, property, data, p) {
    var conf = PROPERTIES[property.indexOf("props:") === 0 ? "props" : property];
    var table = $("panel-" + name).querySelector("table");
    var head = table.querySelector("thead tr");
    head.textContent = "";
    [conf.head, "Visitors"].concat(conf.cols).forEach(function (text, i) {
      var th = document.createElement("th");
      th.scope = "col";
      th.className = i === 0 ? "label" : i === 1 ? "num" : "num extra";
      setText(th, i === 0 && property.indexOf("props:") === 0 ? state.prop : text);
      head.appendChild(th);
    });
    var tbody = table.querySelector("tbody");
    tbody.textContent = "";
    var rows = Array.isArray(data.results) ? data.results : [];
    var max = rows.reduce(function (m, r) { return Math.max(m, r.visitors || 0); }, 0);
    rows.forEach(function (r) {
      var value = r.value == null ? "(none)" : String(r.value);
      var label = conf.label ? conf.label(value) : plain(value);
      tbody.appendChild(barRow(label, r.visitors, max, conf.extras(r), value));
    });
    show(table, rows.length > 0);
    msg(panelEl(name, "msg"), rows.length ? "" : emptyText(name, property, p), false);
  }

  function loadPanel(name, gen, p) {
    var seq = ++panels[name].seq;
    var property = propertyOf(name);
    var table = $("panel-" + name).querySelector("table");
    if (!property) {
      table.querySelector("tbody").textContent = "";
      show(table, false);
      msg(panelEl(name, "msg"), "Type the key of a custom property, as sent with " +
        "analytics.track(type, {key: value}), and press Show.", false);
      return Promise.resolve(null);
    }
    var url = "/stats/breakdown?site_id=" + q(state.site) + "&property=" + q(property) + "&" + rangeQuery(p.from, p.to);
    var jobs = [api(url)];
    // Regions and cities are there only with GEOIP_DB: their tabs appear once a region is seen.
    if (name === "locations") {
      jobs.push(api("/stats/breakdown?site_id=" + q(state.site) + "&property=region&limit=1&" +
        rangeQuery(p.from, p.to)).catch(function () { return null; }));
    }
    return Promise.all(jobs).then(function (answers) {
      if (gen !== generation || seq !== panels[name].seq) return null;
      if (name === "locations") {
        var regions = answers[1] && Array.isArray(answers[1].results) && answers[1].results.length > 0;
        show($("tab-locations-region"), regions || panels.locations.tab !== "country");
        show($("tab-locations-city"), regions || panels.locations.tab !== "country");
      }
      renderRows(name, property, answers[0], p);
      return null;
    }, function (err) {
      if (gen !== generation || seq !== panels[name].seq) return null;
      table.querySelector("tbody").textContent = "";
      show(table, false);
      msg(panelEl(name, "msg"), "Could not load this breakdown: " + err.message + ".", true);
      return err;
    });
  }

  function loadPanels(gen, p) {
    return Promise.all(Object.keys(panels).map(function (name) { return loadPanel(name, gen, p); }))
      .then(function (errs) { return errs.filter(Boolean)[0] || null; });
  }

  function selectTab(name, tab, focus) {
    panels[name].tab = tab;
    renderTabs(name);
    if (focus) $("tab-" + name + "-" + tab).focus();
    if (state.site) loadPanel(name, generation, period());
  }

  Object.keys(panels).forEach(function (name) {
    var list = $("panel-" + name).querySelector('[role="tablist"]');
    list.addEventListener("click", function (e) {
      var b = e.target.closest('[role="tab"]');
      if (b) selectTab(name, b.getAttribute("data-tab"), false);
    });
    // Arrow keys move between the tabs (the WAI-ARIA tabs pattern, automatic activation).
    list.addEventListener("keydown", function (e) {
      var tabs = Array.prototype.filter.call(list.querySelectorAll('[role="tab"]'), function (b) { return !b.hidden; });
      var i = tabs.indexOf(document.activeElement), j = -1;
      if (i < 0) return;
      if (e.key === "ArrowRight") j = (i + 1) % tabs.length;
      else if (e.key === "ArrowLeft") j = (i - 1 + tabs.length) % tabs.length;
      else if (e.key === "Home") j = 0;
      else if (e.key === "End") j = tabs.length - 1;
      if (j < 0) return;
      e.preventDefault();
      selectTab(name, tabs[j].getAttribute("data-tab"), true);
    });
    renderTabs(name);
  });
  $("tab-locations-region").hidden = true;
  $("tab-locations-city").hidden = true;

  $("utm-select").addEventListener("change", function () {
    if (state.site) loadPanel("sources", generation, period());
  });
  $("prop-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var key = cleanProp($("prop-key").value);
    if (key === state.prop) { if (state.site) loadPanel("events", generation, period()); return; }
    state.prop = key;
    pushURL(false);
    if (state.site) loadPanel("events", generation, period());
  });

  // ---- live panel ----------------------------------------------------------------------------
  function renderWorker(alive, age, workers) {
    var el = $("live-worker");
    var ageText = typeof age === "number" ? " · heartbeat " + age.toFixed(1) + " s ago" : "";
    if (alive) {
      setText(el, "Running" + (workers ? " · " + workers + (workers === 1 ? " worker" : " workers") : "") + ageText);
      el.className = "worker-ok";
    } else {
      setText(el, (typeof age === "number" ? "Stalled" : "Not running") + ageText);
      el.className = "worker-down";
    }
  }

  // A user who reads only some sites gets live counts per site, never the whole system's.
  var ownSitesOnly = !!document.querySelector('meta[name="analytics-scope"]');

  function loadLive(gen) {
    if (!state.site && ownSitesOnly) {
      ["live-received", "live-queue", "live-worker"].forEach(function (id) { setText($(id), "–"); });
      setText($("live-scope"), "no site selected");
      return Promise.resolve(null);
    }
    var url = "/live" + (state.site ? "?site_id=" + q(state.site) : "");
    setText($("live-scope"), state.site ? "site " + state.site : "all sites");
    return api(url).then(function (d) {
      if (gen !== generation) return null;
      setText($("live-received"), fmt(d.received_last_5_min));
      setText($("live-queue"), fmt(d.queue_length));
      var w = d.worker || {};
      renderWorker(!!w.alive, w.heartbeat_age_s, w.workers);
      msg($("live-msg"), "", false);
      return null;
    }, function (err) {
      if (gen !== generation) return null;
      // Fall back to the readiness probe for the queue and the worker.
      return api("/readyz").catch(function (e2) {
        if (e2.status === 503) return null;
        throw e2;
      }).then(function (r) {
        setText($("live-received"), "–");
        if (r) {
          setText($("live-queue"), fmt(r.queue_length));
          var age = r.worker_heartbeat_age_s;
          renderWorker(typeof age === "number" && age < 30, age, null);
        }
        msg($("live-msg"), "Live counts unavailable: " + err.message + ".", true);
        return null;
      }, function () {
        ["live-received", "live-queue", "live-worker"].forEach(function (id) { setText($(id), "–"); $(id).className = ""; });
        msg($("live-msg"), "Live counts unavailable: " + err.message + ".", true);
        return err;
      });
    });
  }

  // ---- refresh cycle -------------------------------------------------------------------------
  function showEmpty(on) {
    show($("empty-state"), on);
    show($("site-view"), !on);
  }

  function refresh(force) {
    if (running && !force) return Promise.resolve();
    if (force) generation++;
    var gen = generation;
    running++;
    var p = period();
    return loadSites(gen).then(function (sitesErr) {
      if (gen !== generation) return;
      var noSites = !sitesErr && sitesKnown && sitesKnown.length === 0 && !state.site;
      showEmpty(noSites);
      setText($("period-caption"), state.site
        ? "Site " + state.site + " · " + describe(p) + " · compared with " + p.prevLabel
        : "");
      var jobs = [loadLive(gen)];
      if (state.site) jobs.push(loadFigures(gen, p), loadChart(gen, p), loadPanels(gen, p));
      else if (!noSites) clearFigures();
      return Promise.all(jobs).then(function (errs) {
        if (gen !== generation) return;
        errs.unshift(sitesErr);
        var errors = errs.filter(Boolean);
        var down = errors.filter(function (e) { return e.status === 0 || e.status >= 500; })[0];
        if (down) {
          setBanner("Problem with the analytics API: " + down.message + ". Retrying every " + REFRESH_MS / 1000 + " s.");
          setIndicator("error", lastOk ? "Offline · last update " + lastOk : "Offline");
        } else {
          setBanner(sitesErr ? "Could not load the list of sites: " + sitesErr.message + "." : "");
          lastOk = timeNow();
          setIndicator("live", "Live · updated " + lastOk);
        }
      });
    }).catch(function (e) {
      if (window.console) console.warn("dashboard refresh failed", e);
    }).then(function () { running--; });
  }

  // ---- controls ------------------------------------------------------------------------------
  function syncControls() {
    $("range-select").value = state.range;
    show($("custom-date-wrap"), state.range === "day");
    $("custom-date").value = state.range === "day" ? state.date : "";
    $("custom-date").max = todayUTC();
    if (sitesKnown !== null || state.site) $("site-select").value = state.site;
    if (!formSiteEdited && state.site) $("ev-site").value = state.site;
    $("prop-key").value = state.prop;
    // A property key in the URL opens the Events panel on it.
    if (state.prop && panels.events.tab !== "props") { panels.events.tab = "props"; renderTabs("events"); }
  }

  function onSelectionChange() {
    pushURL(false);
    syncControls();
    refresh(true);
  }

  $("pickers").addEventListener("submit", function (e) { e.preventDefault(); });
  $("site-select").addEventListener("change", function () {
    state.site = this.value;
    onSelectionChange();
  });
  $("range-select").addEventListener("change", function () {
    state.range = this.value;
    if (state.range === "day" && !state.date) state.date = todayUTC();
    onSelectionChange();
  });
  $("custom-date").addEventListener("change", function () {
    if (!isDate(this.value)) return;
    state.date = this.value;
    onSelectionChange();
  });
  window.addEventListener("popstate", function () {
    readURL();
    syncControls();
    refresh(true);
  });

  // ---- test-event form -----------------------------------------------------------------------
  $("ev-site").addEventListener("input", function () { formSiteEdited = true; });

  $("event-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var status = $("form-status"), button = $("ev-submit");
    var body = {
      site_id: $("ev-site").value.trim(),
      event_type: $("ev-type").value.trim()
    };
    var path = $("ev-path").value, user = $("ev-user").value.trim();
    if (path !== "") body.path = path;
    if (user !== "") body.user_id = user;
    button.disabled = true;
    status.className = "form-status";
    setText(status, "Sending…");
    fetch("/event", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body)
    }).then(function (resp) {
      return resp.json().catch(function () { return null; }).then(function (data) {
        if (resp.ok) {
          status.className = "form-status ok";
          setText(status, "Accepted (" + resp.status + (data && data.status ? " " + data.status : "") +
            "): event queued for " + body.site_id + ". The figures update within a few seconds.");
          if (!state.site) { state.site = body.site_id; pushURL(true); syncControls(); }
          [800, 2000, 4000].forEach(function (ms) { setTimeout(function () { refresh(false); }, ms); });
        } else {
          var m = data && data.error ? data.error : resp.statusText || "request failed";
          var retry = resp.headers.get("Retry-After");
          status.className = "form-status err";
          setText(status, "Rejected (" + resp.status + "): " + m + (retry ? " · retry after " + retry + " s" : ""));
        }
      });
    }, function () {
      status.className = "form-status err";
      setText(status, "Could not reach the analytics API (network error). Nothing was sent.");
    }).then(function () { button.disabled = false; });
  });

  // ---- empty-state snippets ------------------------------------------------------------------
  var origin = location.origin;
  setText($("snippet-code"), '<script defer src="' + origin + '/tracker.js" data-site="my-site"></script>');
  setText($("curl-code"), "curl -X POST " + origin + "/event \\\n  -H 'Content-Type: application/json' \\\n" +
    "  -d '{\"site_id\": \"my-site\", \"event_type\": \"pageview\", \"path\": \"/\"}'");

  // ---- resize and timers ---------------------------------------------------------------------
  if (window.ResizeObserver) {
    new ResizeObserver(function () {
      if (chart) chart.setSize({ width: Math.max(280, $("chart").clientWidth), height: 260 });
    }).observe($("chart"));
  }

  setInterval(function () {
    if (document.hidden) { setIndicator("paused", "Paused (tab hidden)"); return; }
    refresh(false);
  }, REFRESH_MS);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) refresh(false); });

  readURL();
  syncControls();
  refresh(true);
})();
