// Audit log viewer: the chain-status banner (/api/audit/verify), filtered pages of entries newest first, the bundle.
import { api, query } from "./api.js";
import { boot } from "./nav.js";
import { $, el, formatTime, fromLocalInput, showError } from "./ui.js";

const PAGE_SIZE = 100;
const ACTIONS = ["authorisation.request", "authorisation.approve", "authorisation.deny", "authorisation.revoke",
  "authorisation.approve_refused", "authorisation.refused", "audit.export", "evidence.hold", "evidence.hold_release",
  "evidence.hold_refused", "event.acknowledge", "event.resolve", "search", "search.face", "video.live",
  "video.snapshot", "video.playback", "video.still", "hotlist.entry_add", "watchlist.entry_add", "config.scene_update",
  "report.view", "user.create", "user.login"];
const state = { next: null, shown: 0 };

function filters() {
  return {
    actor: $("#f-actor").value.trim(), action: $("#f-action").value.trim(), object: $("#f-object").value.trim(),
    from: fromLocalInput($("#f-from").value), to: fromLocalInput($("#f-to").value),
  };
}

function detailsText(details) {
  return Object.entries(details || {}).filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join("  ");
}

function row(entry) {
  const details = detailsText(entry.details);
  return el("tr", { "data-seq": entry.seq, "data-action": entry.action, "data-actor": entry.actor },
    el("td", { class: "mono", title: `hash ${entry.hash}\nprevious ${entry.prev_hash}` }, String(entry.seq)),
    el("td", { class: "mono" }, formatTime(entry.at)),
    el("td", {}, entry.actor),
    el("td", {}, el("code", {}, entry.action)),
    el("td", { class: "mono" }, entry.object),
    el("td", {}, entry.purpose || el("span", { class: "muted" }, "—")),
    el("td", { class: "details", title: details }, details || "—"));
}

async function load(append = false) {
  showError($("#audit-error"), "");
  try {
    const page = await api(`/api/audit${query({ ...filters(), limit: PAGE_SIZE, before_seq: append ? state.next : "" })}`);
    const rows = page.items.map(row);
    if (append) $("#audit-rows").append(...rows);
    else $("#audit-rows").replaceChildren(...rows);
    state.next = page.next_before_seq;
    state.shown = $("#audit-rows").children.length;
    $("#audit-empty").classList.toggle("hidden", state.shown > 0);
    $("#more").classList.toggle("hidden", state.next === null);
    $("#audit-shown").textContent = state.shown ? `${state.shown} entries shown` : "";
  } catch (error) {
    showError($("#audit-error"), error.message);
  }
}

/** What protects the newest entries: a signed checkpoint, or only the hash links until the next one. */
function tailText(result) {
  if (!result.entries) return "";
  if (!result.checkpoints) return " No signed checkpoint yet: the entries are protected by their hash links until the first one.";
  if (!result.unsigned_tail) return " Signed up to the newest entry.";
  const what = result.unsigned_tail === 1 ? "entry is" : "entries are";
  return ` ${result.unsigned_tail} newest ${what} after the last signed checkpoint (protected by the hash links until the next one).`;
}

async function verify() {
  const banner = $("#chain-status");
  try {
    const result = await api("/api/audit/verify");
    banner.className = `banner ${result.ok ? "ok" : "bad"}`;
    banner.dataset.ok = String(result.ok);
    const tail = tailText(result);
    const text = result.ok
      ? [el("strong", {}, "Audit chain verified."), ` ${result.entries} entries, ${result.checkpoints} signed checkpoints.${tail}`]
      : [el("strong", {}, `Audit chain BROKEN at entry ${result.first_bad_seq}.`), ` ${result.reason}`];
    banner.replaceChildren(el("span", { class: "grow", id: "chain-text" }, text),
      el("button", { type: "button", class: "small", onclick: verify }, "Verify again"));
  } catch (error) {
    banner.className = "banner bad";
    banner.replaceChildren(el("span", { class: "grow" }, `Cannot verify the audit chain: ${error.message}`));
  }
}

async function main() {
  await boot("/audit");
  $("#actions").replaceChildren(...ACTIONS.map((action) => el("option", { value: action })));
  $("#audit-filters").addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  $("#f-clear").addEventListener("click", () => {
    $("#audit-filters").reset();
    load();
  });
  $("#more").addEventListener("click", () => load(true));
  $("#export").addEventListener("click", () => setTimeout(() => { verify(); load(); }, 1500));
  await Promise.all([verify(), load()]);
}

main();
