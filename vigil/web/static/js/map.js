// City map: the offline basemap (GeoJSON roads, no tile server) and the cameras coloured by state and alerts,
// clustered when zoomed out (Leaflet.markercluster); beside it the cameras, searched, filtered and paged.
import { api, eventStream } from "./api.js";
import { CameraFilter, Pager, cameraPage } from "./camfilter.js";
import { clusterIcon } from "./cluster.js";
import { boot } from "./nav.js";
import { $, el, stateDot } from "./ui.js";

const L = window.L;
const REFRESH_MS = 5000;
const LIST_SIZE = 50;

// Road styling by OSM `highway` class: [colour, weight, dash].
const ROAD_STYLES = [
  [["motorway", "motorway_link", "trunk", "trunk_link"], "#6b7f99", 4, null],
  [["primary", "primary_link"], "#5d6f86", 3.2, null],
  [["secondary", "secondary_link"], "#4f5f73", 2.6, null],
  [["tertiary", "tertiary_link"], "#44525f", 2.1, null],
  [["residential", "unclassified", "living_street", "road"], "#39444f", 1.5, null],
  [["service", "track"], "#2f3841", 1.1, null],
  [["footway", "path", "pedestrian", "cycleway", "steps", "bridleway"], "#33414a", 1, "2 3"],
];

function roadStyle(feature) {
  const kind = (feature.properties || {}).highway;
  for (const [kinds, color, weight, dashArray] of ROAD_STYLES) {
    if (kinds.includes(kind)) return { color, weight, dashArray, opacity: 0.95 };
  }
  return { color: "#2d3640", weight: 1, opacity: 0.8 };
}

function markerIcon(camera) {
  const alerting = camera.open_alerts > 0;
  const html = `<span class="core"></span>${alerting ? `<span class="count">${camera.open_alerts}</span>` : ""}`;
  return L.divIcon({
    className: `cam-marker state-${camera.state || "unknown"}${alerting ? " alerting" : ""}`,
    html, iconSize: [22, 22], iconAnchor: [11, 11], popupAnchor: [0, -12],
  });
}

function snapshotImage(camera) {
  const image = el("img", {
    src: `/api/cameras/${encodeURIComponent(camera.id)}/snapshot.jpg?t=${Date.now()}`,
    alt: `Latest frame of ${camera.name}`,
    // a known size before the picture arrives, so the popup pans into view at its final size
    style: `aspect-ratio: ${camera.width || 4} / ${camera.height || 3}`,
  });
  image.addEventListener("error", () => image.replaceWith(el("p", { class: "muted" }, "No snapshot available.")));
  return image;
}

function facts(camera) {
  const lag = camera.lag_s === null || camera.lag_s === undefined ? "—" : `${camera.lag_s} s`;
  return el("dl", {},
    el("dt", {}, "State"), el("dd", {}, stateDot(camera.state), " ", camera.state),
    el("dt", {}, "Rate"), el("dd", {}, `${camera.fps ?? "—"} fps · lag ${lag}`),
    camera.gop_s ? [el("dt", {}, "Keyframes"),
      el("dd", { title: "A quiet camera decodes keyframes only, so it sees motion up to one interval late" },
        `every ${camera.gop_s} s · ${camera.decoding === "keyframes" ? "quiet: keyframes only" : "all frames"}`)]
      : null,
    el("dt", {}, "Open alerts"), el("dd", {}, String(camera.open_alerts ?? 0)),
    camera.purpose ? [el("dt", {}, "Purpose"), el("dd", {}, camera.purpose)] : null);
}

function popupContent(camera) {
  return el("div", { class: "cam-popup", "data-camera": camera.id },
    el("h2", {}, camera.name),
    facts(camera),
    snapshotImage(camera),
    el("div", { class: "links" },
      el("a", { href: `/live?camera=${encodeURIComponent(camera.id)}` }, "Live view"),
      el("a", { href: `/alerts?camera=${encodeURIComponent(camera.id)}` }, "Alerts")));
}

/** Refresh an open popup in place: new facts, and the new snapshot swapped in only once it has loaded. */
function refreshPopup(popup, camera) {
  popup.querySelector("dl")?.replaceWith(facts(camera));
  const current = popup.querySelector("img");
  if (!current) return;
  const next = snapshotImage(camera);
  next.addEventListener("load", () => current.replaceWith(next), { once: true });
}

/** The camera markers, in a cluster group: a cluster's icon tells its cameras' states and open alerts. */
class CameraLayer {
  constructor(map) {
    this.map = map;
    this.markers = new Map();
    this.group = L.markerClusterGroup({
      iconCreateFunction: clusterIcon, showCoverageOnHover: false, maxClusterRadius: 60,
    }).addTo(map);
  }

  update(cameras) {
    const seen = new Set();
    const added = [];
    const changed = [];
    for (const camera of cameras) {
      if (camera.lat === null || camera.lat === undefined || camera.lon === null || camera.lon === undefined) continue;
      seen.add(camera.id);
      let marker = this.markers.get(camera.id);
      if (!marker) {
        marker = L.marker([camera.lat, camera.lon], { title: camera.name, alt: `Camera ${camera.name}`, keyboard: true });
        marker.bindPopup(() => popupContent(marker.camera), {
          maxWidth: 320, minWidth: 280, autoPanPaddingTopLeft: [20, 20], autoPanPaddingBottomRight: [20, 20],
        });
        // a clustered marker has no element: name it whenever it is drawn
        marker.on("add", () => marker.getElement()?.setAttribute("data-camera", camera.id));
        this.markers.set(camera.id, marker);
        added.push(marker);
      } else if (!marker.getLatLng().equals([camera.lat, camera.lon])) {
        marker.setLatLng([camera.lat, camera.lon]);
      }
      marker.camera = camera;
      const look = `${camera.state}/${camera.open_alerts}`;
      if (marker.look !== look) {  // a new icon restarts the pulse: only when something changed
        marker.look = look;
        marker.setIcon(markerIcon(camera));
        marker.getElement()?.setAttribute("data-camera", camera.id);
        changed.push(marker);
      }
      const popup = marker.getPopup()?.getElement()?.querySelector(".cam-popup");
      if (marker.isPopupOpen() && popup) refreshPopup(popup, camera);
    }
    const gone = [...this.markers].filter(([id]) => !seen.has(id));
    if (gone.length) this.group.removeLayers(gone.map(([, marker]) => marker));
    gone.forEach(([id]) => this.markers.delete(id));
    if (added.length) this.group.addLayers(added);
    const redraw = changed.filter((m) => !added.includes(m));
    if (redraw.length) this.group.refreshClusters(redraw);  // their clusters' counts and colours
    $("#map").dataset.cameras = String(this.markers.size);
  }

  bounds() {
    const bounds = this.group.getBounds();
    return bounds.isValid() ? bounds : null;
  }

  open(id) {
    const marker = this.markers.get(id);
    if (!marker) return;
    this.group.zoomToShowLayer(marker, () => {
      if (this.map.getZoom() < 16) this.map.setView(marker.getLatLng(), 16);
      marker.openPopup();
    });
  }
}

function renderList(cameras, layer) {
  $("#camera-list").replaceChildren(...cameras.map((camera) => el("li", {
    tabindex: "0", role: "button", "data-camera": camera.id, "aria-label": `${camera.name}, ${camera.state}`,
    onclick: () => layer.open(camera.id),
    onkeydown: (key) => { if (key.key === "Enter") layer.open(camera.id); },
  },
  stateDot(camera.state),
  el("div", {}, el("div", {}, camera.name),
    el("div", { class: "meta" }, `${camera.id} · ${camera.state} · ${camera.fps ?? "—"} fps`)),
  camera.open_alerts > 0 ? el("span", { class: "badge bad", title: "open alerts" }, String(camera.open_alerts)) : "")));
}

async function loadBasemap(map) {
  try {
    const geojson = await api("/api/map/basemap.geojson");
    const layer = L.geoJSON(geojson, { style: roadStyle, interactive: false }).addTo(map);
    $("#map").dataset.roads = String((geojson.features || []).length);
    return layer.getBounds().isValid() ? layer.getBounds() : null;
  } catch (error) {
    $("#map-status").textContent = `No basemap: ${error.message}`;
    return null;
  }
}

async function main() {
  await boot("/map");
  const map = L.map("map", { zoomControl: true, preferCanvas: true, minZoom: 3, maxZoom: 20 });
  map.attributionControl.setPrefix("").addAttribution("Roads © OpenStreetMap contributors (ODbL)");
  map.setView([0, 0], 3);
  const layer = new CameraLayer(map);
  let fitted = false;
  const basemap = loadBasemap(map);

  const refreshList = async () => {
    const page = await cameraPage(filter, pager);
    renderList(page.items, layer);
    $("#camera-count").textContent = String(page.total);
  };
  const filter = new CameraFilter($("#camera-filter"), () => { pager.reset(); refreshList().catch(showError); }, "cf");
  const pager = new Pager($("#camera-pager"), LIST_SIZE, () => refreshList().catch(showError), "list");

  const refresh = async () => {
    try {
      const cameras = await api("/api/cameras");
      layer.update(cameras);
      filter.setNodes(cameras);
      await refreshList();
      $("#map-error").textContent = "";
      $("#map-status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
      if (!fitted) {
        fitted = true;
        const cameraBounds = layer.bounds();
        const roadBounds = await basemap;
        if (cameraBounds) map.fitBounds(cameraBounds.pad(0.5), { maxZoom: 16 });
        else if (roadBounds) map.fitBounds(roadBounds);
        $("#map").dataset.fitted = "1";
      }
    } catch (error) {
      showError(error);
    }
  };
  await refresh();
  setInterval(refresh, REFRESH_MS);
  eventStream(soonAfterAlerts(refresh));
  const wanted = new URLSearchParams(location.search).get("camera");
  if (wanted) layer.open(wanted);
}

/** Refresh shortly after an alert or a camera going on- or offline, at most every 2 s: a city has many records. */
function soonAfterAlerts(refresh) {
  let timer = null;
  let last = 0;
  return (event) => {
    if ((event.severity === "info" && !String(event.kind).startsWith("camera_")) || timer) return;
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      refresh();
    }, Math.max(300, last + 2000 - Date.now()));
  };
}

function showError(error) {
  $("#map-error").textContent = error.message;
}

main();
