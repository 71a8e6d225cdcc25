// Authorisations: the list with state badges and validity windows, the request form, and approve / deny / revoke
// (supervisors; the server enforces four-eyes and its refusal is shown on the page).
import { api, ApiError, query } from "./api.js";
import { boot, can } from "./nav.js";
import { $, badge, el, formatTime, fromLocalInput, showError, toast, toLocalInput } from "./ui.js";

const FEATURES = {
  live_face_match: "live face matching", face_search: "face search", person_search: "person tracking",
  plate_hotlist: "plate hotlist",
};
const OPEN_STATES = ["requested", "approved", "active"];
const state = { user: null, cameras: new Map() };

function duration(ms) {
  const minutes = Math.round(ms / 60000);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  return hours < 48 ? `${hours} h ${minutes % 60} min` : `${Math.round(hours / 24)} days`;
}

function windowCell(a) {
  const now = Date.now();
  const from = new Date(a.valid_from).getTime();
  const until = new Date(a.valid_until).getTime();
  let hint = "";
  if (a.state === "active") hint = `ends in ${duration(until - now)}`;
  else if (a.state === "approved" || (a.state === "requested" && from > now)) hint = `starts in ${duration(from - now)}`;
  return el("td", { class: "window" }, `${formatTime(a.valid_from)} →`, el("br"), formatTime(a.valid_until),
    hint ? el("div", { class: "muted" }, hint) : "");
}

function camerasText(a) {
  if (a.cameras.includes("*")) return "every camera";
  return a.cameras.map((id) => state.cameras.get(id)?.name || id).join(", ");
}

function decisionCell(a) {
  const parts = [];
  if (a.approver) {
    parts.push(el("div", {}, `${a.state === "denied" ? "denied" : "approved"} by `, el("strong", {}, a.approver)));
    if (a.decision_note) parts.push(el("div", { class: "muted" }, a.decision_note));
  }
  if (a.revoked_by) {
    parts.push(el("div", {}, "revoked by ", el("strong", {}, a.revoked_by)));
    if (a.revoke_reason) parts.push(el("div", { class: "muted" }, a.revoke_reason));
  }
  return el("td", {}, parts.length ? parts : el("span", { class: "muted" }, "awaiting a supervisor"));
}

function actionButtons(a) {
  const buttons = [];
  const mine = a.requester === state.user.username;
  if (can(state.user, "authorisation.approve") && a.state === "requested") {
    buttons.push(el("button", {
      class: "small ok", type: "button", "data-action": "approve",
      title: mine ? "You requested this: the four-eyes rule needs another supervisor" : "Approve this request",
      onclick: (e) => decide(a, "approve", e.currentTarget),
    }, "Approve"), " ", el("button", {
      class: "small danger", type: "button", "data-action": "deny", onclick: (e) => decide(a, "deny", e.currentTarget),
    }, "Deny"));
  }
  if ((can(state.user, "authorisation.approve") || mine) && OPEN_STATES.includes(a.state)) {
    buttons.push(" ", el("button", {
      class: "small danger", type: "button", "data-action": "revoke", onclick: (e) => decide(a, "revoke", e.currentTarget),
    }, "Revoke"));
  }
  return buttons;
}

function row(a) {
  return el("tr", { "data-id": a.id, "data-state": a.state, "data-case": a.case_ref },
    el("td", { class: "mono" }, String(a.id)),
    el("td", { class: "state" }, badge(a.state, `auth-${a.state}`)),
    el("td", {}, el("strong", {}, a.case_ref), el("div", { class: "muted", title: a.purpose }, a.legal_basis)),
    el("td", {}, a.features.map((f) => badge(FEATURES[f] || f, "feature"))),
    el("td", {}, camerasText(a)),
    windowCell(a),
    el("td", {}, a.requester, el("div", { class: "muted" }, formatTime(a.created_at))),
    decisionCell(a),
    el("td", { class: "actions" }, actionButtons(a)));
}

async function load() {
  try {
    const list = await api(`/api/authorisations${query({ state: $("#f-state").value })}`);
    $("#auth-rows").replaceChildren(...list.map(row));
    $("#auth-count").textContent = String(list.length);
    $("#auth-empty").classList.toggle("hidden", list.length > 0);
  } catch (error) {
    showError($("#auth-error"), error.message);
  }
}

/** Ask for a reason in the dialog: the text, or null when cancelled. */
function askReason(title) {
  const dialog = $("#reason-dialog");
  $("#reason-title").textContent = title;
  $("#reason-text").value = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const text = $("#reason-text").value.trim();
      resolve(dialog.returnValue === "ok" && text ? text : null);
    }, { once: true });
  });
}

async function decide(a, action, button) {
  showError($("#auth-error"), "");
  let body = {};
  if (action !== "approve") {
    const reason = await askReason(`${action === "deny" ? "Deny" : "Revoke"} authorisation ${a.id} (${a.case_ref})`);
    if (reason === null) return;
    body = { reason };
  }
  button.disabled = true;
  try {
    const changed = await api(`/api/authorisations/${a.id}/${action}`, { method: "POST", body });
    toast(`Authorisation ${a.id} is now ${changed.state}`, "ok");
    await load();
  } catch (error) {
    button.disabled = false;
    const message = error instanceof ApiError ? error.message : String(error);
    showError($("#auth-error"), `Authorisation ${a.id} not ${action === "deny" ? "denied" : `${action}d`}: ${message}`);
    const line = $(`#auth-rows tr[data-id="${a.id}"]`);
    if (line) {
      line.classList.add("refused");
      line.querySelector("td.actions .row-note")?.remove();
      line.querySelector("td.actions").append(el("div", { class: "row-note", role: "status" }, message));
    }
  }
}

function fillCameras() {
  const select = $("#r-cameras");
  const options = [];
  if (state.user.cameras === "*") options.push(el("option", { value: "*" }, "every camera (*)"));
  for (const camera of state.cameras.values()) options.push(el("option", { value: camera.id }, camera.name || camera.id));
  select.replaceChildren(...options);
  const first = [...select.options].find((option) => option.value !== "*") || select.options[0];
  if (first) first.selected = true;
}

function resetForm() {
  $("#request-form").reset();
  const now = new Date();
  $("#r-from").value = toLocalInput(now);
  $("#r-until").value = toLocalInput(new Date(now.getTime() + 7 * 24 * 3600 * 1000));
  $("#r-entries").value = "*";
  fillCameras();
}

function toggleForm(open) {
  $("#request-panel").classList.toggle("hidden", !open);
  $("#new-request").setAttribute("aria-expanded", String(open));
  if (open) $("#r-case").focus();
}

async function submitRequest(event) {
  event.preventDefault();
  showError($("#auth-error"), "");
  const features = [...document.querySelectorAll("#r-features input:checked")].map((box) => box.value);
  const cameras = [...$("#r-cameras").selectedOptions].map((option) => option.value);
  const missing = [["case reference", $("#r-case").value.trim()], ["legal basis", $("#r-basis").value.trim()],
    ["purpose", $("#r-purpose").value.trim()], ["a feature", features.length], ["a camera", cameras.length],
    ["the window", $("#r-from").value && $("#r-until").value]].filter(([, ok]) => !ok).map(([name]) => name);
  if (missing.length) {
    showError($("#auth-error"), `The request needs ${missing.join(", ")}.`);
    return;
  }
  const body = {
    case_ref: $("#r-case").value.trim(), legal_basis: $("#r-basis").value.trim(), purpose: $("#r-purpose").value.trim(),
    features, cameras, valid_from: fromLocalInput($("#r-from").value), valid_until: fromLocalInput($("#r-until").value),
    watchlist_entries: $("#r-entries").value.split(",").map((s) => s.trim()).filter(Boolean),
  };
  $("#r-submit").disabled = true;
  try {
    const made = await api("/api/authorisations", { method: "POST", body });
    toast(`Authorisation ${made.id} requested for case ${made.case_ref}`, "ok");
    toggleForm(false);
    resetForm();
    await load();
  } catch (error) {
    showError($("#auth-error"), `Request not made: ${error.message}`);
  } finally {
    $("#r-submit").disabled = false;
  }
}

async function main() {
  state.user = await boot("/authorisations");
  try {
    for (const camera of await api("/api/cameras")) state.cameras.set(camera.id, camera);
  } catch (error) {
    showError($("#auth-error"), error.message);
  }
  if (can(state.user, "authorisation.request")) {
    $("#new-request").classList.remove("hidden");
    $("#new-request").addEventListener("click", () => toggleForm($("#request-panel").classList.contains("hidden")));
    $("#r-cancel").addEventListener("click", () => toggleForm(false));
    $("#request-form").addEventListener("submit", submitRequest);
    resetForm();
  }
  $("#f-state").addEventListener("change", load);
  await load();
}

main();
