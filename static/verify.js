/* The verification page: a file dropped or chosen is submitted at once. */
(function () {
  var form = document.getElementById("verify-form"), zone = document.getElementById("dropzone"),
      input = document.getElementById("credential_file");
  input.addEventListener("change", function () { if (input.files.length) form.submit(); });
  ["dragenter", "dragover"].forEach(function (e) {
    zone.addEventListener(e, function (ev) { ev.preventDefault(); zone.classList.add("over"); });
  });
  ["dragleave", "drop"].forEach(function (e) {
    zone.addEventListener(e, function () { zone.classList.remove("over"); });
  });
  zone.addEventListener("drop", function (ev) {
    ev.preventDefault();
    if (ev.dataTransfer && ev.dataTransfer.files.length) { input.files = ev.dataTransfer.files; form.submit(); }
  });
})();
