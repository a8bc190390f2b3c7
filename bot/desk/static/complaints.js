// Sportello review console: the complaints waiting for an answer, from /console/api/complaints,
// the nearest deadline first; late ones flagged with the indemnity owed so far. Data is put on
// the page as text only (el() from common.js).
"use strict";

(function () {
  const KIND_LABELS = { general: "general", billing_correction: "billing correction",
    double_billing: "double billing" };

  function showError(err) {
    document.getElementById("console-error").textContent = err ? String(err.message || err) : "";
  }

  function day(iso) {
    const [y, m, d] = iso.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString("en-GB",
      { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  }

  function euros(amount) {
    return "€ " + Number(amount).toFixed(2);
  }

  function daysLeft(r) {
    if (r.late) return el("span", { class: "late-flag" }, "late by " + (-r.days_left) +
                          (r.days_left === -1 ? " day" : " days"));
    if (r.days_left === 0) return el("span", { class: "due-today" }, "last day");
    return String(r.days_left);
  }

  function render(data) {
    const body = document.getElementById("rows");
    body.replaceChildren();
    for (const r of data.rows) {
      const customer = el("a", { href: "/console/customers/" + encodeURIComponent(r.customer_code) },
                          r.customer_code);
      body.append(el("tr", { "data-ticket": r.ticket_id, class: r.late ? "late" : "" },
        el("td", {}, r.ticket_id),
        el("td", {}, customer, el("span", { class: "muted small" }, " " + r.persona)),
        el("td", {}, day(r.received_on)),
        el("td", { class: "kind" }, (KIND_LABELS[r.kind] || r.kind) +
           (r.correction_due ? ", correction by " + day(r.correction_due) : "")),
        el("td", {}, day(r.last_day)),
        el("td", { class: "num days-left" }, daysLeft(r)),
        el("td", { class: "num indemnity" }, r.late ? euros(r.indemnity_eur) : "—"),
        el("td", {}, r.status.replace("_", " ")),
        el("td", {}, r.channel),
        el("td", { class: "subject" }, r.subject)));
    }
    document.getElementById("empty").hidden = data.rows.length > 0;
    document.getElementById("total").textContent = data.total + (data.total === 1 ? " complaint" : " complaints");
    const summary = document.getElementById("summary");
    summary.textContent = data.late
      ? data.late + " past the deadline: " + euros(data.indemnity_owed_eur) + " of indemnities owed so far"
      : "None past the deadline.";
    summary.className = "complaints-summary " + (data.late ? "has-late" : "no-late");
    document.getElementById("page-info").textContent = "page " + data.page + " of " + data.pages;
    const prev = document.getElementById("prev"), next = document.getElementById("next");
    prev.disabled = data.page <= 1;
    next.disabled = data.page >= data.pages;
    prev.onclick = () => load(data.page - 1);
    next.onclick = () => load(data.page + 1);
  }

  async function load(page) {
    showError("");
    try {
      render(await api("GET", "/console/api/complaints?page=" + page));
      document.getElementById("console").dataset.loaded = "true";
    } catch (err) {
      showError(err);
    }
  }

  load(1);
})();
