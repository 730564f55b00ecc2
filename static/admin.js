// Admin: review the queue from the keyboard, decide without page loads, confirm deletions.
(function () {
  "use strict";

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
  });

  var form = document.getElementById("queue-form");
  if (!form) return;
  var reasons = Array.prototype.map.call(
    form.querySelectorAll(".card:first-child .actions button.reject"),
    function (b) { return b.value.split(":")[1]; }
  );
  var count = document.getElementById("queue-count");
  var current = null;

  function cards() { return Array.prototype.slice.call(form.querySelectorAll(".card:not(.done)")); }

  function focus(card) {
    if (current) current.classList.remove("current");
    current = card || null;
    if (!current) return;
    current.classList.add("current");
    current.focus({ preventScroll: true });
    current.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }

  function step(delta) {
    var all = cards();
    if (!all.length) return;
    var at = all.indexOf(current);
    focus(all[Math.max(0, Math.min(all.length - 1, at < 0 ? 0 : at + delta))]);
  }

  // Send one decision (or a bulk one) as the form would, and take the decided cards away.
  function decide(act, ids) {
    var data = new FormData();
    data.append("csrf_token", form.querySelector("input[name=csrf_token]").value);
    data.append("act", act);
    ids.forEach(function (id) { data.append("ids", id); });
    return fetch(form.action, {
      method: "POST", body: data, credentials: "same-origin",
      headers: { "Accept": "application/json", "X-CSRFToken": data.get("csrf_token") }
    }).then(function (response) {
      if (!response.ok) throw new Error("the server answered " + response.status);
      return response.json();
    }).then(function (result) {
      var next = null;
      result.done.forEach(function (id) {
        var card = form.querySelector('.card[data-id="' + id + '"]');
        if (!card) return;
        if (card === current) {
          var all = cards();
          next = all[all.indexOf(card) + 1] || all[all.indexOf(card) - 1] || null;
        }
        card.classList.add("done");
        card.setAttribute("data-decided", result.verb + (result.reason ? ":" + result.reason : ""));
        card.querySelector("input[type=checkbox]").checked = false;
      });
      if (count) count.textContent = Math.max(0, parseInt(count.textContent, 10) - result.done.length);
      if (next || !current || current.classList.contains("done")) focus(next || cards()[0]);
      if (!cards().length) window.location.reload();  // the next page of the queue
    }).catch(function (error) {
      window.alert("Could not save the decision: " + error.message);
    });
  }

  form.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (!button || !button.value) return;
    event.preventDefault();
    var parts = button.value.split(":");
    var target = parts[parts.length - 1];
    var ids = target === "selected"
      ? Array.prototype.map.call(form.querySelectorAll("input[name=ids]:checked"), function (c) { return c.value; })
      : [target];
    if (!ids.length) return;
    var act = parts.slice(0, -1).concat([target === "selected" ? "selected" : target]).join(":");
    decide(act, ids);
  });

  form.addEventListener("click", function (event) {
    var card = event.target.closest(".card");
    if (card && !event.target.closest("button, a, input")) focus(card);
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.matches("input[type=text], input[type=search], textarea, select")) return;
    var key = event.key;
    if (key === "j" || key === "ArrowRight") { step(1); }
    else if (key === "k" || key === "ArrowLeft") { step(-1); }
    else if (!current) { return; }
    else if (key === "a") { decide("approve:" + current.dataset.id, [current.dataset.id]); }
    else if (/^[1-9]$/.test(key) && reasons[Number(key) - 1]) {
      decide("reject:" + reasons[Number(key) - 1] + ":" + current.dataset.id, [current.dataset.id]);
    }
    else if (key === "x") { var box = current.querySelector("input[type=checkbox]"); box.checked = !box.checked; }
    else if (key === "o") { window.open(current.dataset.original, "_blank", "noopener"); }
    else { return; }
    event.preventDefault();
  });

  focus(cards()[0]);
})();
