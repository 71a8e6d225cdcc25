// Live grid: one MJPEG <img> per permitted camera with name and state overlays; click to enlarge.
import { api } from "./api.js";
import { boot } from "./nav.js";
import { $, el, stateDot } from "./ui.js";

const REFRESH_MS = 5000;

/** The state shown on a tile: the camera's, and the recorder's when it is not recording ("paused (disk full)"). */
function stateText(camera) {
  const recording = camera.recording || "off";
  return recording.startsWith("paused") ? `${camera.state} · recording ${recording}` : camera.state;
}

function tile(camera) {
  const src = `/api/cameras/${encodeURIComponent(camera.id)}/live.mjpg`;
  const image = el("img", { src, alt: `Live view of ${camera.name}` });
  const message = el("span", { class: "muted state-text" }, stateText(camera));
  image.addEventListener("error", () => {
    message.textContent = "no video (check the live-view permission)";
    setTimeout(() => { image.src = `${src}?retry=${Date.now()}`; }, 5000); // the stream may come back
  });
  const box = el("figure", {
    class: "tile", tabindex: "0", role: "button", "data-camera": camera.id,
    "aria-label": `${camera.name}: click to enlarge`,
  },
  image,
  el("figcaption", { class: "overlay" }, stateDot(camera.state), el("span", { class: "name" }, camera.name), message,
    camera.open_alerts > 0 ? el("a", { class: "badge bad", href: `/alerts?camera=${encodeURIComponent(camera.id)}` },
      `${camera.open_alerts} open`) : ""));
  const toggle = () => {
    const enlarge = !box.classList.contains("enlarged");
    document.querySelectorAll(".tile.enlarged").forEach((t) => t.classList.remove("enlarged"));
    box.classList.toggle("enlarged", enlarge);
  };
  box.addEventListener("click", (click) => { if (!click.target.closest("a")) toggle(); });
  box.addEventListener("keydown", (key) => { if (key.key === "Enter") toggle(); });
  box.style.margin = "0";
  return box;
}

function updateOverlay(box, camera) {
  const overlay = box.querySelector(".overlay");
  overlay.querySelector(".dot").className = `dot ${camera.state}`;
  overlay.querySelector(".state-text").textContent = stateText(camera);
}

async function main() {
  await boot("/live");
  const tiles = $("#tiles");
  const wanted = new URLSearchParams(location.search).get("camera");
  const refresh = async () => {
    try {
      const cameras = await api("/api/cameras");
      const ids = new Set(cameras.map((c) => c.id));
      tiles.querySelectorAll(".tile").forEach((box) => { if (!ids.has(box.dataset.camera)) box.remove(); });
      for (const camera of cameras) {
        const box = tiles.querySelector(`.tile[data-camera="${CSS.escape(camera.id)}"]`);
        if (box) updateOverlay(box, camera);
        else tiles.append(tile(camera));
      }
      $("#live-empty").classList.toggle("hidden", cameras.length > 0);
      $("#live-error").textContent = "";
      return cameras;
    } catch (error) {
      $("#live-error").textContent = error.message;
      return [];
    }
  };
  await refresh();
  if (wanted) tiles.querySelector(`.tile[data-camera="${CSS.escape(wanted)}"]`)?.click();
  document.addEventListener("keydown", (key) => {
    if (key.key === "Escape") document.querySelectorAll(".tile.enlarged").forEach((t) => t.classList.remove("enlarged"));
  });
  setInterval(refresh, REFRESH_MS);
}

main();
