// Sportello desk: the agent's queue and live conversation. Everything shown is set with
// textContent, so whatever a customer writes is displayed as text, never run as HTML.
"use strict";

const role = document.querySelector(".layout").dataset.role;
const baseTitle = document.title;
let current = null;        // the open handover id
let seen = new Set();      // queue ids already notified
let firstLoad = true;
let queueItems = [];

function waited(iso) {
  const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

function beep() {
  try {
    const ctx = new (window.AudioContext || window.webkitAudioContext)();
    const osc = ctx.createOscillator();
    osc.frequency.value = 880;
    osc.connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.2);
  } catch (e) { /* no sound allowed before a click: the title and the flash still show */ }
}

function renderQueue(data) {
  const list = document.getElementById("queue");
  list.replaceChildren();
  queueItems = data.queue;
  let fresh = 0;
  for (const h of data.queue) {
    const isNew = !seen.has(h.id);
    if (isNew) { seen.add(h.id); if (!firstLoad) fresh++; }
    const li = el("li", { class: (h.priority ? "priority " : "") + (isNew && !firstLoad ? "new" : ""), "data-id": h.id },
      el("strong", {}, h.customer || "Unidentified customer"), " ",
      el("span", { class: "muted" }, (h.vip ? "VIP · " : "") + (h.persona || "")), el("br"),
      `${h.language.toUpperCase()} · ${h.channel} · ${h.skill} · ${h.reason}`, el("br"),
      el("span", { class: "wait", "data-since": h.created_at }, "waiting " + waited(h.created_at)), " ");
    if (role === "agent") {
      const b = el("button", { type: "button", class: "claim" }, "Claim");
      b.addEventListener("click", () => claim(h.id));
      li.append(b);
    }
    list.append(li);
  }
  document.getElementById("queue-count").textContent = data.queue.length;
  if (fresh) {
    beep();
    document.title = `(${data.queue.length}) New customer waiting · ${baseTitle}`;
  } else if (!data.queue.length) {
    document.title = baseTitle;
  }
  firstLoad = false;

  const mine = document.getElementById("mine");
  mine.replaceChildren();
  for (const h of data.mine) {
    const li = el("li", { "data-id": h.id }, el("strong", {}, h.customer || "Unidentified customer"),
      ` · ${h.language.toUpperCase()} · ${h.channel} · ${h.reason}`);
    li.style.cursor = "pointer";
    li.addEventListener("click", () => openConversation(h.id));
    mine.append(li);
  }
}

async function loadQueue() {
  try { renderQueue(await api("GET", "/api/queue")); }
  catch (e) { console.error(e); }
}

async function claim(id) {
  try {
    await api("POST", `/api/handovers/${id}/claim`);
    document.title = baseTitle;
    await loadQueue();
    await openConversation(id);
  } catch (e) { alert(e.message); loadQueue(); }
}

function addLine(line) {
  const who = line.who === "agent" ? (line.agent || "agent") : line.who;
  const meta = [who, new Date(line.at).toLocaleTimeString()];
  if (line.who === "customer" && line.intent) meta.push(`${line.intent} ${(line.confidence ?? 0).toFixed(2)}`);
  const li = el("li", { class: line.who }, el("span", { class: "meta" }, meta.join(" · ")), line.text);
  const t = document.getElementById("transcript");
  t.append(li);
  t.scrollTop = t.scrollHeight;
}

function renderCard(card) {
  const box = document.getElementById("card");
  box.replaceChildren();
  if (!card) { box.append(el("p", { class: "muted" }, "The customer has not been identified.")); return; }
  box.append(el("p", {}, el("strong", {}, card.name), ` (${card.customer_code}) · ${card.persona}` +
    (card.vip ? " · VIP" : "") + ` · prefers ${card.preferred_channel}` + (card.paperless ? " · paperless" : "")));
  box.append(el("p", {}, `E-mail ${card.email || "—"} · phone ${card.phone || "—"}`));
  const table = (title, rows, cols) => {
    box.append(el("h4", {}, title));
    if (!rows.length) { box.append(el("p", { class: "muted" }, "none")); return; }
    const t = el("table", { class: "card" });
    t.append(el("tr", {}, ...cols.map(c => el("th", {}, c))));
    for (const r of rows) t.append(el("tr", {}, ...cols.map(c => el("td", {}, r[c] ?? ""))));
    box.append(t);
  };
  table("Supplies", card.supplies, ["supply_id", "type", "address", "city", "tariff", "status"]);
  table("Unpaid bills", card.unpaid_bills, ["number", "supply_type", "amount_eur", "due_date", "overdue"]);
  table("Open tickets", card.open_tickets, ["ticket_id", "kind", "status", "subject", "eta"]);
  table("Last interactions", card.last_interactions, ["at", "channel", "topic", "outcome"]);
  if (card.active_outages.length) table("Active outages", card.active_outages, ["outage_id", "type", "expected_end"]);
}

async function openConversation(id) {
  let data;
  try { data = await api("GET", `/api/handovers/${id}`); }
  catch (e) { alert(e.message); return; }
  current = id;
  const h = data.handover;
  document.getElementById("empty").hidden = true;
  document.getElementById("conversation").hidden = false;
  document.getElementById("conv-title").textContent = h.customer || "Unidentified customer";
  document.getElementById("conv-summary").textContent = data.pack.summary || h.summary;
  document.getElementById("conv-reason").textContent = data.pack.reason_text || h.reason;
  document.getElementById("conv-skill").textContent = h.skill;
  document.getElementById("conv-channel").textContent = h.channel;
  document.getElementById("conv-language").textContent = h.language;
  document.getElementById("conv-error").textContent = "";
  renderCard(data.pack.card);
  document.getElementById("transcript").replaceChildren();
  for (const line of data.pack.transcript || []) addLine(line);
  for (const line of data.live || []) addLine(line);
  document.getElementById("reply").focus();
}

function closeConversation(message) {
  current = null;
  document.getElementById("conversation").hidden = true;
  document.getElementById("empty").hidden = false;
  document.getElementById("empty").textContent = message || "Choose a conversation.";
}

async function endConversation(kind) {
  if (current === null) return;
  try {
    await api("POST", `/api/handovers/${current}/${kind}`);
    closeConversation(kind === "handback" ? "Handed back to the bot." : "Closed as resolved.");
    loadQueue();
  } catch (e) { document.getElementById("conv-error").textContent = e.message; }
}

function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  const status = document.getElementById("connection");
  ws.onopen = () => { status.textContent = "live"; loadQueue(); };
  ws.onclose = () => { status.textContent = "reconnecting…"; setTimeout(connect, 2000); };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "queue") loadQueue();
    else if (msg.type === "message" && msg.handover_id === current) addLine(msg);
    else if (msg.type === "message") loadQueue();
    else if (msg.type === "taken_away") {
      if (msg.handover_id === current) closeConversation("The conversation went back to the queue: " + msg.why + ".");
      loadQueue();
    }
  };
}

document.addEventListener("DOMContentLoaded", async () => {
  const presence = document.getElementById("presence");
  if (presence) {
    const me = await api("GET", "/api/me");
    presence.value = me.presence;
    presence.addEventListener("change", () => api("POST", "/api/presence", { presence: presence.value }).catch(e => alert(e.message)));
  }
  document.getElementById("reply-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = document.getElementById("reply");
    const text = box.value.trim();
    if (!text || current === null) return;
    try {
      await api("POST", `/api/handovers/${current}/messages`, { text });
      box.value = "";
      document.getElementById("conv-error").textContent = "";
    } catch (e) { document.getElementById("conv-error").textContent = e.message; }
  });
  document.getElementById("handback").addEventListener("click", () => endConversation("handback"));
  document.getElementById("close").addEventListener("click", () => endConversation("close"));
  setInterval(() => {
    for (const w of document.querySelectorAll(".wait")) w.textContent = "waiting " + waited(w.dataset.since);
  }, 1000);
  connect();
});
