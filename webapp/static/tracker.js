/*! analytics tracker: embed with
 *  <script defer src="https://analytics.example/tracker.js" data-site="my-site"></script>
 * Sends a "pageview" (with location.pathname) on load and whenever a single-page app changes the
 * path (history.pushState / replaceState / popstate), and exposes
 * window.analytics.track(eventType, {path, user_id}) for custom events.
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

  function track(eventType, props) {
    props = props || {};
    var payload = {
      site_id: site,
      event_type: String(eventType || "pageview"),
      path: String(props.path != null ? props.path : window.location.pathname)
    };
    if (props.user_id != null) payload.user_id = String(props.user_id);
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
