// Listen: the topics of /console/api/topics, and the CX lead's label for each. Loaded after
// common.js (el, api) and console.js (root, showError, when); data goes into the page as text.
"use strict";

const listenState = { period: null, intents: [], missing: "missing skill" };

function trendBadge(t) {
  const text = t.trend === "new" ? "new (none before)"
    : t.trend === "same" ? "= same as before (" + t.previous_size + ")"
    : (t.change > 0 ? "▲ +" : "▼ ") + t.change + " (" + t.previous_size + " before)";
  return el("span", { class: "trend " + t.trend, title: "previous period: " + t.previous_size }, text);
}

function labelLine(t) {
  if (!t.label) return el("span", { class: "topic-label muted" }, "not labelled");
  const missing = t.label === listenState.missing;
  return el("span", { class: "topic-label" + (missing ? " missing" : "") },
    missing ? "marked: " : "labelled: ", el("strong", {}, t.label),
    " (" + t.labelled + " of " + t.size + " messages)");
}

function exampleItem(e) {
  return el("li", { "data-message": String(e.message_id) },
    el("a", { href: "/console/conversations/" + e.conversation_id, class: "example-link" }, e.text || "—"),
    el("span", { class: "when" }, when(e.at)));
}

// What a label does to the topic's messages, asked before it is done.
function labelQuestion(topic, label) {
  const n = topic.size + (topic.size === 1 ? " message" : " messages");
  if (label === null) return "Remove the label from the " + n + " of this topic?";
  if (label === listenState.missing) {
    return "Mark the " + n + " of this topic as a missing skill? Their intent annotations are removed.";
  }
  return "Annotate the " + n + " of this topic with the intent " + label +
    "? They go into the NLU training export.";
}

async function setLabel(topic, label) {
  showError("");
  if (topic.size > 1 && !window.confirm(labelQuestion(topic, label))) return;
  try {
    await api("POST", "/console/api/topics/" + encodeURIComponent(topic.id) + "/label",
              { ...listenState.period, label });
  } catch (err) {
    showError(err);
    return;
  }
  await loadTopics();
}

function labelActions(t) {
  const select = el("select", { class: "label-intent", "aria-label": "The intent these messages should have had" });
  select.append(el("option", { value: "" }, "intent…"));
  for (const intent of listenState.intents) select.append(el("option", { value: intent }, intent));
  const save = el("button", { type: "button", class: "label-save" }, "Label with intent");
  save.onclick = () => {
    if (!select.value) { showError("choose the intent these messages should have had"); return; }
    setLabel(t, select.value);
  };
  const missing = el("button", { type: "button", class: "label-missing" }, "Missing skill");
  missing.onclick = () => setLabel(t, listenState.missing);
  const box = el("div", { class: "label-actions" }, select, save, missing);
  if (t.label) {
    const clear = el("button", { type: "button", class: "link label-clear" }, "clear label");
    clear.onclick = () => setLabel(t, null);
    box.append(clear);
  }
  return box;
}

function topicItem(t) {
  return el("li", { class: "topic", "data-id": t.id, "data-size": String(t.size) },
    el("div", { class: "topic-head" },
      el("span", { class: "size", title: "messages in the period" }, t.size),
      trendBadge(t),
      el("span", { class: "topic-name" }, t.name)),
    labelLine(t),
    el("ul", { class: "examples" }, ...t.examples.map(exampleItem)),
    labelActions(t));
}

function renderTopics(data) {
  listenState.intents = data.intents;
  listenState.missing = data.missing_skill;
  document.getElementById("listen-summary").textContent =
    data.messages + " messages from " + data.from + " to " + data.to + " (" + data.language.toUpperCase() +
    "); " + data.previous_messages + " in the previous period (" + data.previous.from + " to " + data.previous.to + ").";
  document.getElementById("topic-count").textContent = String(data.topics.length);
  document.getElementById("topics").replaceChildren(...data.topics.map(topicItem));
  document.getElementById("no-topics").hidden = data.topics.length > 0;
  const other = document.getElementById("other");
  other.hidden = data.other.size === 0;
  document.getElementById("other-size").textContent = String(data.other.size);
  document.getElementById("min-size").textContent = String(data.min_topic_size);
  document.getElementById("other-examples").replaceChildren(...data.other.examples.map(exampleItem));
}

async function loadTopics() {
  root.dataset.loaded = "false";
  const params = new URLSearchParams(listenState.period);
  history.replaceState(null, "", "?" + params.toString());
  try {
    renderTopics(await api("GET", "/console/api/topics?" + params.toString()));
  } catch (err) {
    showError(err);
  }
  root.dataset.loaded = "true";
}

function readForm() {
  listenState.period = { from: document.getElementById("l-from").value,
                         to: document.getElementById("l-to").value,
                         language: document.getElementById("l-language").value };
}

function listenPage() {
  const given = new URLSearchParams(window.location.search);
  for (const [name, id] of [["from", "l-from"], ["to", "l-to"], ["language", "l-language"]]) {
    if (given.get(name)) document.getElementById(id).value = given.get(name);
  }
  document.getElementById("listen-filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    showError("");
    readForm();
    loadTopics();
  });
  readForm();
  loadTopics();
}

if (pageName === "listen") listenPage();
