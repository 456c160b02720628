// jetwatch console: refresh the live region from the server every few seconds.
// The page works without this script; it only keeps it current and fills the action
// forms' token from the one field at the top. No framework, no build step.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch) {
    return;
  }
  document.documentElement.classList.add("js");
  var everyMs = (Number(document.body.getAttribute("data-refresh-s")) || 2) * 1000;
  var conn = document.getElementById("conn");

  function say(ok, text) {
    if (conn) {
      conn.textContent = text;
      conn.className = ok ? "muted" : "bad-text";
    }
  }

  function later() {
    window.setTimeout(tick, everyMs);
  }

  function tick() {
    if (document.hidden) {
      later();
      return;
    }
    fetch("/?part=live", { cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        say(true, "live, updated " + new Date().toLocaleTimeString());
      })
      .catch(function (error) {
        say(false, "daemon not answering (" + error.message + "), retrying");
      })
      .then(later);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var shared = document.getElementById("console-token");
    if (shared && form.elements && form.elements.token && !form.elements.token.value) {
      form.elements.token.value = shared.value;
    }
  });

  later();
})();
