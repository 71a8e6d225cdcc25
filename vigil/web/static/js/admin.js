// Camera admin: draw zones (click points, double-click to close) and lines (two clicks) on the snapshot, save the scene.
import { api } from "./api.js";
import { boot } from "./nav.js";
import { $, el, toast } from "./ui.js";

const ZONE_COLOURS = ["#4aa3ff", "#2fbf71", "#f0b429", "#b48cff", "#39c5cf", "#ff8a3d"];
const scene = { width: 0, height: 0, zones: [], lines: [] };
let draft = []; // points being drawn, in frame pixels
let camera = "";

const canvas = () => $("#a-canvas");

function framePoint(click) {
  const rect = canvas().getBoundingClientRect();
  const x = ((click.clientX - rect.left) / rect.width) * scene.width;
  const y = ((click.clientY - rect.top) / rect.height) * scene.height;
  return [Math.round(Math.min(Math.max(x, 0), scene.width)), Math.round(Math.min(Math.max(y, 0), scene.height))];
}

function draw() {
  const c = canvas();
  c.width = scene.width;
  c.height = scene.height;
  const ctx = c.getContext("2d");
  const lw = Math.max(2, scene.width / 320);
  ctx.clearRect(0, 0, c.width, c.height);
  ctx.font = `${Math.round(lw * 5)}px system-ui, sans-serif`;
  ctx.lineWidth = lw;
  scene.zones.forEach((zone, i) => {
    const colour = ZONE_COLOURS[i % ZONE_COLOURS.length];
    ctx.beginPath();
    zone.polygon.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.closePath();
    ctx.fillStyle = `${colour}33`;
    ctx.strokeStyle = colour;
    ctx.fill();
    ctx.stroke();
    label(ctx, zone.name, zone.polygon[0], colour);
  });
  scene.lines.forEach((line) => {
    const [x1, y1] = line.start;
    const [x2, y2] = line.end;
    ctx.strokeStyle = "#ef5350";
    ctx.beginPath();
    ctx.moveTo(x1, y1);
    ctx.lineTo(x2, y2);
    ctx.stroke();
    // "in" crosses from the right-hand side of start→end to its left (y down): arrow along (dy, -dx).
    const length = Math.hypot(x2 - x1, y2 - y1) || 1;
    const nx = (y2 - y1) / length;
    const ny = -(x2 - x1) / length;
    const mx = (x1 + x2) / 2;
    const my = (y1 + y2) / 2;
    arrow(ctx, mx - nx * lw * 8, my - ny * lw * 8, mx + nx * lw * 8, my + ny * lw * 8, "#ffd98a", lw);
    ctx.fillStyle = "#ffd98a";
    ctx.fillText("in", mx + nx * lw * 11 - lw * 2, my + ny * lw * 11 + lw * 2);
    label(ctx, line.name, line.start, "#ef5350");
  });
  if (draft.length) {
    ctx.strokeStyle = "#ffffff";
    ctx.setLineDash([lw * 3, lw * 2]);
    ctx.beginPath();
    draft.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.fillStyle = "#ffffff";
    draft.forEach(([x, y]) => { ctx.beginPath(); ctx.arc(x, y, lw * 1.8, 0, Math.PI * 2); ctx.fill(); });
  }
  c.dataset.zones = String(scene.zones.length);
  c.dataset.lines = String(scene.lines.length);
  c.dataset.draft = String(draft.length);
}

function label(ctx, text, [x, y], colour) {
  const pad = 3;
  const width = ctx.measureText(text).width;
  const height = parseInt(ctx.font, 10);
  ctx.fillStyle = "rgba(0,0,0,.65)";
  ctx.fillRect(x, Math.max(0, y - height - pad * 2), width + pad * 2, height + pad * 2);
  ctx.fillStyle = colour;
  ctx.fillText(text, x + pad, Math.max(height, y - pad - 2));
}

function arrow(ctx, x1, y1, x2, y2, colour, lw) {
  ctx.strokeStyle = colour;
  ctx.fillStyle = colour;
  ctx.beginPath();
  ctx.moveTo(x1, y1);
  ctx.lineTo(x2, y2);
  ctx.stroke();
  const angle = Math.atan2(y2 - y1, x2 - x1);
  ctx.beginPath();
  ctx.moveTo(x2, y2);
  ctx.lineTo(x2 - lw * 4 * Math.cos(angle - 0.5), y2 - lw * 4 * Math.sin(angle - 0.5));
  ctx.lineTo(x2 - lw * 4 * Math.cos(angle + 0.5), y2 - lw * 4 * Math.sin(angle + 0.5));
  ctx.closePath();
  ctx.fill();
}

function classesInput(shape, onChange) {
  return el("input", {
    value: (shape.classes || []).join(", "), size: "12", placeholder: "all classes", "aria-label": `Classes of ${shape.name}`,
    onchange: (e) => { shape.classes = e.target.value.split(",").map((s) => s.trim()).filter(Boolean); onChange(); },
  });
}

function nameInput(shape, kind) {
  return el("input", {
    value: shape.name, size: "14", "aria-label": `Name of ${kind} ${shape.name}`,
    onchange: (e) => { shape.name = e.target.value.trim(); render(); },
  });
}

function removeButton(list, index, kind) {
  return el("button", {
    class: "small danger", type: "button", "aria-label": `Delete ${kind} ${list[index].name}`,
    onclick: () => { list.splice(index, 1); render(); },
  }, "Delete");
}

function render() {
  $("#zones").replaceChildren(...scene.zones.map((zone, i) => el("li", { "data-zone": zone.name },
    nameInput(zone, "zone"), removeButton(scene.zones, i, "zone"),
    el("div", { class: "row" }, el("span", { class: "muted" }, `${zone.polygon.length} points · classes`),
      classesInput(zone, render)))));
  if (!scene.zones.length) $("#zones").append(el("li", { class: "muted" }, "No zones."));
  $("#lines").replaceChildren(...scene.lines.map((line, i) => el("li", { "data-line": line.name },
    nameInput(line, "line"), removeButton(scene.lines, i, "line"),
    el("div", { class: "row" }, el("span", { class: "muted" }, "classes"), classesInput(line, render),
      el("label", { class: "check" }, "allowed",
        el("select", {
          "aria-label": `Allowed direction of ${line.name}`,
          onchange: (e) => { line.allowed_direction = e.target.value || null; },
        }, ...[["", "both"], ["in", "in only"], ["out", "out only"]].map(([value, text]) => el("option", {
          value, selected: (line.allowed_direction || "") === value,
        }, text))))))));
  if (!scene.lines.length) $("#lines").append(el("li", { class: "muted" }, "No lines."));
  draw();
}

function uniqueName(prefix, list) {
  let n = list.length + 1;
  while (list.some((s) => s.name === `${prefix}-${n}`)) n += 1;
  return `${prefix}-${n}`;
}

function finishZone() {
  if (draft.length < 3) {
    toast("A zone needs at least three points.", "bad");
    return;
  }
  scene.zones.push({ name: uniqueName("zone", scene.zones), polygon: draft, classes: ["person"] });
  draft = [];
  render();
}

function onClick(click) {
  if (!scene.width) return;
  const point = framePoint(click);
  if ($("#a-mode").value === "line") {
    draft.push(point);
    if (draft.length === 2) {
      scene.lines.push({ name: uniqueName("line", scene.lines), start: draft[0], end: draft[1], classes: ["person"],
        allowed_direction: null });
      draft = [];
      render();
      return;
    }
  } else {
    const first = draft[0];
    const near = first && Math.hypot(first[0] - point[0], first[1] - point[1]) < scene.width / 60;
    if (near && draft.length >= 3) {
      finishZone();
      return;
    }
    draft.push(point);
  }
  draw();
}

function hint() {
  $("#a-hint").textContent = $("#a-mode").value === "line"
    ? "Click the line's start, then its end. The yellow arrow shows the \"in\" direction."
    : "Click the zone's corners; double-click (or click the first point) to close it.";
}

async function load() {
  $("#admin-error").textContent = "";
  draft = [];
  try {
    const answer = await api(`/api/cameras/${encodeURIComponent(camera)}/scene`);
    Object.assign(scene, { width: answer.width, height: answer.height, zones: answer.zones || [], lines: answer.lines || [] });
  } catch (error) {
    $("#admin-error").textContent = error.message;
    return;
  }
  const image = $("#a-snapshot");
  const editor = $("#editor");
  const src = `/api/cameras/${encodeURIComponent(camera)}/background.jpg?t=${Date.now()}`;
  editor.classList.remove("blank");
  $("#a-note").textContent = "";
  editor.style.aspectRatio = "";
  image.onload = () => {
    if (!scene.width) Object.assign(scene, { width: image.naturalWidth, height: image.naturalHeight });
    render();
  };
  image.onerror = () => blankFrame(src);
  image.src = src;
  render();
}

/** No picture (no frame yet, or no video permission): draw on an empty frame of the camera's size, say why. */
async function blankFrame(src) {
  let reason = "no snapshot";
  try {
    await api(src);
  } catch (error) {
    reason = error.message;
  }
  if (!scene.width) Object.assign(scene, { width: 1280, height: 720 });
  const editor = $("#editor");
  editor.classList.add("blank");
  editor.style.aspectRatio = `${scene.width} / ${scene.height}`;
  $("#a-note").textContent = `Snapshot unavailable (${reason}): drawing on an empty ${scene.width}×${scene.height} `
    + "frame.";
  render();
}

async function save() {
  $("#admin-error").textContent = "";
  const body = { width: scene.width, height: scene.height, zones: scene.zones, lines: scene.lines };
  try {
    await api(`/api/cameras/${encodeURIComponent(camera)}/scene`, { method: "PUT", body });
    toast("Scene saved to the configuration.", "ok");
  } catch (error) {
    $("#admin-error").textContent = error.message;
  }
}

async function main() {
  await boot("/admin/cameras");
  let cameras = [];
  try {
    cameras = await api("/api/cameras");
  } catch (error) {
    $("#admin-error").textContent = error.message;
    return;
  }
  $("#a-camera").replaceChildren(...cameras.map((c) => el("option", { value: c.id }, c.name)));
  const wanted = new URLSearchParams(location.search).get("camera");
  camera = wanted && cameras.some((c) => c.id === wanted) ? wanted : cameras[0]?.id || "";
  $("#a-camera").value = camera;
  $("#a-camera").addEventListener("change", (e) => { camera = e.target.value; load(); });
  $("#a-mode").addEventListener("change", () => { draft = []; hint(); draw(); });
  $("#a-undo").addEventListener("click", () => { draft.pop(); draw(); });
  $("#a-reload").addEventListener("click", load);
  $("#a-save").addEventListener("click", save);
  canvas().addEventListener("click", onClick);
  canvas().addEventListener("dblclick", (e) => {
    e.preventDefault();
    if ($("#a-mode").value === "zone") {
      draft = dedupe(draft);
      finishZone();
    }
  });
  hint();
  if (camera) await load();
  else $("#admin-error").textContent = "No camera to configure.";
}

/** A double-click also fires two clicks: drop the repeated last point. */
function dedupe(points) {
  return points.filter((p, i) => i === 0 || Math.hypot(p[0] - points[i - 1][0], p[1] - points[i - 1][1]) > 2);
}

main();
