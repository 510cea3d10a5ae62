// setpoint dashboard: live updates without reloading the page.
// The server says "something changed" over server-sent events (/ui/events); the element marked
// data-live is then fetched again as an HTML fragment and swapped in. A swap waits while the
// keyboard focus is inside that element (someone is typing a pause reason), and is retried on
// the next event or after a second.
(function () {
  "use strict";
  var live = document.querySelector("[data-live]");
  if (!live || !window.EventSource) { return; }
  var pending = false, busy = false;

  function focusInside() {
    var el = document.activeElement;
    return el && el !== document.body && live.contains(el) && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName);
  }

  function refresh() {
    if (busy) { pending = true; return; }
    if (focusInside()) { pending = true; setTimeout(function () { if (pending) { refresh(); } }, 1000); return; }
    busy = true; pending = false;
    fetch(live.getAttribute("data-live"), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
      .then(function (html) { live.innerHTML = html; live.setAttribute("data-updated", String(Date.now())); })
      .catch(function () { /* the next event tries again */ })
      .then(function () { busy = false; if (pending) { refresh(); } });
  }

  var events = new EventSource("/ui/events");
  events.addEventListener("change", refresh);
  events.addEventListener("open", function () { document.body.setAttribute("data-live-connected", "1"); });
})();
