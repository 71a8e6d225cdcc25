// Evidence holds: list, place (investigators and supervisors) and release (supervisors, or the hold's creator).
import { api } from "./api.js";
import { boot, can } from "./nav.js";
import { $, el, formatTime, fromLocalInput, showError, toast, toLocalInput } from "./ui.js";

const state = { user: null, cameras: new Map() };

function mayRelease(hold) {
  return can(state.user, "authorisation.approve") || (hold.created_by === state.user.username && can(state.user, "export"));
}

function row(hold) {
  const release = mayRelease(hold)
    ? el("button", { class: "small danger", type: "button", "data-action": "release", onclick: () => release(hold) }, "Release")
    : "";
  const camera = hold.camera_id === null ? "every camera" : state.cameras.get(hold.camera_id)?.name || hold.camera_id;
  return el("tr", { "data-id": hold.id, "data-case": hold.case_id },
    el("td", { class: "mono" }, String(hold.id)),
    el("td", {}, el("strong", {}, hold.case_id)),
    el("td", {}, camera),
    el("td", { class: "window" }, `${formatTime(hold.start)} →`, el("br"), formatTime(hold.end)),
    el("td", {}, hold.reason),
    el("td", {}, hold.created_by, el("div", { class: "muted" }, formatTime(hold.created_at))),
    el("td", { class: "actions" }, release));
}

async function load() {
  try {
    const holds = await api("/api/holds");
    $("#hold-rows").replaceChildren(...holds.map(row));
    $("#hold-count").textContent = String(holds.length);
    $("#holds-empty").classList.toggle("hidden", holds.length > 0);
  } catch (error) {
    showError($("#holds-error"), error.message);
  }
}

async function release(hold) {
  showError($("#holds-error"), "");
  try {
    await api(`/api/holds/${hold.id}`, { method: "DELETE" });
    toast(`Hold ${hold.id} (case ${hold.case_id}) released`, "ok");
    await load();
  } catch (error) {
    showError($("#holds-error"), `Hold ${hold.id} not released: ${error.message}`);
  }
}

async function place(event) {
  event.preventDefault();
  showError($("#holds-error"), "");
  const camera = $("#h-camera").value;
  const body = {
    case_id: $("#h-case").value.trim(), reason: $("#h-reason").value.trim(), camera_id: camera === "*" ? null : camera,
    start: fromLocalInput($("#h-from").value), end: fromLocalInput($("#h-to").value),
  };
  if (!body.case_id || !body.reason || !body.start || !body.end) {
    showError($("#holds-error"), "A hold needs a case, a reason and a time range.");
    return;
  }
  try {
    const hold = await api("/api/holds", { method: "POST", body });
    toast(`Hold ${hold.id} placed for case ${hold.case_id}`, "ok");
    $("#hold-form").reset();
    defaults();
    await load();
  } catch (error) {
    showError($("#holds-error"), `Hold not placed: ${error.message}`);
  }
}

function defaults() {
  const now = new Date();
  $("#h-to").value = toLocalInput(now);
  $("#h-from").value = toLocalInput(new Date(now.getTime() - 3600 * 1000));
}

async function main() {
  state.user = await boot("/holds");
  try {
    for (const camera of await api("/api/cameras")) state.cameras.set(camera.id, camera);
  } catch (error) {
    showError($("#holds-error"), error.message);
  }
  if (can(state.user, "export") || can(state.user, "authorisation.approve")) {
    const options = [...state.cameras.values()].map((c) => el("option", { value: c.id }, c.name || c.id));
    if (state.user.cameras === "*") options.push(el("option", { value: "*" }, "every camera"));
    $("#h-camera").replaceChildren(...options);
    $("#hold-panel").classList.remove("hidden");
    $("#hold-form").addEventListener("submit", place);
    defaults();
  }
  await load();
}

main();
