// Sportello review console: the conversation list, one conversation, a customer's conversations.
// Data comes from /console/api/... and is always put on the page with textContent (through el()),
// never as HTML, so whatever a customer wrote is shown as text.
"use strict";

const root = document.getElementById("console");
const pageName = root.dataset.page;
const role = root.dataset.role;
const OUTCOME_LABELS = { contained: "contained", handover: "handed over", abandoned: "abandoned" };
const RESOLUTION_LABELS = { resolved: "resolved", not_resolved: "not resolved", handed_over: "handed over" };
const FAILURE_LABELS = { silent_turn: "no reply (silent turn)", error_reply: "error reply",
                         wrong_skill: "answered by the wrong skill" };

function showError(err) {
  document.getElementById("console-error").textContent = err ? String(err.message || err) : "";
}

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString("it-IT", { timeZone: "Europe/Rome", dateStyle: "short",
                                                 timeStyle: "medium" });
}

function seconds(s) {
  if (s === null || s === undefined) return "—";
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

// ---- the list (also the customer page) ------------------------------------------------------

function outcomeBadge(outcome) {
  return el("span", { class: "outcome " + outcome }, OUTCOME_LABELS[outcome] || outcome);
}

function resolutionBadge(resolution) {
  if (!resolution) return el("span", { class: "muted small" }, "no task");
  return el("span", { class: "resolution " + resolution }, RESOLUTION_LABELS[resolution] || resolution);
}

function csatCell(row) {
  if (row.csat === null || row.csat === undefined) return el("span", { class: "muted" }, "—");
  return el("span", { class: "csat-value", title: row.csat_comment || "" },
            "★".repeat(row.csat) + " " + row.csat);
}

function renderRows(rows) {
  const body = document.getElementById("rows");
  body.replaceChildren();
  for (const r of rows) {
    const link = el("a", { href: "/console/conversations/" + r.id, class: "open" }, when(r.started_at));
    const customer = r.customer_code
      ? el("a", { href: "/console/customers/" + encodeURIComponent(r.customer_code) }, r.customer_code)
      : el("span", { class: "muted" }, "anonymous");
    const tags = el("span", { class: "chips" }, ...r.tags.map(t => el("span", { class: "chip" }, t)));
    body.append(el("tr", { "data-id": String(r.id) },
      el("td", {}, link),
      el("td", {}, r.channel || "—"),
      el("td", {}, (r.language || "").toUpperCase()),
      el("td", {}, r.persona || "—"),
      el("td", {}, customer),
      el("td", { class: "intents" }, r.intents.join(", ")),
      el("td", {}, outcomeBadge(r.outcome), r.handover_reason ? el("span", { class: "muted small" }, " " + r.handover_reason) : null),
      el("td", { class: "resolution-cell" }, resolutionBadge(r.resolution),
         r.failures ? el("span", { class: "failure-count", title: "silent failures" }, " ⚠ " + r.failures) : null),
      el("td", { class: "num" }, r.turns),
      el("td", { class: "num" }, r.fallbacks),
      el("td", {}, csatCell(r)),
      el("td", {}, tags),
      el("td", {}, r.reviewed ? "✓" : "")));
  }
  document.getElementById("empty").hidden = rows.length > 0;
}

function renderPager(data, go) {
  document.getElementById("total").textContent = data.total + (data.total === 1 ? " conversation" : " conversations");
  document.getElementById("page-info").textContent = "page " + data.page + " of " + data.pages;
  const prev = document.getElementById("prev"), next = document.getElementById("next");
  prev.disabled = data.page <= 1;
  next.disabled = data.page >= data.pages;
  prev.onclick = () => go(data.page - 1);
  next.onclick = () => go(data.page + 1);
}

async function listPage() {
  const params = new URLSearchParams(window.location.search);
  for (const [k, v] of [...params]) if (!v) params.delete(k);
  const sort = params.get("sort") || "-started_at";
  const go = (page) => {
    const p = new URLSearchParams(params);
    p.set("page", String(page));
    window.location.search = p.toString();
  };
  for (const b of document.querySelectorAll("button.sort")) {
    const key = b.dataset.sort;
    if (sort.replace(/^-/, "") === key) {
      b.classList.add("sorted");
      b.setAttribute("aria-sort", sort.startsWith("-") ? "descending" : "ascending");
      b.append(sort.startsWith("-") ? " ↓" : " ↑");
    }
    b.onclick = () => {
      const p = new URLSearchParams(params);
      p.set("sort", sort === "-" + key ? key : "-" + key);
      p.delete("page");
      window.location.search = p.toString();
    };
  }
  // empty fields are not sent, so the address only holds the filters in use
  document.getElementById("filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(ev.target)) if (String(v).trim()) p.set(k, String(v).trim());
    window.location.search = p.toString();
  });
  const exportParams = new URLSearchParams(params);
  exportParams.delete("page");
  exportParams.delete("per_page");
  const qs = exportParams.toString() ? "?" + exportParams.toString() : "";
  document.getElementById("export-csv").href = "/console/api/conversations.csv" + qs;
  document.getElementById("export-json").href = "/console/api/conversations.json" + qs;
  try {
    const data = await api("GET", "/console/api/conversations?" + params.toString());
    renderRows(data.rows);
    renderPager(data, go);
    root.dataset.loaded = "true";
  } catch (err) {
    showError(err);
  }
}

async function customerPage() {
  const code = root.dataset.customer;
  let page = 1;
  const load = async () => {
    try {
      const data = await api("GET", "/console/api/conversations?customer_code=" + encodeURIComponent(code) +
                                    "&per_page=100&page=" + page);
      renderRows(data.rows);
      renderPager(data, (p) => { page = p; load(); });
      const channels = [...new Set(data.rows.map(r => r.channel || "—"))];
      document.getElementById("channels").replaceChildren(
        ...channels.map(c => el("span", { class: "chip" }, c)));
      root.dataset.loaded = "true";
    } catch (err) {
      showError(err);
    }
  };
  await load();
}

// ---- one conversation -------------------------------------------------------------------------

const conv = { id: null, data: null };

function fact(dl, label, value) {
  if (value === null || value === undefined || value === "") return;
  dl.append(el("dt", {}, label), el("dd", {}, value));
}

function renderFacts(c) {
  const dl = document.getElementById("facts");
  dl.replaceChildren();
  fact(dl, "Started", when(c.started_at));
  fact(dl, "Ended", c.ended ? when(c.ended_at) : "still open (last activity " + when(c.last_event_at) + ")");
  fact(dl, "Channel", c.channel);
  fact(dl, "Language", (c.language || "").toUpperCase());
  fact(dl, "Persona", c.persona);
  if (c.customer_code) {
    dl.append(el("dt", {}, "Customer"),
              el("dd", {}, el("a", { href: "/console/customers/" + encodeURIComponent(c.customer_code), id: "customer-link" },
                              c.customer_code)));
  } else {
    fact(dl, "Customer", "anonymous");
  }
  dl.append(el("dt", {}, "Outcome"), el("dd", { id: "outcome" }, outcomeBadge(c.outcome)));
  fact(dl, "Turns", String(c.turns) + (c.fallbacks ? " (" + c.fallbacks + " not understood)" : ""));
  if (c.handed_over) {
    fact(dl, "Handover", [c.handover_reason, c.handover_state,
                          "wait " + seconds(c.handover_wait_seconds),
                          "handling " + seconds(c.handover_handling_seconds)].filter(Boolean).join(" · "));
  }
  if (c.active_loop) fact(dl, "Open form", c.active_loop);
  dl.append(el("dt", {}, "Resolution"), el("dd", { id: "resolution" }, resolutionBadge(c.resolution)));
  dl.append(el("dt", {}, "Tasks"), el("dd", { id: "tasks" }, ...(c.tasks.length ? c.tasks.map(taskItem) : ["—"])));
  if (c.failures) fact(dl, "Silent failures", String(c.failures));
  dl.append(el("dt", {}, "Intents"),
            el("dd", { id: "intents" }, c.intents.map(i => i.intent + (i.count > 1 ? " ×" + i.count : "") + " (" + (i.stage_label || i.stage) + ")").join(", ") || "—"));
  const csat = document.getElementById("csat");
  csat.replaceChildren();
  if (c.csat) {
    csat.append(el("strong", {}, "CSAT " + c.csat + "/5 "), el("span", { class: "stars" }, "★".repeat(c.csat) + "☆".repeat(5 - c.csat)));
  } else {
    csat.append(el("span", { class: "muted" }, "No rating."));
  }
  if (c.csat_comment) csat.append(el("q", { id: "csat-comment" }, c.csat_comment));
}

function taskItem(t) {
  const parts = [t.skill + ": " + (RESOLUTION_LABELS[t.outcome] || t.outcome)];
  if (t.outcome === "resolved") parts.push(t.confirmed ? "confirmed (" + t.confirmed_by + ")" : "assumed");
  if (t.reason) parts.push(t.reason.replace(/_/g, " "));
  if (t.reference) parts.push(t.reference);
  return el("div", { class: "task " + t.outcome, "data-skill": t.skill }, parts.join(" · "));
}

function annotationControl(m) {
  const box = el("div", { class: "annotate" });
  if (m.annotation) {
    box.append(el("span", { class: "annotation" }, "should be: ", el("strong", {}, m.annotation.intent),
                  m.annotation.by ? el("span", { class: "muted" }, " (" + m.annotation.by + ")") : null));
    const remove = el("button", { type: "button", class: "link annotation-remove" }, "remove");
    remove.onclick = () => change(() => api("DELETE", `/console/api/conversations/${conv.id}/messages/${m.id}/annotation`));
    box.append(" ", remove);
    return box;
  }
  const select = el("select", { class: "annotate-intent", "aria-label": "The intent this message should have had" });
  select.append(document.getElementById("intent-options").content.cloneNode(true));
  const save = el("button", { type: "button", class: "annotate-save" }, "Annotate");
  save.onclick = () => {
    if (!select.value) { showError("choose the intent this message should have had"); return; }
    change(() => api("POST", `/console/api/conversations/${conv.id}/messages/${m.id}/annotation`, { intent: select.value }));
  };
  box.append(select, " ", save);
  return box;
}

function transcriptLine(m) {
  const classes = ["line", m.sender];
  if (m.handover) classes.push("handover");
  if (m.fallback) classes.push("fallback");
  if (m.failure) classes.push("failure", m.failure);
  if (m.sender === "action") {
    return el("li", { class: classes.join(" "), "data-id": String(m.id) }, el("span", { class: "action-name" }, "⚙ " + m.text));
  }
  if (m.sender === "event") {
    return el("li", { class: classes.join(" "), "data-id": String(m.id) }, el("span", {}, m.text), " ", el("time", {}, when(m.at)));
  }
  const who = m.sender === "customer" ? "Customer" : m.sender === "agent" ? "Agent" + (m.agent ? ": " + m.agent : "") : "Bot";
  const head = el("div", { class: "meta" }, el("strong", { class: "who" }, who), " ", el("time", {}, when(m.at)));
  if (m.handover) head.append(" ", el("span", { class: "handover-mark" }, "with a person"));
  if (m.failure) head.append(" ", el("span", { class: "failure-mark", "data-failure": m.failure }, "⚠ " + (FAILURE_LABELS[m.failure] || m.failure)));
  const li = el("li", { class: classes.join(" "), "data-id": String(m.id) }, head, el("div", { class: "text" }, m.text));
  if (m.sender === "customer") {
    const nlu = el("div", { class: "nlu" });
    if (m.intent) {
      const conf = m.confidence === null || m.confidence === undefined ? "" : " " + (m.confidence * 100).toFixed(0) + "%";
      nlu.append(el("span", { class: "intent" + (m.fallback ? " not-understood" : "") }, m.intent + conf));
    }
    for (const e of m.entities || []) nlu.append(" ", el("span", { class: "entity" }, e.entity + "=" + e.value));
    li.append(nlu, annotationControl(m));
  }
  return li;
}

function renderTranscript(c) {
  const list = document.getElementById("transcript");
  list.replaceChildren(...c.messages.map(transcriptLine));
}

function renderReview(c) {
  const box = document.getElementById("reviewed");
  box.checked = !!c.reviewed;
  document.getElementById("reviewed-by").textContent = c.reviewed && c.reviewed_by ? "by " + c.reviewed_by : "";
  const names = c.tags.map(t => t.tag);
  for (const b of document.querySelectorAll(".tag-toggle")) {
    b.setAttribute("aria-pressed", names.includes(b.dataset.tag) ? "true" : "false");
  }
  const list = document.getElementById("tags");
  list.replaceChildren(...c.tags.map(t => {
    const remove = el("button", { type: "button", class: "chip-remove", "aria-label": "Remove tag " + t.tag }, "×");
    remove.onclick = () => change(() => api("POST", `/console/api/conversations/${conv.id}/tags/delete`, { tag: t.tag }));
    return el("li", { class: "chip", "data-tag": t.tag }, el("span", {}, t.tag), " ", remove);
  }));
  const notes = document.getElementById("notes");
  notes.replaceChildren(...c.notes.map(n => el("li", {},
    el("div", { class: "meta" }, el("strong", {}, n.author || "—"), " ", el("time", {}, when(n.at))),
    el("div", { class: "text" }, n.text))));
}

async function loadConversation() {
  const c = await api("GET", "/console/api/conversations/" + conv.id);
  conv.data = c;
  renderFacts(c);
  renderTranscript(c);
  renderReview(c);
  root.dataset.loaded = "true";
}

async function change(action) {
  showError("");
  try {
    await action();
    await loadConversation();
  } catch (err) {
    showError(err);
  }
}

function revealed(data) {
  const lines = data.lines;
  const note = document.getElementById("revealed-note");
  note.textContent = "Unmasked, as the customer wrote it. This reveal is recorded in the audit log (#" +
                     data.audit_id + ").";
  note.hidden = false;
  const list = document.getElementById("revealed");
  list.replaceChildren(...lines.map(l => {
    const who = l.sender === "customer" ? "Customer" : l.sender === "agent" ? "Agent" + (l.agent ? ": " + l.agent : "") : "Bot";
    const li = el("li", { class: "line " + l.sender },
      el("div", { class: "meta" }, el("strong", {}, who), " ", el("time", {}, when(l.at))),
      el("div", { class: "text" }, l.text));
    if (l.entities && l.entities.length) {
      li.append(el("div", { class: "nlu" }, ...l.entities.map(e => el("span", { class: "entity" }, e.entity + "=" + e.value))));
    }
    return li;
  }));
  list.hidden = false;
}

async function conversationPage() {
  conv.id = Number(root.dataset.conversation);
  document.getElementById("reviewed").addEventListener("change", (ev) =>
    change(() => api("POST", `/console/api/conversations/${conv.id}/reviewed`, { reviewed: ev.target.checked })));
  for (const b of document.querySelectorAll(".tag-toggle")) {
    b.addEventListener("click", () => {
      const on = b.getAttribute("aria-pressed") === "true";
      change(() => api("POST", `/console/api/conversations/${conv.id}/tags` + (on ? "/delete" : ""), { tag: b.dataset.tag }));
    });
  }
  document.getElementById("tag-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = document.getElementById("tag-input");
    const tag = input.value.trim();
    if (!tag) return;
    change(async () => {
      await api("POST", `/console/api/conversations/${conv.id}/tags`, { tag });
      input.value = "";
    });
  });
  document.getElementById("note-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const text = document.getElementById("note-text");
    if (!text.value.trim()) return;
    change(async () => {
      await api("POST", `/console/api/conversations/${conv.id}/notes`, { text: text.value });
      text.value = "";
    });
  });
  const reveal = document.getElementById("reveal");
  if (reveal && role === "admin") {
    reveal.addEventListener("click", async () => {
      showError("");
      try {
        const reason = document.getElementById("reveal-reason").value;
        const data = await api("POST", `/console/api/conversations/${conv.id}/reveal`, { reason });
        revealed(data);
      } catch (err) {
        showError(err);
      }
    });
  }
  try {
    await loadConversation();
  } catch (err) {
    showError(err);
  }
}

if (pageName === "list") listPage();
else if (pageName === "customer") customerPage();
else if (pageName === "conversation") conversationPage();
