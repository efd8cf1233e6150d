// Copy a tracking number with one click and say so (no inline scripts: CSP-friendly).
document.addEventListener("click", function (event) {
  var button = event.target.closest(".sgx-copy");
  if (!button) { return; }
  var text = button.getAttribute("data-copy");
  var done = function () {
    var note = button.parentElement.querySelector(".sgx-copied");
    if (note) { note.hidden = false; setTimeout(function () { note.hidden = true; }, 2000); }
  };
  if (navigator.clipboard && navigator.clipboard.writeText) {
    navigator.clipboard.writeText(text).then(done, function () {});
  }
});
// Mark the selected grid row.
document.addEventListener("htmx:beforeRequest", function (event) {
  var row = event.detail.elt.closest && event.detail.elt.closest(".sgx-row");
  if (!row) { return; }
  document.querySelectorAll(".sgx-row.selected").forEach(function (r) { r.classList.remove("selected"); });
  row.classList.add("selected");
});
// A 400 on the grid carries the filter's error message: show it instead of ignoring it
// (htmx 2 does not swap 4xx responses by default).
document.addEventListener("htmx:beforeSwap", function (event) {
  var status = event.detail.xhr.status, target = event.detail.target.id;
  if ((status === 400 && (target === "orders-region" || target === "products-region")) ||
      (status === 409 && target === "shipment-region")) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});

// Connection Status refreshes every 30 s while the tab is visible, when the tab comes
// back into view, and with the filters' Update button (the panel listens for
// "sgx:refresh" on the body). A timer here instead of an htmx trigger condition: no eval.
(function () {
  var refresh = function () {
    if (document.visibilityState === "visible" && window.htmx && document.getElementById("status-region")) {
      window.htmx.trigger(document.body, "sgx:refresh");
    }
  };
  setInterval(refresh, 30000);
  document.addEventListener("visibilitychange", refresh);
  document.addEventListener("submit", function (event) {
    if (event.target.closest && event.target.closest(".sgx-filters")) { refresh(); }
  });
})();
