// Small DOM helpers shared by the pages (no framework).

/** Create an element: el("a", {href: "/x", class: "link"}, "text", child). `on*` attributes become listeners. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** "2026-01-15 09:00:12" in the browser's time zone (seconds precision). */
export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} `
    + `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** Value for an <input type="datetime-local"> from a Date (local time). */
export function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:`
    + `${pad(date.getMinutes())}`;
}

/** ISO-8601 UTC from an <input type="datetime-local"> value, or "" when empty. */
export function fromLocalInput(value) {
  return value ? new Date(value).toISOString() : "";
}

export function humanKind(kind) {
  return String(kind || "").replaceAll("_", " ");
}

export function badge(text, cls = "") {
  return el("span", { class: `badge ${cls}` }, text);
}

export function stateDot(state) {
  return el("span", { class: `dot ${state || "unknown"}`, title: state || "unknown", "aria-label": `state ${state}` });
}

/** A short-lived message in the corner (kind: "", "ok", "bad"). */
export function toast(message, kind = "") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = el("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const note = el("div", { class: `toast ${kind}` }, message);
  box.append(note);
  setTimeout(() => note.remove(), 5000);
}

/** Show an error sentence in an element (role="alert"), or clear it with "". */
export function showError(target, message) {
  target.textContent = message || "";
}

/** Debounce: run `fn` at most once per `ms`, after the last call. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export const SEVERITIES = ["critical", "warning", "info"];
