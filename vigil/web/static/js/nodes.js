// Nodes: the camera workers as their last heartbeats described them (GET /api/nodes), refreshed every 5 s.
import { api } from "./api.js";
import { boot } from "./nav.js";
import { $, badge, el } from "./ui.js";

const REFRESH_MS = 5000;
const STATE_ORDER = ["offline", "failed", "connecting", "unknown", "ended", "stopped", "online"];

function age(seconds) {
  if (seconds < 1) return "just now";
  if (seconds < 120) return `${Math.round(seconds)} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function cameras(node) {
  const states = Object.entries(node.states).sort(([a], [b]) => STATE_ORDER.indexOf(a) - STATE_ORDER.indexOf(b));
  const hidden = node.camera_count - node.cameras.length;
  return el("td", { class: "node-cameras" },
    el("details", {},
      el("summary", {}, `${node.camera_count} camera${node.camera_count === 1 ? "" : "s"}`,
        states.length ? ` · ${states.map(([state, n]) => `${n} ${state}`).join(", ")}` : ""),
      node.cameras.map((id) => el("a", { href: `/live?camera=${encodeURIComponent(id)}`, class: "mono" }, id)).flatMap((a) => [a, " "]),
      hidden > 0 ? el("div", {}, `and ${hidden} not granted to you`) : ""));
}

function row(node) {
  const cpuPerCore = node.cores ? node.load_1m / node.cores : 0;
  return el("tr", { "data-node": node.node, class: node.lost ? "lost" : "" },
    el("td", {}, el("strong", {}, node.node), el("div", { class: "muted" }, `${node.host} · ${node.cores} cores`)),
    el("td", {}, node.lost ? badge("lost", "bad") : badge("reporting", "st-resolved")),
    cameras(node),
    el("td", { class: "num" }, `${node.cpu_percent.toFixed(0)} %`),
    el("td", { class: "num", title: `${cpuPerCore.toFixed(2)} per core` }, node.load_1m.toFixed(2)),
    el("td", { class: "num" }, node.analysed_fps.toFixed(1)),
    el("td", { class: "num" }, String(node.drops)),
    el("td", { class: "num" }, `${Math.round(node.rss_mb)} MB`),
    el("td", { class: "num" }, age(node.age_s)));
}

async function load() {
  try {
    const nodes = await api("/api/nodes");
    const open = new Set([...document.querySelectorAll("#node-rows tr:has(details[open])")].map((tr) => tr.dataset.node));
    $("#node-rows").replaceChildren(...nodes.map(row));
    for (const tr of $("#node-rows").children) if (open.has(tr.dataset.node)) tr.querySelector("details").open = true;
    const lost = nodes.filter((n) => n.lost).length;
    $("#node-count").textContent = String(nodes.length);
    $("#lost-count").textContent = `${lost} lost`;
    $("#lost-count").classList.toggle("hidden", lost === 0);
    $("#nodes-empty").classList.toggle("hidden", nodes.length > 0);
    $("#nodes-status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    $("#nodes-error").textContent = "";
  } catch (error) {
    $("#nodes-error").textContent = error.message;
  }
}

async function main() {
  await boot("/nodes");
  await load();
  setInterval(load, REFRESH_MS);
}

main();
