// A small hand-written SVG line chart (time on x, counts on y); no chart library.

const NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#4aa3ff", "#f0b429", "#2fbf71", "#ef5350", "#b48cff", "#39c5cf", "#ff8a3d", "#c3d0dc"];

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceStep(range, ticks) {
  const raw = range / ticks;
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

function clock(ms, spanMs) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return spanMs < 600000 ? `${hm}:${pad(d.getSeconds())}` : hm;
}

/**
 * Draw `series` ([{name, points: [[ms, value], ...]}]) as lines into an <svg class="chart">.
 * Returns the svg element; each series' path carries data-series and data-points.
 */
export function lineChart(series, { width = 640, height = 240, yLabel = "" } = {}) {
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": yLabel });
  const margin = { left: 40, right: 12, top: 10, bottom: 24 };
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) {
    root.append(svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "No counts in this window yet."));
    return root;
  }
  const x0 = Math.min(...all.map((p) => p[0]));
  const x1 = Math.max(...all.map((p) => p[0]), x0 + 1000);
  const yMax = Math.max(1, ...all.map((p) => p[1]));
  const yStep = niceStep(yMax, 4);
  const yTop = Math.ceil(yMax / yStep) * yStep;
  const sx = (t) => margin.left + ((t - x0) / (x1 - x0)) * (width - margin.left - margin.right);
  const sy = (v) => height - margin.bottom - (v / yTop) * (height - margin.top - margin.bottom);
  for (let v = 0; v <= yTop + 1e-9; v += yStep) {
    root.append(svg("line", { class: "grid", x1: margin.left, x2: width - margin.right, y1: sy(v), y2: sy(v) }));
    root.append(svg("text", { x: margin.left - 6, y: sy(v) + 4, "text-anchor": "end" }, String(Math.round(v * 100) / 100)));
  }
  const ticks = 5;
  for (let i = 0; i <= ticks; i += 1) {
    const t = x0 + ((x1 - x0) * i) / ticks;
    root.append(svg("text", { x: sx(t), y: height - 6, "text-anchor": i === 0 ? "start" : i === ticks ? "end" : "middle" },
      clock(t, x1 - x0)));
  }
  root.append(svg("line", { class: "axis", x1: margin.left, x2: width - margin.right, y1: sy(0), y2: sy(0) }));
  series.forEach((s, i) => {
    const points = [...s.points].sort((a, b) => a[0] - b[0]);
    const d = points.map(([t, v], j) => `${j ? "L" : "M"}${sx(t).toFixed(1)},${sy(v).toFixed(1)}`).join(" ");
    const path = svg("path", {
      d, fill: "none", stroke: s.colour || PALETTE[i % PALETTE.length], "stroke-width": 2, "stroke-linejoin": "round",
      "data-series": s.name, "data-points": String(points.length),
    });
    path.append(svg("title", {}, s.name));
    root.append(path);
  });
  return root;
}
