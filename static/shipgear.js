// The View eCommerce page's behaviour. No inline scripts, no inline handlers, no htmx
// trigger conditions (nothing is evaluated as code): the page runs under a strict
// Content-Security-Policy.
(function () {
  "use strict";

  var BULK_MAX_DEFAULT = 1000;

  function closest(node, selector) {
    return node && node.closest ? node.closest(selector) : null;
  }

  function formatCount(n) {
    return Number(n).toLocaleString("en-US");
  }

  // ---------------------------------------------------------------------------------
  // Copy a tracking number with one click, and say so visibly and in a live region.
  function say(note, text, keepFor) {
    if (!note) { return; }
    note.textContent = text;
    if (note.sgxTimer) { clearTimeout(note.sgxTimer); }
    note.sgxTimer = setTimeout(function () { note.textContent = ""; }, keepFor || 2500);
  }

  function copyFallback(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "sgx-offscreen";
    document.body.appendChild(area);
    area.select();
    var done = false;
    try { done = document.execCommand("copy"); } catch (e) { done = false; }
    document.body.removeChild(area);
    return done;
  }

  document.addEventListener("click", function (event) {
    var button = closest(event.target, ".sgx-copy");
    if (!button) { return; }
    var text = button.getAttribute("data-copy") || "";
    var note = button.parentElement.querySelector(".sgx-copied");
    var copied = function () { say(note, "Copied"); };
    var failed = function () {
      if (copyFallback(text)) { copied(); } else {
        say(note, "Could not copy: select the number and press Ctrl+C", 6000);
      }
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(copied, failed);
    } else {
      failed();
    }
  });

  // ---------------------------------------------------------------------------------
  // Grid rows open the shipment on click, or on Enter while the row has the focus. The
  // row's hx-trigger is the custom "sgx:open" event; clicks on the row's checkbox (or any
  // other control in it) do not open it. Up and Down move between rows.
  var CONTROLS = "a, button, input, label, select, textarea";

  function openRow(row) {
    if (window.htmx) { window.htmx.trigger(row, "sgx:open"); }
  }

  document.addEventListener("click", function (event) {
    var row = closest(event.target, ".sgx-row");
    if (!row || closest(event.target, CONTROLS)) { return; }
    var selection = window.getSelection ? window.getSelection() : null;
    if (selection && !selection.isCollapsed && row.contains(selection.anchorNode)) {
      return; // the user is selecting text to copy, not opening the row
    }
    openRow(row);
  });

  document.addEventListener("keydown", function (event) {
    var row = event.target;
    if (!row.classList || !row.classList.contains("sgx-row")) { return; }
    if (event.key === "Enter") {
      event.preventDefault();
      openRow(row);
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      var next = event.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
      if (next && next.classList.contains("sgx-row")) {
        event.preventDefault();
        next.focus();
      }
    }
  });

  // Mark the row (or the package's row) whose shipment is being opened.
  function markSelected(id) {
    document.querySelectorAll(".sgx-row.selected").forEach(function (r) {
      r.classList.remove("selected");
      r.removeAttribute("aria-current");
    });
    if (!id) { return; }
    document.querySelectorAll(".sgx-row").forEach(function (r) {
      if (r.getAttribute("data-id") === id) {
        r.classList.add("selected");
        r.setAttribute("aria-current", "true");
      }
    });
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var elt = event.detail.elt;
    var row = closest(elt, ".sgx-row");
    if (row) { markSelected(row.getAttribute("data-id")); return; }
    var link = closest(elt, ".sgx-package-link");
    if (link) { markSelected(link.getAttribute("data-open-id")); }
  });

  // A 400 on the grid carries the filter's error message: show it instead of ignoring it
  // (htmx 2 does not swap 4xx responses by default).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status, target = event.detail.target && event.detail.target.id;
    if ((status === 400 && (target === "orders-region" || target === "products-region")) ||
        (status === 409 && target === "shipment-region")) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  // ---------------------------------------------------------------------------------
  // Bulk: select rows (or every row matching the filters) and Retry selected.
  var allMatching = null;   // ids of every matching row, after "Select all matching"
  var allCapped = false;    // more rows matched than one Retry selected may take
  var fetching = 0;         // increments per "Select all matching"; stale fetches stop
  var busy = false;         // a "Select all matching" is running

  function region() { return document.getElementById("orders-region"); }
  function bulkForm() { return document.getElementById("sgx-bulk"); }
  function pageBoxes() {
    var grid = region();
    return grid ? Array.prototype.slice.call(grid.querySelectorAll("input.sgx-pick")) : [];
  }
  function bulkMax() {
    var form = bulkForm();
    var value = form ? parseInt(form.getAttribute("data-bulk-max"), 10) : NaN;
    return isNaN(value) ? BULK_MAX_DEFAULT : value;
  }

  function selectedIds() {
    if (allMatching) { return allMatching.slice(); }
    return pageBoxes().filter(function (b) { return b.checked; }).map(function (b) { return b.value; });
  }

  function summary(text) {
    var node = document.getElementById("sgx-selection");
    if (node) { node.textContent = text; }
  }

  function refreshSelection() {
    var boxes = pageBoxes();
    var checked = boxes.filter(function (b) { return b.checked; });
    boxes.forEach(function (b) {
      var row = closest(b, ".sgx-row");
      if (row) { row.classList.toggle("picked", b.checked); }
    });
    var all = document.querySelector("#orders-region .sgx-pick-page");
    if (all) {
      all.checked = boxes.length > 0 && checked.length === boxes.length;
      all.indeterminate = checked.length > 0 && checked.length < boxes.length;
    }
    var ids = selectedIds();
    if (allMatching) {
      var matching = document.querySelector("#orders-region .sgx-select-matching");
      var totalText = matching ? matching.getAttribute("data-total-text") : formatCount(ids.length);
      summary(allCapped
        ? "The first " + formatCount(ids.length) + " of " + totalText + " matching orders selected " +
          "(Retry selected takes at most " + formatCount(bulkMax()) + " at a time)."
        : "All " + formatCount(ids.length) + " matching orders selected.");
    } else if (ids.length) {
      summary(formatCount(ids.length) + " selected on this page.");
    } else {
      summary("No orders selected");
    }
    var retry = document.querySelector("#orders-region .sgx-retry-selected");
    if (retry) { retry.disabled = ids.length === 0 || busy; }
    var clear = document.querySelector("#orders-region .sgx-clear-selection");
    if (clear) { clear.hidden = ids.length === 0 && !busy; }
    var matching = document.querySelector("#orders-region .sgx-select-matching");
    if (matching) { matching.hidden = Boolean(allMatching); }
  }

  function resetSelection() {
    allMatching = null;
    allCapped = false;
    fetching += 1; // any fetch still running belongs to the old grid
    busy = false;
    refreshSelection();
  }

  // A box ticked or unticked by hand leaves "all matching" (and stops it if running).
  function leaveAllMatching() {
    allMatching = null;
    allCapped = false;
    fetching += 1;
    busy = false;
    var matching = document.querySelector("#orders-region .sgx-select-matching");
    if (matching) { matching.disabled = false; }
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.classList && target.classList.contains("sgx-pick-page")) {
      leaveAllMatching();
      pageBoxes().forEach(function (b) { b.checked = target.checked; });
      refreshSelection();
    } else if (target.classList && target.classList.contains("sgx-pick")) {
      leaveAllMatching();
      refreshSelection();
    }
  });

  // "Select all N matching": every matching id through orders.json (the grid's own
  // filters and order), 500 a request, at most bulkMax() ids.
  function fetchAllMatching(button) {
    var grid = region();
    var source = grid && grid.getAttribute("data-json-url");
    if (!source) { return; }
    var ticket = ++fetching;
    var cap = bulkMax();
    var ids = [];
    var url = new URL(source, window.location.href);
    url.searchParams.set("limit", "500");
    url.searchParams.delete("after");
    button.disabled = true;
    busy = true;
    summary("Selecting all matching orders…");
    var retry = document.querySelector("#orders-region .sgx-retry-selected");
    if (retry) { retry.disabled = true; }

    var dropped = false;
    var step = function () {
      return fetch(url.toString(), {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (response) {
          return response.json().then(function (body) {
            if (!response.ok) { throw new Error(body.error || ("HTTP " + response.status)); }
            return body;
          });
        })
        .then(function (body) {
          if (ticket !== fetching) { return null; } // the grid changed meanwhile
          body.items.forEach(function (item) {
            if (ids.length < cap) { ids.push(String(item.id)); } else { dropped = true; }
          });
          if (body.next && ids.length < cap) {
            url.searchParams.set("after", body.next);
            return step();
          }
          return {ids: ids, capped: dropped || Boolean(body.next)};
        });
    };

    step().then(function (result) {
      if (!result || ticket !== fetching) { return; }
      busy = false;
      allMatching = result.ids;
      allCapped = result.capped;
      pageBoxes().forEach(function (b) { b.checked = true; });
      button.disabled = false;
      refreshSelection();
    }).catch(function (error) {
      if (ticket !== fetching) { return; }
      busy = false;
      button.disabled = false;
      allMatching = null;
      refreshSelection();
      summary("Could not select every matching order: " + error.message);
    });
  }

  document.addEventListener("click", function (event) {
    var button = closest(event.target, ".sgx-select-matching");
    if (button) {
      event.preventDefault();
      fetchAllMatching(button);
    } else if (closest(event.target, ".sgx-clear-selection")) {
      event.preventDefault();
      leaveAllMatching();
      pageBoxes().forEach(function (b) { b.checked = false; });
      refreshSelection();
    }
  });

  function bulkStatus(text) {
    var node = document.getElementById("sgx-bulk-status");
    if (node) { node.textContent = text; }
  }

  // The ids go as one comma-separated "ids" field (the endpoint takes both forms).
  document.addEventListener("htmx:configRequest", function (event) {
    if (!event.detail.elt || event.detail.elt.id !== "sgx-bulk") { return; }
    var ids = selectedIds();
    if (!ids.length) {
      event.preventDefault();
      bulkStatus("Select at least one order.");
      return;
    }
    // Many orders at once: say what will happen first (one order is like Retry now).
    if (ids.length > 1 && !window.confirm(
        "Retry " + formatCount(ids.length) + " orders now? Each runs its next attempt at once; " +
        "failed ones start a new round of up to 5 attempts.")) {
      event.preventDefault();
      bulkStatus("Nothing was retried.");
      return;
    }
    if (event.detail.formData) {
      event.detail.formData.delete("ids");
      event.detail.formData.set("ids", ids.join(","));
    } else {
      event.detail.parameters.ids = ids.join(",");
    }
    event.detail.headers["Accept"] = "application/json";
    bulkStatus("Retrying " + formatCount(ids.length) + " selected order" + (ids.length === 1 ? "" : "s") + "…");
  });

  function refreshGrid() {
    if (!window.htmx || !region()) { return; }
    window.htmx.ajax("GET", window.location.pathname + window.location.search,
                     {target: "#orders-region", swap: "outerHTML"});
  }

  document.addEventListener("htmx:afterRequest", function (event) {
    if (!event.detail.elt || event.detail.elt.id !== "sgx-bulk") { return; }
    var xhr = event.detail.xhr, body = null;
    try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
    if (body && body.message) {
      bulkStatus(body.message);
    } else if (xhr.status === 403) {
      bulkStatus("You may not retry orders for this company.");
    } else {
      bulkStatus("Retry selected failed (HTTP " + xhr.status + "); reload the page and try again.");
    }
    if (body && body.ok) { refreshGrid(); }
  });

  // After Retry now or Mark confirmed in the shipment panel, the grid shows the new
  // status too (unless rows are selected there: a refresh would clear the selection).
  document.addEventListener("htmx:afterRequest", function (event) {
    var elt = event.detail.elt, config = event.detail.requestConfig;
    if (!elt || !event.detail.successful || !config || config.verb !== "post") { return; }
    if (closest(elt, "#shipment-region") && selectedIds().length === 0) { refreshGrid(); }
  });

  // Keyboard users keep their place: after a heading or a pager link swaps the grid, the
  // focus goes back to that heading (or pager link, or else the first row).
  var refocus = null;
  document.addEventListener("htmx:beforeRequest", function (event) {
    var link = closest(event.detail.elt, ".sgx-sort, .sgx-page-link");
    refocus = link && document.activeElement === link ? focusedInGrid(region()) : null;
  });

  function restoreFocus() {
    if (!refocus) { return; }
    var grid = region(), wanted = refocus;
    refocus = null;
    if (grid && !refocusInGrid(grid, wanted, {})) {
      var first = grid.querySelector(".sgx-row");
      if (first) { first.focus(); }
    }
  }

  // A new grid (filters, sort, page, refresh, Back) starts with nothing selected.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (target && (target.id === "orders-region" || target === document.body)) {
      resetSelection();
      restoreFocus();
    }
  });
  document.addEventListener("htmx:historyRestore", resetSelection);

  // htmx keeps each grid state for Back as HTML, which holds the filters' attributes but
  // not what the user ticked or typed since: write those into the attributes first, so
  // that Back shows the filters that made the grid it restores.
  document.addEventListener("htmx:beforeHistorySave", function () {
    var form = document.getElementById("sgx-filters");
    if (!form) { return; }
    Array.prototype.forEach.call(form.querySelectorAll("input, option"), function (field) {
      if (field.tagName === "OPTION") {
        field.toggleAttribute("selected", field.selected);
      } else if (field.type === "checkbox" || field.type === "radio") {
        field.toggleAttribute("checked", field.checked);
      } else if (field.type !== "hidden") {
        field.setAttribute("value", field.value);
      }
    });
  });

  // A row opened below the fold (a narrow window puts the panel under the grid) scrolls
  // the panel into view, so the click visibly does something.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target, config = event.detail.requestConfig;
    if (!target || target.id !== "shipment-region" || !config || !closest(config.elt, ".sgx-row")) { return; }
    var top = target.getBoundingClientRect().top;
    if (top > window.innerHeight - 80 || top < 0) {
      target.scrollIntoView({block: "start", behavior: "smooth"});
    }
  });

  // ---------------------------------------------------------------------------------
  // Write-backs move on their own (pending, submitted, success or failed): the grid, and
  // an open shipment that is not final yet, reload in place every data-refresh-every
  // seconds while the tab is in view. Never while the user is in the middle of
  // something: rows ticked, "Select all matching" running, a click, key press or scroll
  // in the last seconds, a field being typed in or holding a note, text being selected,
  // or any request on its way; and an answer that comes back after the user acted, or
  // that shows nothing new (data-version), is not swapped in. The grid keeps its scroll
  // position and focus.
  var lastGrid = Date.now(), lastPanel = Date.now(), lastTouch = 0;
  var QUIET_MS = 3000;
  var LIVE = "X-SGX-Live";
  ["pointerdown", "keydown", "wheel", "touchstart"].forEach(function (type) {
    document.addEventListener(type, function () { lastTouch = Date.now(); },
                              {capture: true, passive: true});
  });

  function refreshEvery() {
    var grid = region();
    var value = grid ? parseFloat(grid.getAttribute("data-refresh-every")) : NaN;
    return isNaN(value) || value <= 0 ? 0 : value * 1000;
  }

  function userBusyIn(container) {
    if (!container || Date.now() - lastTouch < QUIET_MS) { return true; }
    var active = document.activeElement;
    if (active && container.contains(active) && active.matches("input[type=text], select, textarea")) {
      return true;
    }
    var selection = window.getSelection ? window.getSelection() : null;
    if (selection && !selection.isCollapsed && container.contains(selection.anchorNode)) { return true; }
    return Array.prototype.some.call(container.querySelectorAll("input[type=text], textarea"),
                                     function (field) { return field.value !== ""; });
  }

  // What has the focus in the grid, so that the same thing gets it back after a swap.
  function focusedInGrid(grid) {
    var active = document.activeElement;
    if (!grid || !active || active === document.body || !grid.contains(active)) { return null; }
    var row = closest(active, ".sgx-row");
    if (row) {
      return {row: row.getAttribute("data-id"), pick: active.classList.contains("sgx-pick")};
    }
    if (active.id) { return {id: active.id}; }
    var key = active.getAttribute("data-key"), cls = active.classList.item(0);
    return key ? {key: key} : cls ? {cls: cls} : null;
  }

  // Focus what focusedInGrid() described, in a new grid; false if it is not there.
  function refocusInGrid(grid, focused, options) {
    var target = null;
    if (focused.row) {
      var again = Array.prototype.filter.call(grid.querySelectorAll(".sgx-row"), function (r) {
        return r.getAttribute("data-id") === focused.row;
      })[0];
      target = again && focused.pick ? again.querySelector(".sgx-pick") : again;
    } else if (focused.id) {
      target = document.getElementById(focused.id);
    } else if (focused.key) {
      target = Array.prototype.filter.call(grid.querySelectorAll("[data-key]"), function (a) {
        return a.getAttribute("data-key") === focused.key;
      })[0];
    } else if (focused.cls) {
      target = grid.querySelector("." + focused.cls);
    }
    if (target) { target.focus(options); }
    return Boolean(target);
  }

  function liveRequest(url, target, swap) {
    var headers = {};
    headers[LIVE] = String(Date.now());
    return window.htmx.ajax("GET", url, {target: target, swap: swap, headers: headers});
  }

  function refreshGridInPlace() {
    var grid = region();
    var scroller = grid.querySelector(".sgx-grid-scroll");
    var scroll = scroller ? [scroller.scrollTop, scroller.scrollLeft] : [0, 0];
    var focused = focusedInGrid(grid);
    liveRequest(window.location.pathname + window.location.search, "#orders-region",
                "outerHTML").then(function () {
      var fresh = region();
      if (!fresh || fresh === grid) { return; } // not swapped: nothing new, or the user acted
      var box = fresh.querySelector(".sgx-grid-scroll");
      if (box) { box.scrollTop = scroll[0]; box.scrollLeft = scroll[1]; }
      if (focused) { refocusInGrid(fresh, focused, {preventScroll: true}); }
    }).catch(function () { /* offline or aborted: the next tick tries again */ });
  }

  // A live answer is swapped only if the user did nothing since it was asked for, nothing
  // is selected, it is for the shipment still open, and it shows something new.
  function versionIn(html) {
    var found = /data-version="([^"]*)"/.exec(html || "");
    return found ? found[1] : null;
  }

  document.addEventListener("htmx:beforeSwap", function (event) {
    var config = event.detail.requestConfig;
    var sent = config && config.headers ? parseInt(config.headers[LIVE], 10) : NaN;
    if (isNaN(sent)) { return; }
    var target = event.detail.target;
    var current = target && target.querySelector("[data-version]");
    var stale = lastTouch > sent || selectedIds().length > 0 || busy ||
      event.detail.xhr.status !== 200 || (target && !target.isConnected);
    if (target && target.id === "orders-region") {
      current = target;
    } else if (current && !new RegExp("/orders/" + current.getAttribute("data-writeback-id") +
                                      "(?:[?#]|$)").test(config.path)) {
      stale = true; // another shipment was opened meanwhile
    }
    if (stale || (current && versionIn(event.detail.xhr.responseText) === current.getAttribute("data-version"))) {
      event.detail.shouldSwap = false;
    }
  });

  function liveRefresh() {
    var every = refreshEvery();
    if (!every || !window.htmx || document.visibilityState !== "visible") { return; }
    if (document.querySelector(".htmx-request")) { return; }
    var now = Date.now();
    var panel = document.getElementById("shipment-region");
    var open = panel && panel.querySelector("[data-refresh-url]");
    if (open && now - lastPanel >= every && !userBusyIn(panel)) {
      lastPanel = now;
      liveRequest(open.getAttribute("data-refresh-url"), "#shipment-region", "innerHTML")
        .catch(function () { /* the next tick tries again */ });
      return;
    }
    if (now - lastGrid >= every && !selectedIds().length && !busy && !userBusyIn(region())) {
      lastGrid = now;
      refreshGridInPlace();
    }
  }
  setInterval(liveRefresh, 1000);

  // Whatever swapped the grid or the panel (the user or the refresh), it is fresh now.
  document.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target) { return; }
    if (target.id === "orders-region") { lastGrid = Date.now(); }
    if (target.id === "shipment-region") { lastPanel = Date.now(); }
  });

  // ---------------------------------------------------------------------------------
  // Connection Status refreshes every 30 s while the tab is visible, when the tab comes
  // back into view, and with the filters' Update button (the panel listens for
  // "sgx:refresh" on the body). A timer here instead of an htmx trigger condition: no eval.
  var refreshStatus = function () {
    if (document.visibilityState === "visible" && window.htmx && document.getElementById("status-region")) {
      window.htmx.trigger(document.body, "sgx:refresh");
    }
  };
  setInterval(refreshStatus, 30000);
  document.addEventListener("visibilitychange", refreshStatus);
  document.addEventListener("submit", function (event) {
    if (closest(event.target, ".sgx-filters")) { refreshStatus(); }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", resetSelection);
  } else {
    resetSelection();
  }
})();
