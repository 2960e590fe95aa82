// Registrar pages: the certificate's print button, and a batch's progress polled
// until it is anchored (or failed).
(function () {
  "use strict";
  var print = document.getElementById("print-certificate");
  if (print) print.addEventListener("click", function () { window.print(); });
})();

(function () {
  "use strict";
  var box = document.getElementById("batch-progress");
  if (!box || box.dataset.finished === "true") return;
  var bar = document.getElementById("progress-bar");
  var stage = document.getElementById("progress-stage");
  var count = document.getElementById("progress-count");
  var error = document.getElementById("progress-error");
  var delay = 500;
  var leaving = false;
  window.addEventListener("beforeunload", function () { leaving = true; });
  function show(p) {
    bar.style.width = p.percent + "%";
    bar.parentElement.setAttribute("aria-valuenow", String(p.percent));
    // The words come from the server (kernel.jobs.STAGE_LABELS), never typed again here.
    stage.textContent = p.stage_label || p.state;
    var counting = p.state !== "anchored" && (p.stage === "signing" || p.stage === "finishing");
    count.textContent = counting ? p.done + " / " + p.count : p.count + (p.count === 1 ? " credential" : " credentials");
    if (p.error) { error.textContent = p.error; error.hidden = false; }
  }

  function poll() {
    fetch(box.dataset.url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (p) {
        show(p);
        if (p.finished || p.resumable) {
          box.dataset.finished = "true";
          // Reload once so the list of credentials and the badges are current,
          // unless the person has gone elsewhere meanwhile: a reload would cancel
          // the page they asked for and bring them back here.
          window.setTimeout(function () { if (!leaving) window.location.reload(); }, 400);
          return;
        }
        window.setTimeout(poll, delay);
        delay = Math.min(delay * 1.3, 3000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 300);
})();
