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

// Import job: poll the job's JSON, move the progress bar, reload once for the final report.
// Without JavaScript the page refreshes itself (<noscript> meta refresh).
(function () {
  "use strict";
  var box = document.getElementById("import-job");
  var url = box && box.getAttribute("data-poll");
  if (!url) return;
  var bar = document.getElementById("import-progress");
  var count = document.getElementById("import-count");
  var status = document.getElementById("import-status");
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (job) {
        bar.max = job.total_rows || 1;
        bar.value = job.rows_done;
        bar.textContent = job.rows_done + " of " + job.total_rows;
        count.textContent = job.rows_done + " of " + job.total_rows;
        status.textContent = job.status;
        if (job.status === "done" || job.status === "failed") { window.location.reload(); return; }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
})();
