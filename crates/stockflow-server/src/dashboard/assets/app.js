// The stockflow dashboard: one page of SKUs at a time (GET /v1/skus), kept live by one
// server-sent event stream (/v1/dashboard/stream) that sends at most a few updates a second:
// the KPI tiles, the latency chart, the channel sync panel, and the visible rows that changed.
// No library: the chart is an SVG drawn here.
"use strict";

const PAGE_SIZE = 25;
const ALERTS_EVERY_MS = 5000;
const COLORS = ["#0f766e", "#7c3aed", "#ea580c", "#2563eb", "#db2777", "#65a30d", "#0891b2"];

const params = new URLSearchParams(location.search);
const tenant = params.get("tenant");

const state = {
  prefix: "",
  after: null,        // cursor of the current page
  history: [],        // cursors of the previous pages
  nextAfter: null,
  total: 0,
  rows: new Map(),    // sku -> row model, in page order
  expanded: new Set(),
  channels: [],       // column order
  stream: null,
  summary: null,
  auditSku: null,
};

// What the browser test reads.
const probe = (window.stockflowDashboard = { updates: 0, rowUpdates: 0, lastSeq: 0, connected: false, openedAt: null });

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function headers() {
  return tenant ? { "stockflow-tenant": tenant } : {};
}

async function getJson(path) {
  const response = await fetch(path, { headers: headers() });
  if (!response.ok) {
    const error = new Error(`${path}: ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return response.json();
}

// ---------- formatting ----------

function ms(value) {
  if (value === null || value === undefined) return "-";
  if (value >= 1000) return `${Number((value / 1000).toFixed(value >= 10000 ? 0 : 1))} s`;
  if (value === 0) return "0 ms";
  return `${value >= 10 ? Math.round(value) : value.toFixed(1)} ms`;
}

function percent(value, digits = 1) {
  if (value === null || value === undefined) return "-";
  return `${(value * 100).toFixed(digits)}%`;
}

function count(value) {
  return value === null || value === undefined ? "-" : Number(value).toLocaleString("en-US");
}

function time(rfc3339) {
  const date = new Date(rfc3339);
  return isNaN(date) ? rfc3339 : date.toLocaleString("en-GB", { hour12: false });
}

// ---------- rows ----------

// One row model from either shape: a row of GET /v1/skus or a full SKU view from the stream.
function rowModel(raw) {
  const channels = new Map();
  for (const channel of raw.channels || []) {
    channels.set(channel.channel, {
      ats: channel.available_to_sell,
      withheld: channel.withheld,
      buffers: channel.buffers,          // absent in page rows until the stream sends the view
      allocation: channel.allocation,
    });
  }
  return { sku: raw.sku, totals: raw.totals, channels };
}

function channelColumns() {
  const names = new Set(state.channels);
  for (const row of state.rows.values()) for (const name of row.channels.keys()) names.add(name);
  return [...names].sort();
}

function renderHead() {
  const head = $("skus-head");
  head.replaceChildren(
    el("th", {}, "SKU"),
    el("th", { class: "num" }, "On hand"),
    el("th", { class: "num" }, "Available"),
    el("th", { class: "num" }, "Reserved"),
    el("th", { class: "num" }, "Committed"),
    ...channelColumns().map((name) => el("th", { class: "num", title: "shows / withheld" }, name)),
  );
}

function bufferText(channel) {
  if (!channel.buffers) return channel.withheld > 0 ? `${channel.withheld} withheld` : "nothing withheld";
  if (channel.buffers.length === 0) return channel.allocation || "nothing withheld";
  const lines = channel.buffers.map((b) => `${b.policy} (${b.strategy}): ${b.quantity} - ${b.reason}`);
  if (channel.allocation) lines.push(channel.allocation);
  return lines.join("\n");
}

function rowCells(row) {
  const columns = channelColumns();
  const expanded = state.expanded.has(row.sku);
  return [
    el("td", {},
      el("button", { class: "expand", type: "button", title: "buffers and reasons", "aria-expanded": String(expanded),
        onclick: () => toggleExpand(row.sku) }, expanded ? "\u25BE" : "\u25B8"),
      el("a", { class: "sku", "data-sku": row.sku, onclick: () => openAudit(row.sku) }, row.sku)),
    el("td", { class: "num on_hand" }, count(row.totals.on_hand)),
    el("td", { class: "num available" }, count(row.totals.available)),
    el("td", { class: "num reserved" }, count(row.totals.reserved)),
    el("td", { class: "num committed" }, count(row.totals.committed)),
    ...columns.map((name) => {
      const channel = row.channels.get(name);
      if (!channel) return el("td", { class: "num ch" }, el("span", { class: "none" }, "-"));
      return el("td", { class: "num ch", "data-channel": name, title: bufferText(channel) },
        el("span", { class: "ats" }, count(channel.ats)),
        channel.withheld > 0 ? el("span", { class: "withheld" }, ` / ${count(channel.withheld)}`) : el("span", { class: "none" }, " / 0"));
    }),
  ];
}

function detailRow(row) {
  const columns = 5 + channelColumns().length;
  const items = [...row.channels.entries()].map(([name, channel]) => {
    const buffers = channel.buffers || [];
    return el("div", {},
      el("strong", {}, name), `: shows ${channel.ats}, withholds ${channel.withheld}`,
      channel.allocation ? el("span", { class: "muted" }, ` (${channel.allocation})`) : null,
      buffers.length ? el("ul", { class: "buffers" }, buffers.map((b) =>
        el("li", {}, el("strong", {}, b.policy), ` ${b.strategy}, ${b.quantity} unit${b.quantity === 1 ? "" : "s"}: ${b.reason}`))) : null);
  });
  return el("tr", { class: "detail", "data-detail": row.sku }, el("td", { colspan: columns },
    items.length ? items : el("span", { class: "muted" }, "No channel sells this SKU.")));
}

function renderRows() {
  renderHead();
  const body = $("skus").querySelector("tbody");
  const children = [];
  for (const row of state.rows.values()) {
    children.push(el("tr", { class: "sku-row", "data-sku": row.sku }, rowCells(row)));
    if (state.expanded.has(row.sku)) children.push(detailRow(row));
  }
  if (children.length === 0) {
    children.push(el("tr", {}, el("td", { colspan: 5, class: "muted" }, state.prefix ? `No SKU starts with "${state.prefix}".` : "No stock recorded yet.")));
  }
  body.replaceChildren(...children);
  const first = state.history.length * PAGE_SIZE + 1;
  const last = first + state.rows.size - 1;
  $("page-info").textContent = state.rows.size ? `${count(first)}-${count(last)} of ${count(state.total)}${state.prefix ? " (filtered)" : ""}` : "";
  $("prev").disabled = state.history.length === 0;
  $("next").disabled = !state.nextAfter;
}

function replaceRow(row, flash) {
  const body = $("skus").querySelector("tbody");
  const old = body.querySelector(`tr.sku-row[data-sku="${CSS.escape(row.sku)}"]`);
  if (!old) return renderRows();
  const fresh = el("tr", { class: "sku-row" + (flash ? " flash" : ""), "data-sku": row.sku }, rowCells(row));
  old.replaceWith(fresh);
  const detail = body.querySelector(`tr.detail[data-detail="${CSS.escape(row.sku)}"]`);
  if (detail) detail.replaceWith(detailRow(row));
}

function toggleExpand(sku) {
  if (state.expanded.has(sku)) state.expanded.delete(sku);
  else state.expanded.add(sku);
  renderRows();
}

function sameNumbers(a, b) {
  if (!a || !b) return false;
  const keys = ["on_hand", "available", "reserved", "committed"];
  if (keys.some((k) => a.totals[k] !== b.totals[k])) return false;
  for (const [name, channel] of b.channels) {
    const other = a.channels.get(name);
    if (!other || other.ats !== channel.ats || other.withheld !== channel.withheld) return false;
  }
  return true;
}

// ---------- paging and the stream ----------

async function loadPage() {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.prefix) query.set("prefix", state.prefix);
  if (state.after) query.set("after", state.after);
  try {
    const page = await getJson(`/v1/skus?${query}`);
    state.rows = new Map(page.skus.map((raw) => [raw.sku, rowModel(raw)]));
    state.nextAfter = page.next_after || null;
    state.total = page.total;
  } catch (error) {
    state.rows = new Map();
    state.nextAfter = null;
  }
  renderRows();
  openStream();
}

function openStream() {
  if (state.stream) state.stream.close();
  const query = new URLSearchParams({ skus: [...state.rows.keys()].join(" ") });
  if (tenant) query.set("tenant", tenant);
  const stream = new EventSource(`/v1/dashboard/stream?${query}`);
  state.stream = stream;
  setStatus("connecting");
  stream.addEventListener("open", () => {
    probe.connected = true;
    probe.openedAt = probe.openedAt || Date.now();
    setStatus("live");
  });
  stream.addEventListener("error", () => {
    probe.connected = false;
    setStatus(stream.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  });
  stream.addEventListener("update", (event) => applyUpdate(JSON.parse(event.data)));
}

function setStatus(what) {
  $("status").dataset.state = what;
  $("status-text").textContent = what;
}

function applyUpdate(update) {
  probe.updates += 1;
  probe.lastSeq = update.seq;
  if (update.summary) renderSummary(update.summary);
  let columnsBefore = channelColumns().join(",");
  for (const raw of update.rows || []) {
    if (!state.rows.has(raw.sku)) continue;
    const fresh = rowModel(raw);
    const changed = !sameNumbers(state.rows.get(raw.sku), fresh);
    state.rows.set(raw.sku, fresh);
    probe.rowUpdates += 1;
    if (channelColumns().join(",") !== columnsBefore) {
      columnsBefore = channelColumns().join(",");
      renderRows();
    } else {
      replaceRow(fresh, changed && update.seq > 1);
    }
  }
  for (const sku of update.gone || []) state.rows.delete(sku);
  if ((update.gone || []).length) renderRows();
  if (state.auditSku && (update.rows || []).some((r) => r.sku === state.auditSku)) loadAudit(state.auditSku);
}

// ---------- summary: tiles, chart, channels ----------

function renderSummary(summary) {
  state.summary = summary;
  const names = (summary.channels || []).map((c) => c.channel);
  if (names.join(",") !== state.channels.join(",")) {
    state.channels = names;
    renderRows();
  }
  renderTiles(summary.kpis);
  renderChart(summary.latency || [], summary.kpis);
  renderChannels(summary.channels || []);
  const writer = summary.writer || {};
  $("writer").textContent = `journal position ${count(writer.journal_position)} \u00B7 writer queue ${count(writer.queue_depth)}${writer.healthy === false ? " \u00B7 FAILING" : ""}`;
}

function tile(label, value, sub, tone) {
  return el("div", { class: `tile ${tone || ""}`, "data-tile": label }, el("div", { class: "label" }, label), el("div", { class: "value" }, value), el("div", { class: "sub" }, sub));
}

function worst(list, key, pick) {
  const values = list.map((c) => c[key]).filter((v) => v !== null && v !== undefined);
  return values.length ? pick(...values) : null;
}

function renderTiles(kpis) {
  if (!kpis || !kpis.windows) return;
  const [hour, day, , month] = kpis.windows;
  const target = kpis.latency_target_ms;
  const perChannel = (list, key, format) => list.length ? list.map((c) => `${c.channel} ${format(c[key])}`).join(" \u00B7 ") : "no acknowledgement yet";
  const share = worst(hour.propagation, "under_target_share", Math.min);
  const tiles = [
    tile("Median propagation", ms(worst(hour.propagation, "p50_ms", Math.max)), perChannel(hour.propagation, "p50_ms", ms)),
    tile("p99 propagation", ms(worst(hour.propagation, "p99_ms", Math.max)), perChannel(hour.propagation, "p99_ms", ms)),
    tile(`Under ${ms(target)}`, percent(share), `worst channel, last hour`, share === null ? "" : share >= 0.99 ? "good" : share >= 0.95 ? "warn" : "bad"),
    tile("Oversells", count(day.oversell_incidents), `24 h \u00B7 ${count(month.oversell_incidents)} in 30 d`, day.oversell_incidents > 0 ? "bad" : "good"),
    tile("Reconciliation mismatch", percent(day.reconciliation.mismatch_rate, 2), `${count(day.reconciliation.mismatched)} of ${count(day.reconciliation.checked)} keys, 24 h`,
      (day.reconciliation.mismatch_rate || 0) > 0.01 ? "warn" : ""),
    tile("Buffer releases", `${day.buffer_releases_per_hour.toFixed(1)}/h`, `${count(day.buffer_releases)} in 24 h \u00B7 ${count(hour.buffer_releases)} last hour`),
    tile("Manual intervention", percent(day.manual_intervention_share), `${count(day.manual_interventions)} of ${count(day.orders)} orders, 24 h`,
      (day.manual_intervention_share || 0) > 0.02 ? "warn" : ""),
  ];
  for (const channel of kpis.cancellation || []) {
    if (channel.limit === null || channel.limit === undefined) continue;
    const tone = { ok: "good", approaching: "warn", over: "bad" }[channel.status] || "";
    tiles.push(tile(`Cancellations ${channel.channel}`, percent(channel.rate, 2),
      `limit ${percent(channel.limit)} over ${channel.window} \u00B7 ${count(channel.orders)} orders`, tone));
  }
  $("tiles").replaceChildren(...tiles);
}

function renderChannels(channels) {
  const body = $("channels").querySelector("tbody");
  if (!channels.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 10, class: "muted" }, "No channel sync is configured.")));
    return;
  }
  body.replaceChildren(...channels.map((c) => el("tr", { "data-channel": c.channel },
    el("td", {}, el("strong", {}, c.channel)),
    el("td", {}, c.kind),
    el("td", { class: "num queue" }, count(c.queue_depth)),
    el("td", { class: "num lag" }, ms(c.lag_ms)),
    el("td", { class: "num" }, count(c.acknowledged)),
    el("td", { class: "num" }, c.acknowledged ? ms(c.p50_ms) : "-"),
    el("td", { class: "num" }, c.acknowledged ? ms(c.p99_ms) : "-"),
    el("td", { class: "num" }, count(c.rate_limited)),
    el("td", { class: "num" }, count(c.errors)),
    el("td", { class: "muted", title: c.last_error || "" }, c.last_error ? c.last_error.slice(0, 60) : ""))));
}

function renderChart(points, kpis) {
  const width = 900, height = 230, left = 56, right = 12, top = 10, bottom = 26;
  const svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(svgNs, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  const names = [...new Set(points.flatMap((p) => p.channels.map((c) => c.channel)))].sort();
  const target = kpis ? kpis.latency_target_ms : 1000;
  const values = points.flatMap((p) => p.channels.flatMap((c) => [c.p50_ms, c.p99_ms])).filter((v) => v > 0);
  // Log scale from 1 ms to the decade above the largest value (at least 10 s).
  const top10 = Math.max(4, Math.ceil(Math.log10(Math.max(target, ...values, 1))));
  const y = (value) => top + (height - top - bottom) * (1 - Math.log10(Math.max(value, 1)) / top10);
  const x = (index) => left + (width - left - right) * (index / Math.max(points.length - 1, 1));
  for (let decade = 0; decade <= top10; decade++) {
    const value = 10 ** decade;
    add("line", { class: "axis", x1: left, x2: width - right, y1: y(value), y2: y(value) });
    add("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, ms(value));
  }
  add("line", { class: "target", x1: left, x2: width - right, y1: y(target), y2: y(target) });
  add("text", { x: width - right, y: y(target) - 4, "text-anchor": "end" }, `target ${ms(target)}`);
  [[0, "-60 min"], [Math.floor((points.length - 1) / 2), "-30 min"], [points.length - 1, "now"]].forEach(([index, label]) =>
    add("text", { x: x(index), y: height - 6, "text-anchor": index === 0 ? "start" : index === points.length - 1 ? "end" : "middle" }, label));
  names.forEach((name, n) => {
    const color = COLORS[n % COLORS.length];
    for (const [key, dash] of [["p50_ms", ""], ["p99_ms", "5 4"]]) {
      let path = "";
      points.forEach((point, index) => {
        const channel = point.channels.find((c) => c.channel === name);
        if (!channel || channel[key] === null) return;
        path += `${path ? "L" : "M"}${x(index).toFixed(1)},${y(channel[key]).toFixed(1)}`;
      });
      if (path) add("path", { d: path, fill: "none", stroke: color, "stroke-width": 2, "stroke-dasharray": dash, "vector-effect": "non-scaling-stroke" });
      points.forEach((point, index) => {
        const channel = point.channels.find((c) => c.channel === name);
        if (channel && channel[key] !== null && key === "p50_ms") add("circle", { cx: x(index), cy: y(channel[key]), r: 2.5, fill: color });
      });
    }
  });
  if (!names.length) add("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "No acknowledgement in the last hour");
  const legend = el("div", { class: "legend" }, names.map((name, n) => el("span", { style: `--c: ${COLORS[n % COLORS.length]}` }, name)));
  $("chart").replaceChildren(svg, legend);
}

// ---------- alerts ----------

async function loadAlerts() {
  const box = $("alerts");
  try {
    const body = await getJson("/v1/alerts");
    const list = Array.isArray(body) ? body : body.alerts || body.open || [];
    const open = list.filter((a) => !/resolved|closed/i.test(a.state || a.status || ""));
    $("alerts-count").textContent = open.length ? `${open.length} open` : "";
    if (!open.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No open alert."));
      return;
    }
    box.replaceChildren(...open.map((a) => {
      const severity = String(a.severity || "warning").toLowerCase();
      const title = a.title || a.summary || a.rule || a.kind || a.name || "alert";
      const detail = a.message || a.detail || a.description || "";
      const since = a.opened_at || a.since || a.started_at || a.at;
      return el("div", { class: `alert ${severity}` }, el("div", { class: "title" }, title),
        detail ? el("div", {}, detail) : null,
        el("div", { class: "meta" }, [a.key || a.subject, since ? `since ${time(since)}` : null].filter(Boolean).join(" \u00B7 ")));
    }));
  } catch (error) {
    $("alerts-count").textContent = "";
    box.replaceChildren(el("p", { class: "muted" }, error.status === 404
      ? "Alerts are not available on this server yet."
      : "Alerts could not be read; retrying."));
  }
}

// ---------- audit ----------

function causeText(cause) {
  if (!cause) return "";
  if (cause.kind === "event") return `${cause.event_type} ${cause.event_id}`;
  if (cause.kind === "command") return `${cause.name} ${cause.id}`;
  if (cause.kind === "time") return cause.what;
  return JSON.stringify(cause);
}

function changeText(change) {
  if (!change) return "";
  switch (change.kind) {
    case "quantities": {
      const parts = [];
      for (const key of ["on_hand", "available", "reserved", "committed", "damaged", "quality_control", "safety_stock", "incoming"]) {
        if (change.before[key] !== change.after[key]) parts.push(`${key} ${change.before[key]} \u2192 ${change.after[key]}`);
      }
      return parts.join(", ") || "no quantity changed";
    }
    case "buffer": return `${change.policy}: ${change.before} \u2192 ${change.after} withheld (${change.explanation})`;
    case "available_to_sell": return `shows ${change.before} \u2192 ${change.after}`;
    case "setting": return "setting changed";
    default: return JSON.stringify(change);
  }
}

async function openAudit(sku) {
  state.auditSku = sku;
  $("audit").hidden = false;
  $("audit-title").textContent = `Audit trail of ${sku}`;
  await loadAudit(sku);
  $("audit").scrollIntoView({ behavior: "smooth", block: "start" });
}

async function loadAudit(sku) {
  const body = $("audit-table").querySelector("tbody");
  try {
    const page = await getJson(`/v1/audit?${new URLSearchParams({ sku, window: "latest", limit: "100" })}`);
    if (state.auditSku !== sku) return;
    const entries = page.entries.slice().reverse();
    body.replaceChildren(...(entries.length ? entries.map((e) => el("tr", { "data-audit-id": e.id },
      el("td", {}, time(e.at)),
      el("td", {}, e.location || ""),
      el("td", {}, e.channel || ""),
      el("td", {}, causeText(e.cause)),
      el("td", {}, e.actor),
      el("td", {}, e.reason || ""),
      el("td", { class: "change" }, changeText(e.change)))) : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "No audit entry."))]));
  } catch (error) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7, class: "muted" }, `The audit trail could not be read (${error.message}).`)));
  }
}

// ---------- wiring ----------

let searchTimer = null;
$("search").addEventListener("input", (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    state.prefix = event.target.value.trim();
    state.after = null;
    state.history = [];
    loadPage();
  }, 250);
});
$("next").addEventListener("click", () => {
  if (!state.nextAfter) return;
  state.history.push(state.after);
  state.after = state.nextAfter;
  loadPage();
});
$("prev").addEventListener("click", () => {
  if (!state.history.length) return;
  state.after = state.history.pop();
  loadPage();
});
$("audit-close").addEventListener("click", () => {
  state.auditSku = null;
  $("audit").hidden = true;
});

loadPage();
loadAlerts();
setInterval(loadAlerts, ALERTS_EVERY_MS);
