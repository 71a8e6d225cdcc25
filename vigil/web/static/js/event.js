// Event detail: snapshot with the track's path, the clip (HLS), details, payload, comments, ack and resolve.
import { api, query } from "./api.js";
import { changeStatus, playClip } from "./events.js";
import { boot } from "./nav.js";
import { $, badge, el, formatTime, humanKind, toast } from "./ui.js";

const eventId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
let cameraSize = null; // {width, height} of the camera frame the path is measured in
let cameraName = null;

function details(event) {
  const rows = [
    ["Time", formatTime(event.at)],
    ["Camera", cameraName || event.camera_id],
    ["Kind", humanKind(event.kind)],
    ["Severity", badge(event.severity, `sev-${event.severity}`)],
    ["Status", badge(event.status, `st-${event.status}`)],
    ["Object", `${event.label || "—"}${event.track_id !== null && event.track_id !== undefined ? ` #${event.track_id}` : ""}`],
    ["Zone / line", event.zone || "—"],
    ["Acknowledged by", event.acknowledged_by || "—"],
    ["Resolved by", event.resolved_by || "—"],
  ];
  if (event.track) rows.push(["Track seen", `${formatTime(event.track.first_seen)} → ${formatTime(event.track.last_seen)}`]);
  $("#details").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("#event-title").textContent = `${humanKind(event.kind)} · ${cameraName || event.camera_id}`;
  document.title = `${humanKind(event.kind)} · Vigil`;
  $("#ack").disabled = event.status !== "open";
  $("#resolve").disabled = event.status === "resolved";
  $("#main").dataset.status = event.status;
}

/** Draw the track's path (frame pixels) over the snapshot, scaled to the image as shown. */
function drawPath(path) {
  const image = $("#snapshot");
  const canvas = $("#path");
  if (!path || path.length === 0 || !image.naturalWidth) return;
  const width = cameraSize?.width || image.naturalWidth;
  const height = cameraSize?.height || image.naturalHeight;
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const sx = image.naturalWidth / width;
  const sy = image.naturalHeight / height;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.lineWidth = Math.max(2, canvas.width / 250);
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#4aa3ff";
  ctx.shadowColor = "rgba(0,0,0,.8)";
  ctx.shadowBlur = 4;
  ctx.beginPath();
  path.forEach(([x, y], i) => (i ? ctx.lineTo(x * sx, y * sy) : ctx.moveTo(x * sx, y * sy)));
  ctx.stroke();
  const dot = (x, y, colour) => {
    ctx.fillStyle = colour;
    ctx.beginPath();
    ctx.arc(x * sx, y * sy, ctx.lineWidth * 2.2, 0, Math.PI * 2);
    ctx.fill();
  };
  dot(...path[0], "#2fbf71");
  dot(...path[path.length - 1], "#ef5350");
  canvas.dataset.points = String(path.length);
}

function comments(list) {
  $("#comments").replaceChildren(...(list || []).map((c) => el("li", {},
    el("div", { class: "who" }, `${c.author || c.user || "?"} · ${formatTime(c.at || c.created_at)}`),
    el("div", {}, c.text))));
  if (!list || list.length === 0) $("#comments").append(el("li", { class: "muted" }, "No comments yet."));
}

function clip(event) {
  const video = $("#clip");
  const note = $("#clip-note");
  if (!event.clip || !event.clip.playlist_url) {
    video.classList.add("hidden");
    note.textContent = "No clip recorded for this event.";
    return;
  }
  note.textContent = `${formatTime(event.clip.start)} → ${formatTime(event.clip.end)}`;
  playClip(video, event.clip.playlist_url, (message) => { note.textContent = message; });
}

async function show(event) {
  details(event);
  $("#payload").textContent = JSON.stringify(event.payload || {}, null, 2);
  comments(event.comments);
  const image = $("#snapshot");
  if (event.snapshot_url) {
    image.onload = () => drawPath(event.track?.path);
    image.src = event.snapshot_url;
  } else {
    $("#snapshot-box").replaceChildren(el("p", { class: "notice" }, "No snapshot for this event."));
  }
}

async function main() {
  await boot("/alerts");
  let event;
  try {
    event = await api(`/api/events/${encodeURIComponent(eventId)}`);
  } catch (error) {
    $("#event-error").textContent = error.message;
    for (const id of ["#ack", "#resolve"]) $(id).disabled = true;
    return;
  }
  try {
    const found = await api(`/api/cameras${query({ q: event.camera_id, limit: 20 })}`); // exact match first
    const camera = found.find((c) => c.id === event.camera_id);
    if (camera?.width && camera?.height) cameraSize = { width: camera.width, height: camera.height };
    cameraName = camera?.name || null;
  } catch { /* the snapshot's own size is used */ }
  await show(event);
  clip(event);
  for (const [id, action] of [["#ack", "ack"], ["#resolve", "resolve"]]) {
    $(id).addEventListener("click", async () => {
      try {
        const updated = await changeStatus(eventId, action);
        details({ ...event, ...updated });
        toast(action === "ack" ? "Acknowledged" : "Resolved", "ok");
      } catch (error) {
        toast(error.message, "bad");
      }
    });
  }
  $("#comment-form").addEventListener("submit", async (submit) => {
    submit.preventDefault();
    const text = $("#comment-text").value.trim();
    if (!text) return;
    try {
      await api(`/api/events/${encodeURIComponent(eventId)}/comments`, { method: "POST", body: { text } });
      $("#comment-text").value = "";
      comments((await api(`/api/events/${encodeURIComponent(eventId)}`)).comments);
    } catch (error) {
      toast(error.message, "bad");
    }
  });
}

main();
