// Submissions pages: upload many files with progress, and the live anchor check.
// Upload progress comes from the browser (XHR upload events); processing
// progress is polled from the server, which reads it from the database.
(function () {
  "use strict";

  function $(id) { return document.getElementById(id); }

  function setBar(bar, fraction) {
    bar.style.width = Math.max(0, Math.min(100, Math.round(fraction * 100))) + "%";
  }

  function poll(url, onDone) {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (job) {
        var total = job.total || 1;
        setBar($("process-bar"), job.done / total);
        // The words come from the server (kernel.jobs.STAGE_LABELS), never typed again here.
        $("process-stage").textContent = job.stage_label + (job.detail ? " (" + job.detail + ")" : "");
        $("process-count").textContent = job.done + " / " + job.total;
        if (job.finished) { onDone(job); } else { setTimeout(function () { poll(url, onDone); }, 400); }
      })
      .catch(function () { setTimeout(function () { poll(url, onDone); }, 1000); });
  }

  function initUpload() {
    var form = $("upload-form");
    if (!form || !window.FormData || !window.XMLHttpRequest) { return; }
    form.addEventListener("submit", function (event) {
      var files = $("files").files;
      if (!files || !files.length) { return; }  // the server says what is missing
      event.preventDefault();
      var box = $("upload-progress"), status = $("upload-status"), button = $("upload-button");
      box.hidden = false;
      button.disabled = true;
      status.textContent = "Sending " + files.length + (files.length === 1 ? " file…" : " files…");
      setBar($("upload-bar"), 0);
      setBar($("process-bar"), 0);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("Accept", "application/json");
      xhr.setRequestHeader("X-Requested-With", "fetch");
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          setBar($("upload-bar"), e.loaded / e.total);
          $("upload-pct").textContent = Math.round(100 * e.loaded / e.total) + "%";
        }
      });
      xhr.addEventListener("load", function () {
        var body = {};
        try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
        if (xhr.status !== 202) {
          status.textContent = body.error || ("The upload was refused (HTTP " + xhr.status + ").");
          button.disabled = false;
          return;
        }
        setBar($("upload-bar"), 1);
        $("upload-pct").textContent = "100%";
        status.textContent = "Files received; reading and indexing them…";
        poll(body.progress_url, function (job) {
          var unreadable = job.unreadable;
          if (job.failed) { status.textContent = "The upload could not be finished: " + job.error; return; }
          status.textContent = "Done: " + job.added + " added" +
            (job.duplicates ? ", " + job.duplicates + " already there" : "") +
            (unreadable > 0 ? ", " + unreadable + " could not be read" : "") + ".";
          // The page lists the submissions and every file not added, with the reason.
          setTimeout(function () { window.location.reload(); }, 600);
        });
      });
      xhr.addEventListener("error", function () {
        status.textContent = "The connection failed while sending; nothing was changed. Try again.";
        button.disabled = false;
      });
      xhr.send(new FormData(form));
    });
  }

  function initChainCheck() {
    var badge = $("chain-check");
    if (!badge) { return; }
    fetch(badge.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (result) {
        var unknown = !result.valid && result.checks.every(function (c) { return c.status !== "failed"; });
        badge.className = "badge " + (result.valid ? "ok" : unknown ? "skip" : "bad");
        badge.textContent = result.valid ? "Still matches the chain, anchored by your institution"
          : unknown ? "Could not check the chain right now" : "Does not match the chain";
        var list = $("chain-check-details");
        list.innerHTML = "";
        result.checks.forEach(function (c) {
          var li = document.createElement("li");
          li.className = c.status;
          li.textContent = (c.status === "passed" ? "✓ " : c.status === "failed" ? "✗ " :
            c.status === "unavailable" ? "? " : "– ") + c.message;
          list.appendChild(li);
        });
      })
      .catch(function () {
        badge.className = "badge skip";
        badge.textContent = "Could not reach the server to check";
      });
  }

  function initReportForm() {
    var form = $("report-form");
    if (!form) { return; }
    form.addEventListener("submit", function () {
      $("build-report").disabled = true;
      $("report-status").hidden = false;
    });
  }

  function initReportJob() {
    var box = $("report-job");
    if (!box || !$("report-bar")) { return; }
    (function tick() {
      fetch(box.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (job) {
          setBar($("report-bar"), job.done / (job.total || 1));
          $("report-stage").textContent = job.stage_label;
          $("report-count").textContent = job.done + " / " + job.total;
          if (job.report_url) { window.location.assign(job.report_url); return; }
          if (job.finished) { window.location.reload(); return; }  // failed: the page says why
          setTimeout(tick, 500);
        })
        .catch(function () { setTimeout(tick, 1500); });
    }());
  }

  function initPasteLink() {
    var paste = $("paste");
    if (!paste) { return; }
    function openIfAsked() { if (window.location.hash === "#paste") { paste.open = true; } }
    window.addEventListener("hashchange", openIfAsked);
    openIfAsked();
  }

  document.addEventListener("DOMContentLoaded", function () {
    initUpload();
    initPasteLink();
    initReportJob();
    initReportForm();
    initChainCheck();
  });
}());
