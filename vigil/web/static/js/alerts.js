// Alert queue: newest first, live from the SSE stream with a row flash and an optional beep; ack and resolve.
import { api, eventStream, query } from "./api.js";
import { Beeper, changeStatus } from "./events.js";
import { boot } from "./nav.js";
import { $, badge, el, formatTime, humanKind, SEVERITIES, toast } from "./ui.js";

const PAGE_SIZE = 50;
const ALERTS = "alerts"; // the severity filter value meaning warning + critical
const KINDS = ["zone_enter", "zone_exit", "line_cross", "wrong_way", "loitering", "crowd_threshold", "crowd_surge",
  "crowd_dispersal", "running", "stopped_object", "forbidden_class", "face_match", "plate_match", "camera_offline",
  "camera_online"];
const SOUND_KEY = "vigil.alerts.sound";

const state = { cameras: new Map(), cursor: null, beeper: new Beeper() };

function filters() {
  return {
    camera: $("#f-camera").value, kind: $("#f-kind").value.trim(), severity: $("#f-severity").value,
    status: $("#f-status").value,
  };
}

function matches(event, f) {
  return (!f.camera || event.camera_id === f.camera) && (!f.kind || event.kind === f.kind)
    && (!f.severity || (f.severity === ALERTS ? event.severity !== "info" : event.severity === f.severity)) && (!f.status || event.status === f.status);
}

function cameraName(id) {
  return state.cameras.get(id)?.name || id;
}

function actionButtons(event) {
  const ack = el("button", {
    class: "small ok", type: "button", "data-action": "ack", disabled: event.status !== "open",
    "aria-label": `Acknowledge ${humanKind(event.kind)} on ${cameraName(event.camera_id)}`,
  }, "Ack");
  const resolve = el("button", {
    class: "small danger", type: "button", "data-action": "resolve", disabled: event.status === "resolved",
    "aria-label": `Resolve ${humanKind(event.kind)} on ${cameraName(event.camera_id)}`,
  }, "Resolve");
  for (const button of [ack, resolve]) {
    button.addEventListener("click", () => act(event.id, button.dataset.action, button));
  }
  return [ack, " ", resolve, " ", el("a", { href: `/events/${encodeURIComponent(event.id)}`, class: "small" }, "Details")];
}

function row(event) {
  const thumb = event.snapshot_url
    ? el("img", { src: event.snapshot_url, alt: `Snapshot of ${humanKind(event.kind)}`, loading: "lazy" })
    : el("span", { class: "muted" }, "—");
  const who = event.status === "resolved" ? event.resolved_by : event.acknowledged_by;
  return el("tr", {
    "data-event-id": event.id, "data-status": event.status, "data-camera": event.camera_id,
    "data-kind": event.kind, "data-severity": event.severity,
  },
    el("td", { class: "thumb" }, el("a", { href: `/events/${encodeURIComponent(event.id)}`, tabindex: "-1" }, thumb)),
    el("td", { class: "mono" }, formatTime(event.at)),
    el("td", {}, cameraName(event.camera_id)),
    el("td", {}, el("a", { href: `/events/${encodeURIComponent(event.id)}` }, humanKind(event.kind))),
    el("td", {}, badge(event.severity, `sev-${event.severity}`)),
    el("td", {}, [event.label || "", event.track_id !== null && event.track_id !== undefined ? ` #${event.track_id}` : ""]),
    el("td", {}, event.zone || "—"),
    el("td", { class: "status" }, badge(event.status, `st-${event.status}`), who ? el("div", { class: "muted" }, who) : ""),
    el("td", { class: "actions" }, actionButtons(event)));
}

function updateCount() {
  const rows = $("#alert-rows").children.length;
  $("#alert-count").textContent = String(rows);
  $("#alerts-empty").classList.toggle("hidden", rows > 0);
}

/** Insert or replace an event's row; a new live row flashes and stamps when it was shown (data-shown-at, ms). */
function upsert(event, { live = false } = {}) {
  const body = $("#alert-rows");
  const existing = body.querySelector(`tr[data-event-id="${CSS.escape(event.id)}"]`);
  const fresh = row(event);
  if (existing) {
    fresh.dataset.shownAt = existing.dataset.shownAt;
    existing.replaceWith(fresh);
  } else if (live) {
    body.prepend(fresh);
  } else {
    body.append(fresh);
  }
  if (!existing) fresh.dataset.shownAt = String(Date.now());
  if (live) {
    fresh.classList.add("flash");
    fresh.addEventListener("animationend", () => fresh.classList.remove("flash"), { once: true });
  }
  updateCount();
  return fresh;
}

async function act(eventId, action, button) {
  button.disabled = true;
  try {
    const event = await changeStatus(eventId, action);
    upsert(event);
    toast(`${action === "ack" ? "Acknowledged" : "Resolved"}: ${humanKind(event.kind)}`, "ok");
  } catch (error) {
    button.disabled = false;
    toast(error.message, "bad");
  }
}

async function load({ more = false } = {}) {
  const f = filters();
  const params = { ...f, limit: PAGE_SIZE, cursor: more ? state.cursor : null };
  if (f.severity === ALERTS) params.severity = ["warning", "critical"];
  history.replaceState(null, "", `/alerts${query({ camera: f.camera, kind: f.kind,
    severity: f.severity === ALERTS ? null : f.severity || "any",
    status: f.status === "open" ? null : f.status || "all" })}`);
  try {
    const page = await api(`/api/events${query({ ...params, status: f.status })}`);
    if (!more) $("#alert-rows").replaceChildren();
    page.items.forEach((event) => upsert(event));
    state.cursor = page.next_cursor;
    $("#more").classList.toggle("hidden", !state.cursor);
    $("#alerts-error").textContent = "";
  } catch (error) {
    $("#alerts-error").textContent = error.message;
  }
  updateCount();
}

function onLiveEvent(event) {
  if (!matches(event, filters())) return;
  const known = $("#alert-rows").querySelector(`tr[data-event-id="${CSS.escape(event.id)}"]`);
  upsert(event, { live: !known });
  if (!known && $("#sound").checked) state.beeper.beep(event.severity);
}

function setupFilters() {
  const params = new URLSearchParams(location.search);
  for (const camera of state.cameras.values()) {
    $("#f-camera").append(el("option", { value: camera.id }, camera.name));
  }
  SEVERITIES.forEach((s) => $("#f-severity").append(el("option", { value: s }, s)));
  KINDS.forEach((k) => $("#kinds").append(el("option", { value: k })));
  $("#f-camera").value = params.get("camera") || "";
  $("#f-kind").value = params.get("kind") || "";
  // alerts (warning, critical) by default; info events (zone entries, line crossings) are records
  const severity = params.get("severity");
  $("#f-severity").value = severity === null ? ALERTS : severity === "any" ? "" : severity;
  const status = params.get("status");
  $("#f-status").value = status === "all" ? "" : status || "open";
  for (const id of ["#f-camera", "#f-kind", "#f-severity", "#f-status"]) {
    $(id).addEventListener("change", () => load());
  }
  $("#more").addEventListener("click", () => load({ more: true }));
  $("#sound").checked = localStorage.getItem(SOUND_KEY) === "on";
  $("#sound").addEventListener("change", () => {
    localStorage.setItem(SOUND_KEY, $("#sound").checked ? "on" : "off");
    if ($("#sound").checked) {
      state.beeper.enable();
      state.beeper.beep();
    }
  });
  // A stored "on" still needs a gesture before the browser lets audio play.
  document.addEventListener("pointerdown", () => { if ($("#sound").checked) state.beeper.enable(); }, { once: true });
}

async function main() {
  await boot("/alerts");
  try {
    (await api("/api/cameras")).forEach((camera) => state.cameras.set(camera.id, camera));
  } catch (error) {
    $("#alerts-error").textContent = error.message;
  }
  setupFilters();
  const stream = $("#stream-state");
  eventStream(onLiveEvent, (s) => {
    stream.textContent = s === "open" ? "live" : s;
    stream.className = `badge ${s === "open" ? "st-resolved" : "warn"}`;
  });
  await load();
}

main();
