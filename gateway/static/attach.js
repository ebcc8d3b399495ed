// Progressive enhancement of file fields ([data-attach]): drop files on the form, or paste a
// screenshot into it, and they join the field's files. Without this script the field works as
// a plain <input type="file" multiple>; the server checks every file either way.
(function () {
  "use strict";
  function setup(zone) {
    var input = zone.querySelector('input[type="file"]');
    var form = zone.closest("form");
    var list = zone.querySelector("[data-attach-list]");
    if (!input || !form || typeof DataTransfer === "undefined") return;
    function show() {
      var names = Array.prototype.map.call(input.files, function (f) { return f.name; });
      if (list) list.textContent = names.length ? "To attach: " + names.join(", ") : "";
    }
    function add(files) {
      var all = new DataTransfer();
      Array.prototype.forEach.call(input.files, function (f) { all.items.add(f); });
      Array.prototype.forEach.call(files, function (f) { all.items.add(f); });
      input.files = all.files;
      show();
    }
    form.addEventListener("dragover", function (e) {
      if (e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types, "Files") >= 0) {
        e.preventDefault();
        zone.classList.add("dragover");
      }
    });
    form.addEventListener("dragleave", function () { zone.classList.remove("dragover"); });
    form.addEventListener("drop", function (e) {
      if (!e.dataTransfer || !e.dataTransfer.files.length) return;
      e.preventDefault();
      zone.classList.remove("dragover");
      add(e.dataTransfer.files);
    });
    form.addEventListener("paste", function (e) {
      var items = (e.clipboardData && e.clipboardData.items) || [];
      var pasted = [];
      Array.prototype.forEach.call(items, function (item) {
        if (item.kind === "file") {
          var file = item.getAsFile();
          if (!file) return;
          var stamp = new Date().toISOString().replace(/[:.]/g, "-");
          var ext = (file.type.split("/")[1] || "bin").replace(/[^a-z0-9]/g, "");
          pasted.push(new File([file], file.name && file.name !== "image.png" ? file.name : "screenshot-" + stamp + "." + ext, { type: file.type }));
        }
      });
      if (pasted.length) {
        e.preventDefault();
        add(pasted);
      }
    });
    input.addEventListener("change", show);
  }
  document.querySelectorAll("[data-attach]").forEach(setup);
})();
