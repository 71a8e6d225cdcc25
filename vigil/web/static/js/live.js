// Live grid: a page of cameras (4, 9 or 16), each tile's latest analysed picture refreshed every 2 s while it is on
// screen, and one camera at a time opened large on its MJPEG stream. With a thousand cameras nothing streams in the
// background: a browser holds 6 connections to a server, and every MJPEG stream keeps one.
import { api } from "./api.js";
import { CameraFilter, Pager, cameraPage } from "./camfilter.js";
import { boot } from "./nav.js";
import { $, el, stateDot } from "./ui.js";

const REFRESH_MS = 5000; // the page's cameras and their states
const SNAPSHOT_MS = 2000; // the pictures of the tiles on screen
const NODES_MS = 60000; // the node filter's choices
const BLANK = "data:image/gif;base64,R0lGODlhAQABAAAAACw="; // ends an MJPEG stream without an error
const LAYOUT = { 4: "sparse", 9: "", 16: "dense" };
const SIZE_KEY = "vigil.live.size";

/** The state shown on a tile: the camera's, and the recorder's when it is not recording ("paused (disk full)"). */
function stateText(camera) {
  const recording = camera.recording || "off";
  return recording.startsWith("paused") ? `${camera.state} · recording ${recording}` : camera.state;
}

const cameraUrl = (camera, file) => `/api/cameras/${encodeURIComponent(camera.id)}/${file}`;

class Tile {
  constructor(camera, grid) {
    this.camera = camera;
    this.grid = grid;
    this.visible = false;
    this.live = false;
    this.loaded = 0; // when the shown snapshot was fetched
    this.busy = false;
    this.blob = null;
    this.image = this.picture();
    this.message = el("span", { class: "muted state-text" }, stateText(camera));
    this.alerts = el("span", {});
    this.box = el("figure", {
      class: "tile", tabindex: "0", role: "button", "data-camera": camera.id,
      "aria-label": `${camera.name}: click for the live stream`,
    },
    this.image,
    el("figcaption", { class: "overlay" }, stateDot(camera.state), el("span", { class: "name" }, camera.name),
      this.message, this.alerts));
    this.box.addEventListener("click", (click) => { if (!click.target.closest("a")) grid.toggle(this); });
    this.box.addEventListener("keydown", (key) => { if (key.key === "Enter") grid.toggle(this); });
    this.box.style.margin = "0";
    this.update(camera);
  }

  picture() {
    return el("img", { alt: `Latest picture of ${this.camera.name}` });
  }

  update(camera) {
    this.camera = camera;
    this.box.querySelector(".overlay .dot").className = `dot ${camera.state}`;
    if (!this.problem) this.message.textContent = stateText(camera);
    this.alerts.replaceChildren(camera.open_alerts > 0 ? el("a", {
      class: "badge bad", href: `/alerts?camera=${encodeURIComponent(camera.id)}`,
    }, `${camera.open_alerts} open`) : "");
  }

  due() {
    return this.visible && !this.live && !this.busy && Date.now() - this.loaded >= SNAPSHOT_MS - 100;
  }

  /** Fetch the latest picture and show it once it has arrived (the old one stays until then). */
  async refresh() {
    this.busy = true;
    try {
      const answer = await fetch(cameraUrl(this.camera, "snapshot.jpg"), { credentials: "same-origin", cache: "no-store" });
      this.loaded = Date.now();
      if (!answer.ok) {
        this.say(answer.status === 404 ? "no picture yet" : answer.status === 403 ? "no live-view permission"
          : `no picture (${answer.status})`);
        return;
      }
      const blob = URL.createObjectURL(await answer.blob());
      if (this.live) {
        URL.revokeObjectURL(blob);
        return;
      }
      this.image.src = blob;
      if (this.blob) URL.revokeObjectURL(this.blob);
      this.blob = blob;
      this.say(null);
    } catch {
      this.say("the server cannot be reached");
    } finally {
      this.busy = false;
    }
  }

  say(problem) {
    this.problem = problem;
    this.message.textContent = problem || stateText(this.camera);
  }

  /** The MJPEG stream in place of the snapshots (the tile is enlarged). */
  watch() {
    this.live = true;
    this.image.onerror = () => this.say("no live stream (check the live-view permission)");
    this.image.src = cameraUrl(this.camera, "live.mjpg");
    this.box.append(el("span", { class: "badge bad live-badge" }, "LIVE"));
  }

  /** Close the stream (a fresh <img>: the old one's connection ends) and go back to snapshots. */
  unwatch() {
    if (!this.live) return;
    this.live = false;
    this.image.onerror = null;
    this.image.src = BLANK;
    const fresh = this.picture();
    if (this.blob) fresh.src = this.blob;
    this.image.replaceWith(fresh);
    this.image = fresh;
    this.box.querySelector(".live-badge")?.remove();
    this.loaded = 0;
  }

  remove() {
    this.unwatch();
    if (this.blob) URL.revokeObjectURL(this.blob);
    this.box.remove();
  }
}

class Grid {
  constructor(container) {
    this.container = container;
    this.tiles = new Map();
    this.observer = new IntersectionObserver((entries) => {
      for (const entry of entries) {
        const tile = this.tiles.get(entry.target.dataset.camera);
        if (tile) tile.visible = entry.isIntersecting;
      }
      this.refreshPictures();
    });
  }

  show(cameras) {
    const wanted = new Set(cameras.map((c) => c.id));
    for (const [id, tile] of this.tiles) {
      if (!wanted.has(id) && !tile.live) {
        this.observer.unobserve(tile.box);
        tile.remove();
        this.tiles.delete(id);
      }
    }
    cameras.forEach((camera, index) => {
      let tile = this.tiles.get(camera.id);
      if (tile) tile.update(camera);
      else {
        tile = new Tile(camera, this);
        this.tiles.set(camera.id, tile);
        this.observer.observe(tile.box);
      }
      if (this.container.children[index] !== tile.box) this.container.insertBefore(tile.box, this.container.children[index] || null);
    });
  }

  /** New pictures for the tiles on screen, unless the page is hidden or a camera is open large over them. */
  refreshPictures() {
    if (document.visibilityState !== "visible" || this.enlarged()) return;
    for (const tile of this.tiles.values()) if (tile.due()) tile.refresh();
  }

  enlarged() {
    return [...this.tiles.values()].find((t) => t.live) || null;
  }

  toggle(tile) {
    const open = this.enlarged();
    this.close();
    if (open === tile) return;
    tile.box.classList.add("enlarged");
    tile.watch();
  }

  close() {
    for (const tile of this.tiles.values()) {
      tile.box.classList.remove("enlarged");
      tile.unwatch();
    }
    this.refreshPictures();
  }
}

async function main() {
  await boot("/live");
  const grid = new Grid($("#tiles"));
  const sizes = $("#page-size");
  sizes.value = localStorage.getItem(SIZE_KEY) || "9";
  const params = new URLSearchParams(location.search);
  const wanted = params.get("camera");

  const refresh = async () => {
    try {
      const page = await cameraPage(filter, pager);
      grid.show(page.items);
      $("#live-count").textContent = String(page.total);
      $("#live-empty").classList.toggle("hidden", page.items.length > 0);
      $("#live-error").textContent = "";
    } catch (error) {
      $("#live-error").textContent = error.message;
    }
  };
  const filter = new CameraFilter($("#live-filter"), () => { pager.reset(); refresh(); }, "lf");
  const pager = new Pager($("#live-pager"), Number(sizes.value), refresh, "live");
  const layout = () => { $("#tiles").className = `tiles ${LAYOUT[sizes.value] || ""}`.trim(); };
  sizes.addEventListener("change", () => {
    localStorage.setItem(SIZE_KEY, sizes.value);
    pager.reset(Number(sizes.value));
    layout();
    refresh();
  });
  layout();
  if (wanted) filter.search.value = wanted; // its tile comes first: exact matches lead
  await refresh();
  if (wanted) grid.tiles.get(wanted)?.box.click();

  const nodes = async () => {
    try { filter.setNodes(await api("/api/cameras")); } catch { /* the filter keeps its choices */ }
  };
  nodes();
  document.addEventListener("keydown", (key) => { if (key.key === "Escape") grid.close(); });
  document.addEventListener("visibilitychange", () => grid.refreshPictures());
  setInterval(refresh, REFRESH_MS);
  setInterval(() => grid.refreshPictures(), 500); // each tile waits SNAPSHOT_MS between pictures
  setInterval(nodes, NODES_MS);
}

main();
