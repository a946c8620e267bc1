/*! analytics tracker: embed with
 *  <script defer src="https://analytics.example/tracker.js" data-site="my-site"></script>
 * Sends a "pageview" on load and whenever a single-page app changes the path (history.pushState /
 * replaceState / popstate), and exposes window.analytics.track(eventType, {path, user_id, ...props})
 * for custom events. Every event carries the page's url (location.href), referrer
 * (document.referrer) and screen_width (window.innerWidth). No cookies, no storage.
 * Events go to <origin of this script>/event as text/plain JSON (no CORS preflight), with
 * navigator.sendBeacon, falling back to fetch(..., {keepalive: true}).
 * Optional attribute: data-api="https://other.example" to post somewhere else.
 */
(function (window, document) {
  "use strict";
  if (window.analytics && window.analytics.__tracker) return; // embedded twice: keep the first

  var script = document.currentScript ||
    document.querySelector('script[data-site][src*="tracker.js"]');
  if (!script) return;
  var site = script.getAttribute("data-site");
  if (!site) {
    if (window.console) console.warn("analytics: add data-site=\"your-site\" to the tracker <script>");
    return;
  }
  var api = script.getAttribute("data-api") || new URL(script.src, document.baseURI).origin;
  var endpoint = api.replace(/\/+$/, "") + "/event";

  // The server's limits (db/limits.py): a longer URL or referrer would get the event refused, so
  // it is cut here; at most 10 custom properties with keys up to 300 and values up to 2000 chars.
  var URL_MAX = 2000, PROPS_MAX = 10, PROP_KEY_MAX = 300, PROP_VALUE_MAX = 2000;

  function newId() {
    try { if (window.crypto && crypto.randomUUID) return crypto.randomUUID(); } catch (e) { /* no-op */ }
    return null;
  }

  function send(payload) {
    var body = JSON.stringify(payload);
    try {
      if (navigator.sendBeacon &&
          navigator.sendBeacon(endpoint, new Blob([body], { type: "text/plain" }))) {
        return true;
      }
    } catch (e) { /* fall back to fetch */ }
    if (window.fetch) {
      fetch(endpoint, {
        method: "POST", keepalive: true, credentials: "omit", body: body,
        headers: { "Content-Type": "text/plain" }
      })["catch"](function () { /* analytics must never break the page */ });
      return true;
    }
    return false;
  }

  function cut(text, max) {
    text = String(text);
    return text.length > max ? text.slice(0, max) : text;
  }

  // Custom properties: strings, finite numbers and booleans; anything else (null, objects,
  // functions) is left out, as are keys past the tenth, so one bad value never loses the event.
  var has = Object.prototype.hasOwnProperty;
  function addProps(out, from, skip) {
    if (!from || typeof from !== "object") return;
    for (var key in from) {
      if (!has.call(from, key) || (skip && has.call(skip, key))) continue;
      if (!key || key.length > PROP_KEY_MAX || out.n >= PROPS_MAX || has.call(out.props, key)) continue;
      var value = from[key], kind = typeof value;
      if (kind === "number" && !isFinite(value)) continue;
      if (kind !== "string" && kind !== "number" && kind !== "boolean") continue;
      out.props[key] = kind === "string" ? cut(value, PROP_VALUE_MAX) : value;
      out.n++;
    }
  }

  var OPTIONS = { path: true, user_id: true, props: true };

  // track(eventType, options): options.path and options.user_id set those fields of the event
  // (path defaults to the current path); every other key is a custom property, and so is each
  // key of options.props (for a property named "path" or "user_id").
  function track(eventType, options) {
    options = options && typeof options === "object" ? options : {};
    var payload = {
      site_id: site,
      event_type: String(eventType || "pageview"),
      path: String(options.path != null ? options.path : window.location.pathname),
      url: cut(window.location.href, URL_MAX),
      screen_width: Math.max(0, Math.round(window.innerWidth || 0))
    };
    if (document.referrer) payload.referrer = cut(document.referrer, URL_MAX);
    if (options.user_id != null) payload.user_id = String(options.user_id);
    var found = { props: Object.create(null), n: 0 };  // a key like __proto__ stays a key
    addProps(found, options.props, null);
    addProps(found, options, OPTIONS);
    if (found.n) payload.props = found.props;
    var id = newId();
    if (id) payload.event_id = id;
    return send(payload);
  }

  // A pageview is sent when the path differs from the last one sent: query-string or hash changes,
  // and replaceState calls that keep the path, are not new pageviews.
  var lastPath = null;
  function pageview() {
    var path = window.location.pathname;
    if (path === lastPath) return;
    lastPath = path;
    track("pageview", { path: path });
  }

  function wrap(name) {
    var original = window.history[name];
    if (typeof original !== "function") return;
    window.history[name] = function () {
      var result = original.apply(this, arguments);
      pageview();
      return result;
    };
  }
  wrap("pushState");
  wrap("replaceState");
  window.addEventListener("popstate", pageview);

  window.analytics = { track: track, __tracker: true };

  if (document.visibilityState === "prerender") {
    document.addEventListener("visibilitychange", function once() {
      if (document.visibilityState === "prerender") return;
      document.removeEventListener("visibilitychange", once);
      pageview();
    });
  } else {
    pageview();
  }
})(window, document);
