// vigie dashboard: re-reads the page's <main> every 10 s and swaps it in place,
// so the scroll position and the rest of the page stay put. Without scripts the
// page refreshes itself with a <noscript> meta refresh instead.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !window.fetch) return;
  var period = 10000;
  function url() {
    var u = new URL(window.location.href);
    u.searchParams.set("fragment", "1");
    return u.toString();
  }
  function refresh() {
    fetch(url(), { cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        // The server escapes every value that comes from a target or a config.
        main.innerHTML = html;
        document.documentElement.removeAttribute("data-stale");
      })
      .catch(function () { document.documentElement.setAttribute("data-stale", "1"); })
      .then(function () { window.setTimeout(refresh, period); });
  }
  window.setTimeout(refresh, period);
})();
