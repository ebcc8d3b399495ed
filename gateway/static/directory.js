// Progressive enhancement for the directory pages; everything works without it.
// New person: the portal-access hint follows the e-mail typed (the workspace's domain rules).
(function () {
  "use strict";
  var choice = document.getElementById("portal-access-choice");
  var email = document.getElementById("email");
  var hint = document.getElementById("portal-access-hint");
  if (!choice || !email || !hint) return;
  var rules = (choice.getAttribute("data-rules") || "").split(" ").filter(Boolean).map(function (r) {
    var i = r.lastIndexOf("=");
    return { domain: r.slice(0, i), access: r.slice(i + 1) };
  });
  var fallback = choice.getAttribute("data-default") || "off";
  function update() {
    var value = email.value.trim().toLowerCase();
    var at = value.lastIndexOf("@");
    var host = at >= 0 ? value.slice(at + 1) : "";
    if (!host) { hint.textContent = "workspace default: " + fallback; return; }
    var access = fallback;
    for (var i = 0; i < rules.length; i++) {
      var d = rules[i].domain;
      if (d === "*" || host === d || host.slice(-(d.length + 1)) === "." + d) { access = rules[i].access; break; }
    }
    hint.textContent = "default for @" + host + ": " + access;
  }
  email.addEventListener("input", update);
  update();
})();
