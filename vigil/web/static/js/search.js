// Forensic search: time, cameras, class, colour, zone, plate (fuzzy) or a face photo; thumbnails that play the clip.
import { api } from "./api.js";
import { playClip } from "./events.js";
import { boot } from "./nav.js";
import { $, el, formatTime, fromLocalInput, humanKind, toLocalInput } from "./ui.js";

const PAGE_SIZE = 48;
const state = { cameras: new Map(), offset: 0, total: 0, last: null };

/** The SearchIn body: only the filters that are set (an empty list would mean "none"). */
function criteria() {
  const pick = (id) => $(id).value.trim();
  const cameras = [...$("#s-cameras").selectedOptions].map((o) => o.value);
  const body = {
    from: fromLocalInput(pick("#s-from")), to: fromLocalInput(pick("#s-to")),
    cameras: cameras.length ? cameras : null,
    classes: pick("#s-class") ? [pick("#s-class")] : null,
    colours: pick("#s-colour") ? [pick("#s-colour")] : null,
    zones: pick("#s-zone") ? [pick("#s-zone")] : null,
    plate: pick("#s-plate"), fuzzy: $("#s-fuzzy").checked, limit: PAGE_SIZE,
  };
  return Object.fromEntries(Object.entries(body).filter(([, v]) => v !== null && v !== ""));
}

function describe(hit) {
  if (hit.kind === "plate") return `plate ${hit.plate_text || "?"}`;
  if (hit.kind === "event") return [humanKind(hit.event_kind || "event"), hit.label].filter(Boolean).join(" · ");
  if (hit.kind === "face") return `face · ${hit.similarity !== null && hit.similarity !== undefined ? `similarity ${Number(hit.similarity).toFixed(2)}` : ""}`;
  return [hit.colour, hit.label].filter(Boolean).join(" ") || hit.kind;
}

function result(hit, index) {
  const camera = state.cameras.get(hit.camera_id)?.name || hit.camera_id;
  const image = hit.thumbnail_url
    ? el("img", { src: hit.thumbnail_url, alt: `${describe(hit)} on ${camera}`, loading: "lazy" })
    : el("div", { class: "notice" }, "no picture");
  const card = el("figure", {
    class: "tile result", tabindex: "0", role: "button", "data-index": String(index), "data-camera": hit.camera_id,
    "aria-label": `${describe(hit)}, ${camera}, ${formatTime(hit.start)}: play`,
  },
  image,
  el("figcaption", { class: "caption" },
    el("strong", {}, describe(hit)),
    el("span", {}, camera),
    el("span", { class: "muted mono" }, formatTime(hit.start)),
    hit.zones?.length ? el("span", { class: "muted" }, `zones: ${hit.zones.join(", ")}`) : ""));
  card.style.margin = "0";
  card.addEventListener("click", () => play(hit, camera));
  card.addEventListener("keydown", (key) => { if (key.key === "Enter") play(hit, camera); });
  return card;
}

function play(hit, camera) {
  const dialog = $("#player");
  const video = $("#player-video");
  const note = $("#player-note");
  $("#player-title").textContent = `${describe(hit)} · ${camera} · ${formatTime(hit.start)}`;
  note.textContent = "";
  if (hit.clip && hit.clip.playlist_url) {
    video.classList.remove("hidden");
    playClip(video, hit.clip.playlist_url, (message) => { note.textContent = message; });
  } else {
    video.classList.add("hidden");
    note.textContent = "No recording covers this moment.";
  }
  dialog.showModal();
}

function show(page, append) {
  const results = $("#results");
  if (!append) results.replaceChildren();
  const start = results.children.length;
  page.items.forEach((hit, i) => results.append(result(hit, start + i)));
  state.total = page.total ?? results.children.length;
  state.more = page.next_offset !== undefined ? page.next_offset !== null : results.children.length < state.total;
  $("#search-summary").textContent = state.total
    ? `${state.total} result${state.total === 1 ? "" : "s"}, showing ${results.children.length}`
    : "Nothing found.";
  $("#s-more").classList.toggle("hidden", !state.more);
}

/** Face search: the photo as `image`, the same filters as JSON in `filters`. */
function faceForm(filters, file) {
  const form = new FormData();
  form.append("image", file);
  form.append("filters", JSON.stringify(filters));
  return form;
}

async function run({ more = false } = {}) {
  const filters = more ? state.last : criteria();
  state.last = filters;
  state.offset = more ? state.offset + PAGE_SIZE : 0;
  const body = { ...filters, offset: state.offset };
  const face = $("#s-face").files[0];
  $("#search-error").textContent = "";
  $("#s-go").disabled = true;
  try {
    const page = face
      ? await api("/api/search/face", { method: "POST", form: faceForm(body, face) })
      : await api("/api/search", { method: "POST", body });
    show(page, more);
  } catch (error) {
    $("#search-error").textContent = error.message;
    if (!more) $("#results").replaceChildren();
    $("#search-summary").textContent = "";
  } finally {
    $("#s-go").disabled = false;
  }
}

async function main() {
  await boot("/search");
  try {
    for (const camera of await api("/api/cameras")) {
      state.cameras.set(camera.id, camera);
      $("#s-cameras").append(el("option", { value: camera.id }, camera.name));
    }
  } catch (error) {
    $("#search-error").textContent = error.message;
  }
  const params = new URLSearchParams(location.search);
  const now = new Date();
  $("#s-from").value = params.get("from") ? toLocalInput(new Date(params.get("from"))) : "";
  $("#s-to").value = params.get("to") ? toLocalInput(new Date(params.get("to"))) : toLocalInput(new Date(now.getTime() + 60000));
  if (params.get("class")) $("#s-class").value = params.get("class");
  $("#search-form").addEventListener("submit", (submit) => { submit.preventDefault(); run(); });
  $("#s-more").addEventListener("click", () => run({ more: true }));
  $("#player").addEventListener("close", () => {
    const video = $("#player-video");
    video.pause();
    video.hls?.destroy();
    video.hls = null;
  });
  if (params.get("run")) run();
}

main();
