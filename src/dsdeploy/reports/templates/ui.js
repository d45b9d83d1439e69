// dsdeploy ui: when an option changes, fetch /api/view (the plan dict plus the sections drawn by the
// same Python code as the static report) from this server and swap the sections in. Nothing else.
(function () {
  "use strict";
  var form = document.getElementById("options");
  var status = document.getElementById("status");
  var seq = 0;
  function query() {
    var q = new URLSearchParams();
    new FormData(form).forEach(function (v, k) { if (v !== "") { q.append(k, v); } });
    return q;
  }
  function update() {
    var mine = ++seq;
    var q = query();
    status.textContent = "planning…";
    status.className = "";
    fetch("/api/view?" + q.toString(), { headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) {
        if (mine !== seq) { return; }  // a newer request is on its way
        if (!res.ok) {
          status.textContent = res.body.error || "error";
          status.className = "error";
          return;
        }
        document.getElementById("sections").innerHTML = res.body.html;
        history.replaceState(null, "", "/?" + q.toString());
        status.textContent = res.body.plan.verdict || (res.body.plan.fits ? "fits" : "does not fit");
      })
      .catch(function (e) {
        if (mine !== seq) { return; }
        status.textContent = "error: " + e;
        status.className = "error";
      });
  }
  form.addEventListener("change", update);
  form.addEventListener("input", function (ev) { if (ev.target.type === "number") { update(); } });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); update(); });
})();
