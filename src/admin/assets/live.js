// dropgate admin: keeps the activity page's live part current without a page reload.
// Every second it asks the server for the part's HTML again (the server renders it, escaped,
// exactly as on the first load) and puts it in place. No framework, nothing else.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var source = live.getAttribute("data-source");
  var status = document.getElementById("live-status");
  function refresh() {
    fetch(source, { credentials: "same-origin", cache: "no-store" })
      .then(function (answer) {
        if (answer.status === 401) { window.location.assign("/login"); return null; }
        if (!answer.ok) { throw new Error("HTTP " + answer.status); }
        return answer.text();
      })
      .then(function (html) {
        if (html === null) { return; }
        live.innerHTML = html;
        if (status) { status.textContent = "live, updated " + new Date().toLocaleTimeString(); }
      })
      .catch(function (error) {
        if (status) { status.textContent = "not updating: " + error.message; }
      })
      .finally(function () { window.setTimeout(refresh, 1000); });
  }
  window.setTimeout(refresh, 1000);
})();
