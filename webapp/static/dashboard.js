/* Dashboard: fetches the JSON API of the same origin and renders it.
 * Every value that comes from events (site ids, paths, event types, user ids) is written with
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

  var $ = function (id) { return document.getElementById(id); };
  var nf = new Intl.NumberFormat();

  // ---- state (mirrors the URL query string) -------------------------------------------------
  var state = { site: "", range: "today", date: "" };
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

  function readURL() {
    var q = new URLSearchParams(location.search);
    var range = q.get("range");
    state.site = q.get("site") || "";
    state.range = RANGES.hasOwnProperty(range) ? range : "today";
    state.date = isDate(q.get("date")) ? q.get("date") : "";
    if (state.range === "day" && !state.date) state.date = todayUTC();
  }

  function urlFor(s) {
    var q = new URLSearchParams();
    if (s.site) q.set("site", s.site);
    q.set("range", s.range);
    if (s.range === "day") q.set("date", s.date || todayUTC());
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

  function changeInfo(cur, prev) {
    if (typeof cur !== "number" || typeof prev !== "number") return { text: "", cls: "" };
    if (prev === 0 && cur === 0) return { text: "no change", cls: "" };
    if (prev === 0) return { text: "▲ new", cls: "change-up" };
    var pct = Math.round(((cur - prev) / prev) * 100);
    if (pct === 0) return { text: "±0%", cls: "" };
    return pct > 0 ? { text: "▲ " + pct + "%", cls: "change-up" } : { text: "▼ " + Math.abs(pct) + "%", cls: "change-down" };
  }

  function setFigure(id, cur, prev, prevLabel) {
    var card = $(id);
    setText(card.querySelector('[data-role="value"]'), fmt(cur));
    var el = card.querySelector('[data-role="change"]');
    var c = changeInfo(cur, prev);
    el.className = "figure-change " + c.cls;
    if (typeof prev === "number") {
      setText(el, c.text + " vs " + prevLabel + " (" + fmt(prev) + ")");
    } else {
      setText(el, typeof cur === "number" ? "previous period unavailable" : "");
    }
  }

  function clearFigures() {
    ["fig-views", "fig-users", "fig-events"].forEach(function (id) {
      setText($(id).querySelector('[data-role="value"]'), "–");
      setText($(id).querySelector('[data-role="change"]'), "");
    });
  }

  function barRow(label, value, max, extra) {
    var tr = document.createElement("tr");
    var td = document.createElement("td");
    td.className = "label";
    var bar = document.createElement("span");
    bar.className = "bar";
    bar.style.width = (max > 0 ? Math.max(1, (value / max) * 100) : 0).toFixed(1) + "%";
    var text = document.createElement("span");
    text.className = "text";
    setText(text, label);
    td.title = label;
    td.appendChild(bar);
    td.appendChild(text);
    tr.appendChild(td);
    var num = document.createElement("td");
    num.className = "num";
    setText(num, fmt(value));
    tr.appendChild(num);
    if (extra) {
      var chg = document.createElement("td");
      chg.className = "chg " + extra.cls;
      setText(chg, extra.text);
      tr.appendChild(chg);
    }
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

  // ---- figures, tables, chart ----------------------------------------------------------------
  function loadFigures(gen, p) {
    var base = "site_id=" + q(state.site);
    // Views, visitors, paths and the chart count page views; "events" counts every type.
    var pv = "&event_type=pageview";
    var cur = api("/stats?" + base + "&" + rangeQuery(p.from, p.to) + pv + "&limit=10");
    var prev = api("/stats?" + base + "&" + rangeQuery(p.prevFrom, p.prevTo) + pv + "&limit=1");
    var types = api("/stats/event-types?" + base + "&from=" + p.from + "&to=" + p.to);
    var prevTypes = api("/stats/event-types?" + base + "&from=" + p.prevFrom + "&to=" + p.prevTo);
    return Promise.allSettled([cur, prev, types, prevTypes]).then(function (r) {
      if (gen !== generation) return null;
      var s = r[0].status === "fulfilled" ? r[0].value : null;
      var ps = r[1].status === "fulfilled" ? r[1].value : null;
      var t = r[2].status === "fulfilled" ? r[2].value : null;
      var pt = r[3].status === "fulfilled" ? r[3].value : null;
      var label = p.prevLabel;

      if (s) {
        setFigure("fig-views", s.total_views, ps ? ps.total_views : undefined, label);
        setFigure("fig-users", s.unique_users, ps ? ps.unique_users : undefined, label);
      } else {
        setFigure("fig-views", undefined, undefined, label);
        setFigure("fig-users", undefined, undefined, label);
      }

      // Top paths.
      var tbody = $("top-paths").querySelector("tbody");
      tbody.textContent = "";
      if (!s) {
        msg($("paths-msg"), "Could not load statistics: " + r[0].reason.message + ".", true);
      } else {
        var paths = s.top_paths || [];
        var max = paths.reduce(function (m, x) { return Math.max(m, x.views || 0); }, 0);
        paths.forEach(function (x) {
          tbody.appendChild(barRow(x.path == null || x.path === "" ? "(no path)" : String(x.path), x.views, max));
        });
        msg($("paths-msg"), paths.length ? "" :
          "No page views for " + state.site + " in " + describe(p) +
          ". Pick another period, embed the tracker, or send a test event below.", false);
      }

      // Events by type.
      var tb = $("event-types").querySelector("tbody");
      tb.textContent = "";
      if (!t) {
        setFigure("fig-events", undefined, undefined, label);
        msg($("types-msg"), "Could not load event types: " + r[2].reason.message + ".", true);
      } else {
        var list = t.event_types || [];
        var prevMap = {}, prevTotal = 0;
        if (pt) (pt.event_types || []).forEach(function (x) { prevMap[x.event_type] = x.count; prevTotal += x.count; });
        var total = list.reduce(function (a, x) { return a + (x.count || 0); }, 0);
        setFigure("fig-events", total, pt ? prevTotal : undefined, label);
        var tmax = list.reduce(function (m, x) { return Math.max(m, x.count || 0); }, 0);
        list.forEach(function (x) {
          var c = pt ? changeInfo(x.count, prevMap[x.event_type] || 0) : { text: "", cls: "" };
          tb.appendChild(barRow(String(x.event_type), x.count, tmax, c));
        });
        msg($("types-msg"), list.length ? "" : "No events in " + describe(p) + ".", false);
      }
      var firstErr = [r[0], r[2]].filter(function (x) { return x.status === "rejected"; })[0];
      return firstErr ? firstErr.reason : null;
    });
  }

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
    function pad(n) { return n < 10 ? "0" + n : "" + n; }
    function xLabel(ts) {
      var d = new Date(ts * 1000);
      return interval === "hour" ? pad(d.getUTCHours()) + ":00" : months[d.getUTCMonth()] + " " + d.getUTCDate();
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
        { label: "Page views", stroke: accent, width: 2, fill: accent + "22", points: { size: 5 } },
        { label: "Unique visitors", stroke: users, width: 2, points: { size: 5 } }
      ],
      axes: [xAxis, Object.assign({ size: 50 }, axis)]
    }, [[], [], []], el);
    return chart;
  }

  function loadChart(gen, p) {
    setText($("chart-interval"), p.interval === "hour" ? "by hour, UTC" : "by day, UTC");
    if (typeof window.uPlot !== "function") {
      msg($("chart-msg"), "The chart library did not load.", true);
      return Promise.resolve(null);
    }
    var url = "/stats/timeseries?site_id=" + q(state.site) + "&from=" + p.from + "&to=" + p.to + "&interval=" + p.interval +
      "&event_type=pageview";
    return api(url).then(function (rows) {
      if (gen !== generation) return null;
      if (!Array.isArray(rows)) throw new ApiError(200, "unexpected time series answer");
      var xs = [], vs = [], us = [];
      rows.forEach(function (r) {
        xs.push(Date.parse(r.t) / 1000);
        vs.push(r.views || 0);
        us.push(r.unique_users || 0);
      });
      ensureChart(p.interval).setData([xs, vs, us]);
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
      if (state.site) jobs.push(loadFigures(gen, p), loadChart(gen, p));
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
