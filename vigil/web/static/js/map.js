// City map: the offline basemap (GeoJSON roads, no tile server) and the cameras coloured by state and alerts.
import { api, eventStream } from "./api.js";
import { boot } from "./nav.js";
import { $, debounce, el, stateDot } from "./ui.js";

const L = window.L;
const REFRESH_MS = 5000;

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

class CameraLayer {
  constructor(map) {
    this.map = map;
    this.markers = new Map();
    this.cameras = new Map();
  }

  update(cameras) {
    const seen = new Set();
    for (const camera of cameras) {
      if (camera.lat === null || camera.lat === undefined || camera.lon === null || camera.lon === undefined) continue;
      seen.add(camera.id);
      this.cameras.set(camera.id, camera);
      let marker = this.markers.get(camera.id);
      if (!marker) {
        marker = L.marker([camera.lat, camera.lon], { title: camera.name, alt: `Camera ${camera.name}`, keyboard: true });
        marker.bindPopup(() => popupContent(this.cameras.get(camera.id)), {
          maxWidth: 320, minWidth: 280, autoPanPaddingTopLeft: [20, 20], autoPanPaddingBottomRight: [20, 20],
        });
        marker.addTo(this.map);
        this.markers.set(camera.id, marker);
      }
      marker.setLatLng([camera.lat, camera.lon]);
      const look = `${camera.state}/${camera.open_alerts}`;
      if (marker.look !== look) {  // a new icon restarts the pulse: only when something changed
        marker.look = look;
        marker.setIcon(markerIcon(camera));
        marker.getElement()?.setAttribute("data-camera", camera.id);
      }
      const popup = marker.getPopup()?.getElement()?.querySelector(".cam-popup");
      if (marker.isPopupOpen() && popup) refreshPopup(popup, camera);
    }
    for (const [id, marker] of this.markers) {
      if (!seen.has(id)) {
        marker.remove();
        this.markers.delete(id);
        this.cameras.delete(id);
      }
    }
  }

  bounds() {
    const points = [...this.markers.values()].map((m) => m.getLatLng());
    return points.length ? L.latLngBounds(points) : null;
  }

  open(id) {
    const marker = this.markers.get(id);
    if (!marker) return;
    this.map.setView(marker.getLatLng(), Math.max(this.map.getZoom(), 16));
    marker.openPopup();
  }
}

function renderList(cameras, layer) {
  const list = $("#camera-list");
  list.replaceChildren(...cameras.map((camera) => el("li", {
    tabindex: "0", role: "button", "data-camera": camera.id, "aria-label": `${camera.name}, ${camera.state}`,
    onclick: () => layer.open(camera.id),
    onkeydown: (key) => { if (key.key === "Enter") layer.open(camera.id); },
  },
  stateDot(camera.state),
  el("div", {}, el("div", {}, camera.name), el("div", { class: "meta" }, `${camera.state} · ${camera.fps ?? "—"} fps`)),
  camera.open_alerts > 0 ? el("span", { class: "badge bad", title: "open alerts" }, String(camera.open_alerts)) : "")));
  $("#camera-count").textContent = String(cameras.length);
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

  const refresh = async () => {
    try {
      const cameras = await api("/api/cameras");
      layer.update(cameras);
      renderList(cameras, layer);
      $("#map-error").textContent = "";
      $("#map-status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
      if (!fitted) {
        fitted = true;
        const cameraBounds = layer.bounds();
        const roadBounds = await basemap;
        if (cameraBounds) map.fitBounds(cameraBounds.pad(0.5), { maxZoom: 16 });
        else if (roadBounds) map.fitBounds(roadBounds);
      }
    } catch (error) {
      $("#map-error").textContent = error.message;
    }
  };
  await refresh();
  setInterval(refresh, REFRESH_MS);
  eventStream(debounce(refresh, 300));
  const wanted = new URLSearchParams(location.search).get("camera");
  if (wanted) layer.open(wanted);
}

main();
