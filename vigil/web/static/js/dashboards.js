// Dashboards: people per zone over time (/api/counts), line crossings by direction (/api/lines), the heatmap.
import { api, query } from "./api.js";
import { lineChart, PALETTE } from "./chart.js";
import { boot } from "./nav.js";
import { $, el } from "./ui.js";

const REFRESH_MS = 15000;

function seriesName(s) {
  return `${s.zone ?? "whole view"} · ${s.label}`;
}

async function counts(camera) {
  const span = $("#d-window").value;
  const params = { camera, bucket_s: $("#d-bucket").value };
  if (span !== "all") params.from = new Date(Date.now() - Number(span) * 1000).toISOString();
  const answer = await api(`/api/counts${query(params)}`);
  const series = (answer.series || []).map((s, i) => ({
    name: seriesName(s), colour: PALETTE[i % PALETTE.length],
    points: (s.points || []).map(([t, max]) => [new Date(t).getTime(), max]),
  }));
  const width = Math.max(320, $("#counts-chart").clientWidth);
  $("#counts-chart").replaceChildren(lineChart(series, { width, height: 280, yLabel: "People (max per bucket)" }));
  $("#counts-legend").replaceChildren(...series.map((s) => el("span", { style: `--c:${s.colour}` }, s.name)));
}

async function lines(camera) {
  const answer = await api(`/api/lines${query({ camera })}`);
  const entries = Object.entries(answer.lines || {});
  const box = $("#lines-table");
  if (entries.length === 0) {
    box.replaceChildren(el("p", { class: "muted" }, "No counting lines on this camera."));
    return;
  }
  const total = (side) => Object.values(side || {}).reduce((a, b) => a + b, 0);
  const biggest = Math.max(1, ...entries.flatMap(([, d]) => [total(d.in), total(d.out)]));
  const rows = entries.flatMap(([name, directions]) => ["in", "out"].map((direction) => {
    const n = total(directions[direction]);
    const labels = Object.entries(directions[direction] || {}).map(([label, k]) => `${label} ${k}`).join(", ");
    return [
      el("span", {}, `${name} · ${direction}`),
      el("div", { class: `bar ${direction}`, style: `width:${(100 * n) / biggest}%`, title: labels || "none" }),
      el("strong", { "data-line": name, "data-direction": direction }, String(n)),
    ];
  }));
  box.replaceChildren(el("div", { class: "bars" }, ...rows.flat()),
    el("p", { class: "muted" }, "Totals since the pipeline started; hover a bar for the classes."));
}

function heatmap(camera) {
  const source = $("#d-heat").value;
  const img = $("#heatmap");
  img.onerror = () => {
    $("#heat-note").textContent = source === "density"
      ? "No crowd density map for this camera: its crowd rule counts by detections, or no map is made yet."
      : "No live analysis of this camera on this server yet.";
  };
  img.onload = () => { $("#heat-note").textContent = ""; };
  img.src = `/api/cameras/${encodeURIComponent(camera)}/heatmap.png?source=${source}&t=${Date.now()}`;
}

async function refresh() {
  const camera = $("#d-camera").value;
  if (!camera) return;
  heatmap(camera);
  const results = await Promise.allSettled([counts(camera), lines(camera)]);
  const failed = results.filter((r) => r.status === "rejected").map((r) => r.reason.message);
  $("#dash-error").textContent = failed.join(" ");
}

async function main() {
  await boot("/dashboards");
  let cameras = [];
  try {
    cameras = await api("/api/cameras");
  } catch (error) {
    $("#dash-error").textContent = error.message;
  }
  $("#d-camera").replaceChildren(...cameras.map((c) => el("option", { value: c.id }, c.name)));
  const wanted = new URLSearchParams(location.search).get("camera");
  if (wanted && cameras.some((c) => c.id === wanted)) $("#d-camera").value = wanted;
  if (cameras.length === 0) $("#dash-error").textContent = "No camera to show.";
  for (const id of ["#d-camera", "#d-window", "#d-bucket", "#d-heat"]) $(id).addEventListener("change", refresh);
  $("#d-refresh").addEventListener("click", refresh);
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

main();
