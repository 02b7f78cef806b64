// kitaru ui: refresh the parts of a page marked live, and check JSON before submitting.
(function () {
  "use strict";

  function refresh(el) {
    var url = el.getAttribute("data-live");
    if (!url) return;
    var interval = parseInt(el.getAttribute("data-interval") || "2000", 10);
    var follow = el.hasAttribute("data-follow");
    function tick() {
      if (document.hidden) { setTimeout(tick, interval); return; }
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (!r.ok) throw new Error(r.status);
          var more = r.headers.get("x-kitaru-live") !== "done";
          return r.text().then(function (html) { return [html, more]; });
        })
        .then(function (got) {
          var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
          if (el.innerHTML !== got[0]) el.innerHTML = got[0];
          if (follow && atBottom) window.scrollTo(0, document.body.scrollHeight);
          if (got[1]) setTimeout(tick, interval);
        })
        .catch(function () { setTimeout(tick, interval * 2); });
    }
    setTimeout(tick, interval);
  }

  function checkJson(form) {
    var ok = true;
    form.querySelectorAll("textarea[data-json-object], textarea[data-json]").forEach(function (t) {
      var error = form.querySelector("#" + t.id.replace("replay-", "") + "-error") ||
        t.parentNode.querySelector(".field-error");
      var message = "";
      var text = t.value.trim();
      if (text !== "" || t.hasAttribute("data-json-object")) {
        try {
          var value = JSON.parse(text === "" ? "{}" : text);
          if (t.hasAttribute("data-json-object") &&
              (value === null || typeof value !== "object" || Array.isArray(value))) {
            message = "must be a JSON object: {\"checkpoint.NAME\": value, ...}";
          }
        } catch (e) {
          message = "not valid JSON: " + e.message;
        }
      }
      if (error) error.textContent = message;
      t.setAttribute("aria-invalid", message ? "true" : "false");
      if (message) ok = false;
    });
    return ok;
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(refresh);
    document.querySelectorAll("form").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!checkJson(form)) event.preventDefault();
      });
    });
  });
})();
