/* The CX lead's KPI dashboard: /console/api/kpis drawn with Chart.js (/console/vendor/chart.umd.js).
   Every piece of data goes into the page as text (textContent) or into a canvas; never as HTML. */
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const charts = {};
  const FIELDS = ["from", "to", "channel", "language", "persona", "stage", "by"];
  const RATES = new Set(["containment_rate", "handover_rate", "fallback_rate", "abandonment_rate",
    "csat_response_rate", "resolution_rate", "confirmed_resolution_rate", "assumed_resolution_rate",
    "net_resolution_rate", "conversation_resolution_rate", "silent_failure_rate"]);
  const TIMES = new Set(["wait_p50", "wait_p90", "handling_p50", "handling_p90"]);
  const COLORS = { now: "#1f5fa8", before: "#a8b4c4", contained: "#2e8b57", handover: "#d97706",
    abandoned: "#b00020", fallback: "#7c3aed", resolved: "#0f766e", net: "#65a30d",
    silent: "#be185d" };
  const BY_LABEL = { channel: "channel", language: "language", persona: "persona",
    stage: "journey stage", skill: "skill" };
  let current = null;  // the AbortController of the request in flight

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  // ---- formatting -------------------------------------------------------------------------

  function duration(seconds) {
    const s = Math.abs(Math.round(seconds));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60), rest = s % 60;
    if (m < 60) return m + " min " + String(rest).padStart(2, "0") + " s";
    return Math.floor(m / 60) + " h " + String(m % 60).padStart(2, "0") + " min";
  }

  function value(key, v) {
    if (v === null || v === undefined) return "—";
    if (RATES.has(key)) return (v * 100).toFixed(1) + " %";
    if (key === "csat_average") return v.toFixed(2) + " / 5";
    if (TIMES.has(key)) return duration(v);
    return Number(v).toLocaleString("en-GB");
  }

  function change(key, c) {
    if (c === null || c === undefined) return "no comparison";
    const sign = c > 0 ? "+" : c < 0 ? "−" : "±";
    const arrow = c > 0 ? "▲ " : c < 0 ? "▼ " : "";
    let text;
    if (RATES.has(key)) text = (Math.abs(c) * 100).toFixed(1) + " pp";
    else if (key === "csat_average") text = Math.abs(c).toFixed(2);
    else if (TIMES.has(key)) text = duration(c);
    else text = Math.abs(c).toLocaleString("en-GB");
    return arrow + sign + text;
  }

  function day(iso) {
    const [y, m, d] = iso.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString("en-GB",
      { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  }

  function pct(v) {
    return v === null || v === undefined ? null : Math.round(v * 1000) / 10;
  }

  // ---- state in the address -----------------------------------------------------------------

  function readAddress() {
    const params = new URLSearchParams(window.location.search);
    for (const name of FIELDS) {
      const input = $("f-" + name);
      if (params.has(name) && input) {
        if (input.tagName === "SELECT" && ![...input.options].some((o) => o.value === params.get(name))) {
          input.appendChild(el("option", null, params.get(name))).value = params.get(name);
        }
        input.value = params.get(name);
      }
    }
  }

  function query() {
    const params = new URLSearchParams();
    for (const name of FIELDS) {
      const v = ($("f-" + name).value || "").trim();
      if (v) params.set(name, v);
    }
    return params;
  }

  // ---- charts -------------------------------------------------------------------------------

  function draw(id, type, labels, datasets, options) {
    if (!window.Chart) return;
    const existing = charts[id];
    if (existing) {
      existing.data.labels = labels;
      existing.data.datasets = datasets;
      existing.update();
      return;
    }
    charts[id] = new window.Chart($(id), {
      type, data: { labels, datasets },
      options: Object.assign({ responsive: true, maintainAspectRatio: false, animation: false },
        options || {}),
    });
  }

  function bar(label, data, color) {
    return { label, data, backgroundColor: color, borderColor: color, borderWidth: 1 };
  }

  function percentAxis(axis) {
    return { [axis]: { min: 0, max: 100, ticks: { callback: (v) => v + " %" } } };
  }

  function drawCharts(data) {
    const now = data.current, before = data.previous;
    // volume by day, the previous period's days laid over this period's
    draw("chart-volume-day", "line", now.volume_by_day.map((d) => d.day.slice(5)), [
      { label: "this period", data: now.volume_by_day.map((d) => d.conversations),
        borderColor: COLORS.now, backgroundColor: COLORS.now, tension: 0.2 },
      { label: "previous period", data: before.volume_by_day.map((d) => d.conversations),
        borderColor: COLORS.before, backgroundColor: COLORS.before, borderDash: [5, 4],
        tension: 0.2 },
    ], { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });

    const channels = [...new Set(now.volume_by_channel.map((c) => c.channel)
      .concat(before.volume_by_channel.map((c) => c.channel)))];
    const perChannel = (r) => channels.map((ch) =>
      (r.volume_by_channel.find((c) => c.channel === ch) || { conversations: 0 }).conversations);
    draw("chart-volume-channel", "bar", channels, [
      bar("this period", perChannel(now), COLORS.now),
      bar("previous period", perChannel(before), COLORS.before),
    ], { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });

    draw("chart-outcomes", "doughnut", ["contained", "handover", "abandoned"], [{
      label: "conversations",
      data: [now.outcomes.contained, now.outcomes.handover, now.outcomes.abandoned],
      backgroundColor: [COLORS.contained, COLORS.handover, COLORS.abandoned],
    }]);

    const reasons = [...new Set(now.handover_reasons.map((r) => r.reason)
      .concat(before.handover_reasons.map((r) => r.reason)))];
    const perReason = (r) => reasons.map((name) =>
      (r.handover_reasons.find((x) => x.reason === name) || { conversations: 0 }).conversations);
    draw("chart-reasons", "bar", reasons, [
      bar("this period", perReason(now), COLORS.handover),
      bar("previous period", perReason(before), COLORS.before),
    ], { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } });

    draw("chart-csat", "bar", ["1", "2", "3", "4", "5"], [
      bar("this period", now.csat_distribution.map((r) => r.conversations), COLORS.now),
      bar("previous period", before.csat_distribution.map((r) => r.conversations), COLORS.before),
    ], { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } });

    const times = (r) => [r.kpis.wait_p50, r.kpis.wait_p90, r.kpis.handling_p50, r.kpis.handling_p90];
    draw("chart-times", "bar", ["wait p50", "wait p90", "handling p50", "handling p90"], [
      bar("this period", times(now), COLORS.now),
      bar("previous period", times(before), COLORS.before),
    ], { scales: { y: { beginAtZero: true, title: { display: true, text: "seconds" } } } });

    draw("chart-top-intents", "bar", now.top_intents.map((i) => i.intent), [
      bar("conversations", now.top_intents.map((i) => i.conversations), COLORS.now),
    ], { indexAxis: "y", scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } });

    draw("chart-failing-intents", "bar",
      now.failing_intents.map((i) => i.intent + " (" + i.failed + "/" + i.conversations + ")"), [
        bar("with a fallback or a handover", now.failing_intents.map((i) => pct(i.failure_rate)),
          COLORS.abandoned),
      ], { indexAxis: "y", scales: percentAxis("x") });
  }

  function drawBreakdown(data) {
    const by = data.current.by;
    const groups = by ? data.current.groups : [];
    const labels = by ? groups.map((g) => g.label) : ["all conversations"];
    const rows = by ? groups.map((g) => g.kpis) : [data.current.kpis];
    $("breakdown-title").textContent = by ? "Break-down by " + BY_LABEL[by] : "Break-down (none chosen)";
    draw("chart-breakdown", "bar", labels, [
      bar("containment", rows.map((k) => pct(k.containment_rate)), COLORS.contained),
      bar("handover", rows.map((k) => pct(k.handover_rate)), COLORS.handover),
      bar("fallback (messages)", rows.map((k) => pct(k.fallback_rate)), COLORS.fallback),
      bar("abandonment", rows.map((k) => pct(k.abandonment_rate)), COLORS.abandoned),
      bar("resolution (tasks)", rows.map((k) => pct(k.resolution_rate)), COLORS.resolved),
      bar("resolution net of recontact", rows.map((k) => pct(k.net_resolution_rate)), COLORS.net),
      bar("silent failures", rows.map((k) => pct(k.silent_failure_rate)), COLORS.silent),
    ], { scales: percentAxis("y") });

    // the table: every KPI per group, with its change against the previous period
    const table = $("breakdown-table");
    const head = table.tHead, body = table.tBodies[0];
    clear(head);
    clear(body);
    const keys = data.kpis.map((k) => k.key);
    const tr = el("tr");
    tr.appendChild(el("th", null, by ? BY_LABEL[by] : ""));
    for (const k of data.kpis) tr.appendChild(el("th", null, k.label));
    head.appendChild(tr);
    const compared = by ? data.groups : [{ label: "all conversations", kpis: data.kpis }];
    for (const g of compared) {
      const row = el("tr");
      row.appendChild(el("td", null, g.label));
      for (const key of keys) {
        const k = g.kpis.find((x) => x.key === key);
        const cell = el("td", k.worse ? "worse" : k.better ? "better" : null, value(key, k.value));
        cell.appendChild(el("span", "delta", change(key, k.change)));
        if (k.worse) cell.title = "worse than the previous period (" + value(key, k.previous) + ")";
        row.appendChild(cell);
      }
      body.appendChild(row);
    }
  }

  // ---- cards --------------------------------------------------------------------------------

  function drawCards(data) {
    const cards = $("cards");
    clear(cards);
    // where the experience got worse comes first
    const ordered = data.kpis.filter((k) => k.worse).concat(data.kpis.filter((k) => !k.worse));
    for (const k of ordered) {
      const card = el("article", "card" + (k.worse ? " worse" : k.better ? " better" : ""));
      card.dataset.key = k.key;
      card.dataset.worse = k.worse ? "true" : "false";
      card.title = data.definitions[k.key] || "";
      if (k.worse) card.appendChild(el("span", "flag", "worse"));
      card.appendChild(el("div", "label", k.label));
      card.appendChild(el("div", "value", value(k.key, k.value)));
      card.appendChild(el("div", "previous", "previous period: " + value(k.key, k.previous)));
      card.appendChild(el("div", "change", change(k.key, k.change)));
      cards.appendChild(card);
    }
    const silent = data.current.silent_failures;
    $("silent-failures").textContent = "Silent failures in the period: " + silent.silent_turn +
      " customer messages without a reply, " + silent.error_reply + " error replies, " +
      silent.wrong_skill + " answered by the wrong skill. Recontact window: " +
      data.current.recontact_days + " days.";
    const worse = data.kpis.filter((k) => k.worse);
    const summary = $("worse-summary");
    summary.className = "worse-summary " + (worse.length ? "has-worse" : "no-worse");
    summary.textContent = worse.length
      ? "Worse than the previous period: " + worse.map((k) => k.label).join(", ") + "."
      : "No KPI got worse than in the previous period.";
  }

  // complaints answered on time (bot.analytics.complaints), this period against the previous
  function drawComplaints(data) {
    const box = $("complaint-cards");
    clear(box);
    const now = data.complaints.current, before = data.complaints.previous;
    const rate = (r) => (r.on_time_rate === null ? "—" : (r.on_time_rate * 100).toFixed(1) + " %");
    const figures = [
      ["On time / answered", now.on_time + " / " + now.answered, before.on_time + " / " + before.answered],
      ["On-time rate", rate(now), rate(before)],
      ["Answered late", String(now.late), String(before.late)],
      ["Indemnities owed", "€ " + now.indemnities_eur, "€ " + before.indemnities_eur],
    ];
    for (const [label, value, previous] of figures) {
      const card = el("div", "card");
      card.title = data.definitions.complaints_on_time || "";
      card.appendChild(el("div", "label", label));
      card.appendChild(el("div", "value", value));
      card.appendChild(el("div", "previous", "previous period: " + previous));
      box.appendChild(card);
    }
  }

  function drawDefinitions(data) {
    const dl = $("definitions");
    clear(dl);
    for (const k of data.kpis) {
      dl.appendChild(el("dt", null, k.label));
      dl.appendChild(el("dd", null, data.definitions[k.key] || ""));
    }
    dl.appendChild(el("dt", null, "Complaints answered on time"));
    dl.appendChild(el("dd", null, data.definitions.complaints_on_time || ""));
    dl.appendChild(el("dt", null, "Intents that fail most"));
    dl.appendChild(el("dd", null, "Share of an intent's conversations with at least one " +
      "fallback or a handover; only intents with at least " + data.min_intent_conversations +
      " conversations in the period are ranked, and not request_human (a handover is what " +
      "it asks for)."));
    $("min-intent").textContent = "at least " + data.min_intent_conversations + " conversations";
  }

  function fillChannels(options) {
    const select = $("f-channel");
    const chosen = select.value;
    const have = new Set([...select.options].map((o) => o.value));
    for (const ch of options.channels) {
      if (!have.has(ch)) {
        const option = el("option", null, ch);
        option.value = ch;
        select.appendChild(option);
      }
    }
    select.value = chosen;
  }

  function render(data) {
    const now = data.current, before = data.previous;
    $("dash-period").textContent = day(now.from) + " – " + day(now.to) + " (" + now.days +
      " days) against " + day(before.from) + " – " + day(before.to) + ": " +
      now.kpis.conversations + " conversations, " + before.kpis.conversations + " before.";
    fillChannels(data.options);
    drawCards(data);
    drawBreakdown(data);
    drawCharts(data);
    drawComplaints(data);
    drawDefinitions(data);
  }

  // ---- loading ------------------------------------------------------------------------------

  async function load() {
    const params = query();
    const box = $("dashboard");
    const error = $("dash-error");
    if (current) current.abort();
    current = new AbortController();
    box.classList.add("loading");
    box.dataset.state = "loading";
    try {
      const resp = await fetch("/console/api/kpis?" + params.toString(),
        { credentials: "same-origin", signal: current.signal });
      const body = await resp.json().catch(() => ({}));
      if (!resp.ok) {
        error.textContent = body.error || ("The KPIs could not be loaded (" + resp.status + ").");
        box.dataset.state = "error";
        return;
      }
      error.textContent = window.Chart ? "" :
        "Chart.js did not load (/console/vendor/chart.umd.js): the charts are missing.";
      window.history.replaceState(null, "", "?" + params.toString());
      render(body);
      box.dataset.state = "ready";
      box.dataset.by = body.current.by || "";
    } catch (exc) {
      if (exc.name === "AbortError") return;
      error.textContent = "The KPIs could not be loaded: " + exc.message;
      box.dataset.state = "error";
    } finally {
      box.classList.remove("loading");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    readAddress();
    $("dash-filters").addEventListener("submit", (event) => {
      event.preventDefault();
      load();
    });
    for (const name of ["channel", "language", "persona", "stage", "by"]) {
      $("f-" + name).addEventListener("change", load);
    }
    load();
  });
})();
