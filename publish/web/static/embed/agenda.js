/* Tissu — agenda solidaire embarquable. Licence AGPL-3.0-or-later.
 * Usage : <div data-tissu-agenda data-theme="alimentation" data-quartier="" data-limite="5"></div>
 *         <script src="https://<serveur Tissu>/embed/agenda.js" defer></script>
 * Ne charge rien d'autre que les données du serveur Tissu d'où vient ce script. */
(function () {
  "use strict";
  var script = document.currentScript;
  var base = script ? new URL(script.src, document.baseURI).origin : "";
  var CSS = ".tissu-agenda{font:inherit;line-height:1.45}.tissu-agenda ol{list-style:none;margin:0;padding:0}" +
    ".tissu-agenda li{border-top:1px solid #ccc;padding:.5rem 0}.tissu-agenda h3{font-size:1.05em;margin:0 0 .15rem}" +
    ".tissu-agenda p{margin:0}.tissu-agenda time{font-weight:600}.tissu-agenda .tissu-pied{font-size:.85em;margin-top:.5rem}";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) { node.textContent = text; }
    return node;
  }

  function addStyle() {
    if (document.getElementById("tissu-agenda-style")) { return; }
    var style = el("style", { id: "tissu-agenda-style" });
    style.textContent = CSS;
    document.head.appendChild(style);
  }

  function render(box, data) {
    var section = el("section", { "class": "tissu-agenda", "aria-label": box.getAttribute("data-titre") || "Agenda solidaire de Pantin" });
    var list = el("ol");
    data.sessions.forEach(function (s, i) {
      var item = el("li");
      var article = el("article", { "aria-labelledby": "tissu-" + box.__tissuId + "-" + i });
      var title = el("h3", { id: "tissu-" + box.__tissuId + "-" + i });
      if (s.url && /^https?:\/\//.test(s.url)) {
        title.appendChild(el("a", { href: s.url, rel: "noopener" }, s.title));
      } else {
        title.textContent = s.title;
      }
      article.appendChild(title);
      var when = el("p");
      when.appendChild(el("time", { datetime: s.start }, s.when));
      if (s.cancelled) { when.appendChild(document.createTextNode(" — annulé")); }
      article.appendChild(when);
      if (s.location) {
        article.appendChild(el("p", null, s.location + (s.quartier ? " (" + s.quartier + ")" : "")));
      }
      item.appendChild(article);
      list.appendChild(item);
    });
    if (data.sessions.length) {
      section.appendChild(list);
    } else {
      section.appendChild(el("p", null, "Aucune séance à venir pour cette sélection."));
    }
    var foot = el("p", { "class": "tissu-pied" });
    foot.appendChild(el("a", { href: base + data.page }, "Tout l'agenda solidaire (Tissu)"));
    section.appendChild(foot);
    box.replaceChildren(section);
  }

  function fill(box, n) {
    box.__tissuId = n;
    var query = new URLSearchParams();
    ["theme", "quartier", "limite"].forEach(function (k) {
      var v = box.getAttribute("data-" + k);
      if (v) { query.set(k, v); }
    });
    box.setAttribute("aria-busy", "true");
    fetch(base + "/embed/agenda.json?" + query.toString(), { credentials: "omit" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (data) { render(box, data); })
      .catch(function () {
        box.replaceChildren(el("p", null, "L'agenda solidaire est momentanément indisponible."));
      })
      .then(function () { box.removeAttribute("aria-busy"); });
  }

  function start() {
    addStyle();
    Array.prototype.forEach.call(document.querySelectorAll("[data-tissu-agenda]"), fill);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
