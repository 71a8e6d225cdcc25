// The icon of a cluster of camera markers: how many cameras, how many are down, the open alerts among them,
// coloured by the worst state inside (a city's map zoomed out is a few dozen of these).
const L = window.L;

// state → [rank, tally]: the highest rank inside colours the cluster; stopped cameras were switched off on purpose
const STATES = {
  offline: [3, "down"], failed: [3, "down"], connecting: [2, "connecting"], unknown: [1, "unreported"],
  ended: [1, "unreported"], online: [0, "online"], stopped: [-1, "stopped"],
};
const WORST = { 3: "offline", 2: "connecting", 1: "unknown", 0: "online", "-1": "stopped" };

/** What the cameras of a cluster add up to: counts per tally, summed open alerts, the worst state. */
export function tally(cameras) {
  const sums = { cameras: cameras.length, down: 0, connecting: 0, unreported: 0, online: 0, stopped: 0, alerts: 0 };
  let worst = -1;
  for (const camera of cameras) {
    const [rank, key] = STATES[camera.state] || STATES.unknown;
    sums[key] += 1;
    sums.alerts += camera.open_alerts || 0;
    worst = Math.max(worst, rank);
  }
  sums.worst = WORST[worst];
  return sums;
}

function describe(sums) {
  const parts = [`${sums.cameras} cameras`];
  if (sums.down) parts.push(`${sums.down} offline`);
  if (sums.connecting) parts.push(`${sums.connecting} connecting`);
  if (sums.unreported) parts.push(`${sums.unreported} not reported`);
  if (sums.alerts) parts.push(`${sums.alerts} open alerts`);
  return parts.join(", ");
}

/** `iconCreateFunction` of the marker cluster group (each child marker carries its camera as `marker.camera`). */
export function clusterIcon(cluster) {
  const sums = tally(cluster.getAllChildMarkers().map((marker) => marker.camera || {}));
  const size = Math.round(34 + 8 * Math.log10(Math.max(1, sums.cameras)));
  const body = document.createElement("div");
  body.className = "cluster-body";
  body.title = describe(sums);
  body.setAttribute("aria-label", body.title);
  Object.assign(body.dataset, { cameras: sums.cameras, down: sums.down, alerts: sums.alerts });
  const count = document.createElement("span");
  count.className = "cluster-count";
  count.textContent = String(sums.cameras);
  body.append(count);
  if (sums.down) body.append(badge("cluster-down", `${sums.down} off`));
  if (sums.alerts) body.append(badge("cluster-alerts", String(sums.alerts)));
  return L.divIcon({
    html: body, iconSize: [size, size],
    className: `marker-cluster cam-cluster worst-${sums.worst}${sums.alerts ? " alerting" : ""}`,
  });
}

function badge(className, text) {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = text;
  return span;
}
