// Keyboard-only review. Item page: c confirm, d dismiss, e escalate, n next.
// Queue: j/k move between items, Enter opens. Keys are ignored while typing.
(function () {
  "use strict";
  function typing(t) {
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT");
  }
  document.addEventListener("keydown", function (ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey || typing(ev.target)) { return; }
    var click = { c: "confirm", d: "dismiss", e: "escalate", n: "next" }[ev.key];
    if (click) {
      var el = document.getElementById(click);
      if (el) { ev.preventDefault(); el.click(); }
      return;
    }
    if (ev.key === "j" || ev.key === "k") {
      var links = Array.prototype.slice.call(document.querySelectorAll(".item-link"));
      if (!links.length) { return; }
      var at = links.indexOf(document.activeElement);
      var next = ev.key === "j" ? Math.min(at + 1, links.length - 1) : Math.max(at - 1, 0);
      ev.preventDefault();
      links[next].focus();
    }
  });
})();
