// The audit page: plain DOM and inline SVG, no library, nothing fetched but this app's API.
// Every value from the log is set as text (textContent), never as HTML: keys are untrusted.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
// Green and red mean created and removed everywhere on the page; other event types take
// the remaining colours in turn.
const PALETTE = ["#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#6d6f73", "#ad1457", "#9e9d24"];
function colourOf(name, others) {
  const k = kind(name);
  if (k === "created") return "#2e7d32";
  if (k === "removed") return "#c62828";
  return PALETTE[others.indexOf(name) % PALETTE.length];
}
let objectsCursor = null;

function $(id) { return document.getElementById(id); }

async function api(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== null && value !== undefined && value !== "") query.append(name, value);
  }
  const response = await fetch("api/" + path + (query.toString() ? "?" + query : ""));
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function row(cells, className) {
  const tr = el("tr", null, className);
  for (const cell of cells) {
    const td = el("td");
    if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell === null ? "–" : String(cell);
    tr.appendChild(td);
  }
  return tr;
}

function kind(eventName) {
  if (eventName.startsWith("ObjectCreated")) return "created";
  if (eventName.startsWith("ObjectRemoved") || eventName.startsWith("LifecycleExpiration")) return "removed";
  return "other";
}

function fail(where, error) { where.textContent = "error: " + error.message; }

// -- search -------------------------------------------------------------------------------------

async function searchObjects(append) {
  const status = $("search-status");
  const body = $("objects").tBodies[0];
  if (!append) { body.replaceChildren(); objectsCursor = null; }
  status.textContent = "searching…";
  try {
    const page = await api("objects", {
      bucket: $("bucket").value.trim(), prefix: $("prefix").value,
      "include-deleted": $("include-deleted").checked ? "true" : "false",
      cursor: append ? objectsCursor : null, limit: 100,
    });
    for (const o of page.objects) {
      const link = el("a", o.key, "object");
      link.href = "#";
      link.addEventListener("click", (e) => { e.preventDefault(); showObject(o.bucket, o.key); });
      body.appendChild(row([o.bucket, link, o.size, o.last_event_name, o.last_event_time,
        o.deleted ? "deleted" : "exists"], o.deleted ? "deleted" : ""));
    }
    objectsCursor = page.next_cursor;
    $("more-objects").hidden = !objectsCursor;
    const shown = body.rows.length;
    status.textContent = shown ? `${shown} object${shown === 1 ? "" : "s"}` : "no objects match";
    if (page.lag) status.textContent += ` (catalog ${page.lag} events behind the log)`;
  } catch (error) { fail(status, error); }
  if (!append) loadActivity();
}

// -- one object's timeline ----------------------------------------------------------------------

// The object shown: its events so far (a page at a time, "More" reads the next) and the
// cursor of the next page.
let shown = null;

async function showObject(bucket, key) {
  $("object-section").hidden = false;
  $("object-name").textContent = `s3://${bucket}/${key}`;
  $("timeline-events").tBodies[0].replaceChildren();
  shown = { bucket, key, events: [], cursor: null };
  await moreEvents();
  $("object-section").scrollIntoView({ behavior: "smooth" });
}

async function moreEvents() {
  const object = shown;
  const body = $("timeline-events").tBodies[0];
  $("more-events").disabled = true;  // one page at a time: a second click would read it twice
  try {
    const history = await api("history", { bucket: object.bucket, key: object.key,
      cursor: object.cursor });
    if (object !== shown) return;  // another object was opened meanwhile
    object.events.push(...history.events);
    object.cursor = history.next_cursor;
    drawTimeline(object.events);
    for (const e of history.events) {
      body.appendChild(row([e.position, e.event_time, e.event_name, e.version_id, e.size,
        e.principal_id, e.source], kind(e.event_name) === "removed" ? "deleted" : ""));
    }
  } catch (error) { fail($("timeline"), error); }
  $("more-events").disabled = false;
  $("more-events").hidden = !object.cursor;
}

function drawTimeline(events) {
  // One lane per version (in order of first appearance), time left to right; a delete sits on
  // the lane of the version it removed, or its own lane for a delete marker.
  const width = 900, laneHeight = 26, left = 150, right = 20, top = 10;
  const lanes = [];
  for (const e of events) {
    const lane = e.version_id || "(no version)";
    if (!lanes.includes(lane)) lanes.push(lane);
  }
  const times = events.map((e) => Date.parse(e.event_time));
  const start = Math.min(...times), end = Math.max(...times);
  const span = Math.max(end - start, 1);
  const height = top + lanes.length * laneHeight + 24;
  const x = (t) => left + ((t - start) / span) * (width - left - right);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `timeline of ${events.length} events` });
  lanes.forEach((lane, i) => {
    const y = top + i * laneHeight + laneHeight / 2;
    chart.appendChild(svg("line", { x1: left, x2: width - right, y1: y, y2: y, stroke: "#d9dce0" }));
    chart.appendChild(svg("text", { x: 4, y: y + 4 }, lane.length > 22 ? lane.slice(0, 21) + "…" : lane));
  });
  events.forEach((e, i) => {
    const y = top + lanes.indexOf(e.version_id || "(no version)") * laneHeight + laneHeight / 2;
    const colour = { created: "#2e7d32", removed: "#c62828", other: "#6d6f73" }[kind(e.event_name)];
    const dot = svg("circle", { cx: x(times[i]), cy: y, r: 6, fill: colour, class: "event " + kind(e.event_name) });
    dot.appendChild(svg("title", {}, `${e.event_time} ${e.event_name} #${e.position}`));
    chart.appendChild(dot);
  });
  const axisY = top + lanes.length * laneHeight + 16;
  chart.appendChild(svg("text", { x: left, y: axisY }, new Date(start).toISOString()));
  chart.appendChild(svg("text", { x: width - right, y: axisY, "text-anchor": "end" }, new Date(end).toISOString()));
  $("timeline").replaceChildren(chart);
}

// -- a prefix's activity --------------------------------------------------------------------------

async function loadActivity() {
  const bucket = $("bucket").value.trim(), prefix = $("prefix").value;
  $("activity-scope").textContent = bucket || prefix ? `in ${bucket || "every bucket"}${prefix ? "/" + prefix : ""}` : "(all buckets)";
  try {
    drawActivity(await api("activity", { bucket, prefix }));
  } catch (error) { fail($("activity"), error); }
}

function drawActivity(activity) {
  const hours = [...new Set(activity.hours.map((h) => h.hour))].sort();
  const names = [...new Set(activity.hours.map((h) => h.event_name))].sort();
  const others = names.filter((name) => kind(name) === "other");
  if (!hours.length) { $("activity").textContent = "no events"; $("activity-legend").replaceChildren(); return; }
  const totals = new Map(hours.map((h) => [h, 0]));
  for (const h of activity.hours) totals.set(h.hour, totals.get(h.hour) + h.events);
  const most = Math.max(...totals.values());
  const width = 900, height = 220, left = 40, bottom = 30, top = 10;
  const band = (width - left) / hours.length;
  const barWidth = Math.max(Math.min(band * 0.8, 60), 2);
  const scale = (height - bottom - top) / most;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `${activity.total} events over ${hours.length} hours` });
  chart.appendChild(svg("text", { x: 0, y: top + 8 }, String(most)));
  chart.appendChild(svg("line", { x1: left, x2: width, y1: height - bottom, y2: height - bottom, stroke: "#9aa0a6" }));
  hours.forEach((hour, i) => {
    let y = height - bottom;
    for (const h of activity.hours.filter((c) => c.hour === hour)) {
      const barHeight = h.events * scale;
      y -= barHeight;
      const bar = svg("rect", { x: left + i * band + (band - barWidth) / 2, y, width: barWidth,
        height: barHeight, fill: colourOf(h.event_name, others), class: "bar" });
      bar.appendChild(svg("title", {}, `${hour} ${h.event_name}: ${h.events}`));
      chart.appendChild(bar);
    }
    if (i === 0 || i === hours.length - 1 || hours.length <= 8) {
      chart.appendChild(svg("text", { x: left + i * band + band / 2, y: height - 10, "text-anchor": "middle" }, hour.slice(5, 13) + "h"));
    }
  });
  $("activity").replaceChildren(chart);
  const legend = $("activity-legend");
  legend.replaceChildren();
  names.forEach((name) => {
    const swatch = el("span", null, "swatch");
    swatch.style.background = colourOf(name, others);
    legend.append(swatch, name);
  });
}

// -- principals, integrity, projections -----------------------------------------------------------

async function loadPrincipals() {
  const body = $("principals").tBodies[0];
  try {
    const result = await api("principals", {});
    body.replaceChildren(...result.principals.map((p) =>
      row([p.principal_id, p.event_name, p.events, p.first_seen, p.last_seen])));
  } catch (error) { fail(body, error); }
}

async function verify(anchor) {
  const badge = $("verify-badge"), out = $("verify");
  out.textContent = "verifying…";
  try {
    const r = await api("verify", { anchor });
    badge.textContent = r.ok ? `log intact (${r.checked} events)` : `log BROKEN at ${r.first_bad_position}`;
    badge.className = "badge " + (r.ok ? "ok" : "bad");
    const lines = [r.ok ? `ok: hash chain intact over ${r.checked} events (head ${r.head_position})`
      : `BROKEN at position ${r.first_bad_position}: ${r.reason || ""}`];
    if (r.checked_anchor) lines.push(`checked against anchor ${r.checked_anchor}`);
    for (const [name, fault] of Object.entries(r.projection_faults)) lines.push(`BROKEN: projection ${name}: ${fault}`);
    if (r.anchor) lines.push(`anchor (keep it elsewhere): ${r.anchor}`);
    out.textContent = lines.join("\n");
  } catch (error) { fail(out, error); badge.textContent = "verify failed"; badge.className = "badge bad"; }
}

async function loadProjections() {
  const body = $("projections").tBodies[0], badge = $("lag-badge");
  try {
    const result = await api("projections", {});
    body.replaceChildren(...result.projections.map((p) =>
      row([p.name, p.state, p.position, p.head, p.lag, p.last_error], p.state === "failed" ? "deleted" : "")));
    const behind = result.projections.filter((p) => p.lag > 0);
    badge.textContent = behind.length ? `${behind.length} projection(s) behind, up to ${Math.max(...behind.map((p) => p.lag))} events` : `projections live (head ${result.head})`;
    badge.className = "badge " + (result.projections.some((p) => p.state === "failed") ? "bad" : behind.length ? "" : "ok");
  } catch (error) { fail(badge, error); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); searchObjects(false); });
  $("more-objects").addEventListener("click", () => searchObjects(true));
  $("more-events").addEventListener("click", () => moreEvents());
  $("verify-form").addEventListener("submit", (e) => { e.preventDefault(); verify($("anchor").value.trim()); });
  searchObjects(false);
  loadPrincipals();
  verify("");
  loadProjections();
});
