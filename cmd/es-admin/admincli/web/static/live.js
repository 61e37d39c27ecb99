// The $all live view: polls /api/all?after=N and prepends the new events. Plain DOM, no build.
(function () {
  var table = document.getElementById("live");
  var body = table.tBodies[0];
  var after = Number(table.dataset.after);
  function cell(tr, text, href) {
    var td = document.createElement("td");
    if (href) {
      var a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else {
      td.textContent = text;
    }
    tr.appendChild(td);
  }
  function poll() {
    fetch("/api/all?after=" + after, {credentials: "same-origin"})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (events) {
        events.forEach(function (e) {
          var tr = document.createElement("tr");
          tr.className = "new";
          cell(tr, String(e.number));
          cell(tr, e.stream, "/stream?name=" + encodeURIComponent(e.stream));
          cell(tr, String(e.version));
          cell(tr, e.type);
          cell(tr, e.created_at.replace("T", " ").replace(/\..*|Z$/, ""));
          cell(tr, JSON.stringify(e.data).slice(0, 80));
          body.insertBefore(tr, body.firstChild);
          after = Math.max(after, e.number);
        });
        document.getElementById("after").textContent = String(after);
      })
      .catch(function () {})
      .then(function () { setTimeout(poll, 1000); });
  }
  setTimeout(poll, 1000);
})();
