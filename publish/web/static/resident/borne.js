/* Kiosk (« borne »): back to the home page after data-idle seconds without input.
   A warning with a button shows first (WCAG 2.2.1: the visitor can stay with one action). */
(function () {
  var me = document.currentScript, idle = +me.getAttribute("data-idle") * 1000,
      home = me.getAttribute("data-home"), box = document.getElementById("borne-alerte"),
      stay = document.getElementById("borne-rester"), warn = Math.min(20000, idle / 2), t1, t2;
  function leave() { location.replace(home); }
  function reset() {
    clearTimeout(t1); clearTimeout(t2); box.hidden = true;
    t1 = setTimeout(function () { box.hidden = false; stay.focus(); t2 = setTimeout(leave, warn); },
                    idle - warn);
  }
  ["pointerdown", "keydown", "touchstart", "wheel", "input"].forEach(function (e) {
    addEventListener(e, reset, { passive: true, capture: true });
  });
  stay.addEventListener("click", reset);
  reset();
})();
