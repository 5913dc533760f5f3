// Botyard dashboard: progressive enhancement only. Every page works without this file.
(function () {
  "use strict";

  // Live parts: <div data-live="URL" data-every="ms"> is refreshed from URL (an HTML fragment)
  // while the tab is visible, and no longer once the fragment says data-final="true".
  function live(el) {
    var every = parseInt(el.getAttribute("data-every") || "2000", 10);
    if (el.hasAttribute("data-final")) return;
    var edited = false;  // someone typed in a form here: keep the part until they submit
    el.addEventListener("input", function () { edited = true; });
    el.addEventListener("change", function () { edited = true; });
    var last = null;

    function busy() {
      // Never pull a form, a link or a button from under a user who is on it, nor refresh
      // behind an open screenshot.
      return edited || el.contains(document.activeElement) || !!document.querySelector("dialog[open]");
    }

    var timer = setInterval(function () {
      if (document.hidden || busy()) return;
      fetch(el.getAttribute("data-live"), { credentials: "same-origin", headers: { "X-Requested-With": "fetch" } })
        .then(function (r) {
          if (r.redirected || !r.ok) { clearInterval(timer); return null; }
          return r.text();
        })
        .then(function (html) {
          if (html === null || busy() || html === last) return;  // checked again on arrival
          last = html;
          el.innerHTML = html;
          if (el.querySelector("[data-final=true]")) clearInterval(timer);
        })
        .catch(function () { /* the next round tries again */ });
    }, every);
  }

  // Screenshots open in a <dialog> instead of a new page; Escape or Close ends it.
  function viewer(event) {
    var link = event.target.closest("a.shot");
    var dialog = document.getElementById("viewer");
    if (!link || !dialog || typeof dialog.showModal !== "function") return;
    event.preventDefault();
    var img = dialog.querySelector("img");
    img.src = link.getAttribute("href");
    img.alt = link.querySelector("img") ? link.querySelector("img").alt : "";
    dialog.querySelector("figcaption").textContent = link.getAttribute("data-caption") || "";
    dialog.showModal();
  }

  // Destructive actions ask first.
  function confirmSubmit(event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(live);
    document.addEventListener("click", viewer);
    document.addEventListener("submit", confirmSubmit);
  });
})();
