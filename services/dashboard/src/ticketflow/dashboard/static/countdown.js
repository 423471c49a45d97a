// SLA clocks counting down every second in business time (docs/dashboard.md, "The countdown").
// A running clock's cell carries what the server knows (domain/views.py, Countdown): the business seconds
// left at a reference instant (data-left; negative: overdue) and the calendar's open intervals from that
// instant on (data-open, epoch seconds). Left now = data-left - the open seconds between the reference and
// now, so the count stands still while the desk is closed. Paused and met clocks carry none and never tick.
// The browser's clock is corrected by the server's at page load (meta server-now). Cells swapped in by the
// live stream are found again on the next tick.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="server-now"]');
  var skew = meta ? Number(meta.content) - Date.now() / 1000 : 0;
  var units = (document.documentElement.dataset.units || "d h min s").split(" ");

  function openBetween(from, to, intervals) {
    var total = 0;
    for (var i = 0; i < intervals.length; i++) {
      var lo = Math.max(from, intervals[i][0]);
      var hi = Math.min(to, intervals[i][1]);
      if (hi > lo) total += hi - lo;
    }
    return total;
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function shown(seconds) {
    var s = Math.floor(Math.abs(seconds));
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    var text = h + " " + units[1] + " " + pad(m) + " " + units[2] + " " + pad(s % 60) + " " + units[3];
    return d ? d + " " + units[0] + " " + text : text;
  }

  function tick() {
    var now = Date.now() / 1000 + skew;
    var cells = document.querySelectorAll("[data-countdown]");
    for (var i = 0; i < cells.length; i++) {
      var cell = cells[i];
      var reference = Number(cell.dataset.reference);
      var intervals = JSON.parse(cell.dataset.open);
      var left = Number(cell.dataset.left) - openBetween(reference, Math.max(now, reference), intervals);
      var text = left >= 0 ? shown(left) : cell.dataset.overdue.replace("{duration}", shown(left));
      if (cell.textContent !== text) cell.textContent = text;
      cell.dataset.seconds = String(Math.round(left));
    }
  }

  tick();
  window.setInterval(tick, 1000);
  document.addEventListener("htmx:afterSwap", tick); // the live stream's new cells: at once, not a second later
  document.addEventListener("htmx:sseMessage", tick);
})();
