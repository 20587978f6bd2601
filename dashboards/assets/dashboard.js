// vigie dashboard: re-reads the page every 10 s and swaps its <header> (the
// counts per state, the time of the data) and <main> in place, so the scroll
// position and the rest of the page stay put. Without scripts the page refreshes
// itself with a <noscript> meta refresh instead.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !window.fetch || !window.DOMParser) return;
  var period = 10000;
  function refresh() {
    fetch(window.location.href, { cache: "no-store", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        // The server escapes every value that comes from a target or a config;
        // DOMParser runs no script of what it parses.
        var doc = new DOMParser().parseFromString(html, "text/html");
        var nextMain = doc.getElementById("main");
        if (!nextMain) throw new Error("no <main>");
        var header = document.querySelector("body > header");
        var nextHeader = doc.querySelector("body > header");
        if (header && nextHeader) header.innerHTML = nextHeader.innerHTML;
        main.innerHTML = nextMain.innerHTML;
        document.documentElement.removeAttribute("data-stale");
      })
      .catch(function () { document.documentElement.setAttribute("data-stale", "1"); })
      .then(function () { window.setTimeout(refresh, period); });
  }
  window.setTimeout(refresh, period);
})();
