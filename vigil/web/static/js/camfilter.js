// Finding cameras among a city's thousand: search by name or id, filter by state, node and open alerts, and page
// through the result. Answered by GET /api/cameras?q=&state=&node=&alerts=open&limit=&offset= (X-Total-Count).
import { apiPage, query } from "./api.js";
import { debounce, el } from "./ui.js";

// [value (comma-separated states), label]
const STATES = [
  ["", "any state"], ["online", "online"], ["offline,failed", "offline or failed"], ["connecting", "connecting"],
  ["unknown", "not reported"], ["stopped", "stopped"], ["ended", "ended"],
];

/** The search box and filters, drawn into `container`; `onChange()` runs when any of them changes. */
export class CameraFilter {
  constructor(container, onChange, prefix = "cf") {
    this.search = el("input", {
      type: "search", id: `${prefix}-q`, placeholder: "name or id", maxlength: "100", autocomplete: "off",
      "aria-label": "Search cameras by name or id",
    });
    this.state = el("select", { id: `${prefix}-state`, "aria-label": "Camera state" },
      STATES.map(([value, label]) => el("option", { value }, label)));
    this.node = el("select", { id: `${prefix}-node`, "aria-label": "Node" }, el("option", { value: "" }, "any node"));
    this.alerts = el("input", { type: "checkbox", id: `${prefix}-alerts` });
    container.append(
      el("label", { class: "field grow-field" }, "Search", this.search),
      el("label", { class: "field" }, "State", this.state),
      el("label", { class: "field" }, "Node", this.node),
      el("label", { class: "check" }, this.alerts, "with open alerts"));
    this.search.addEventListener("input", debounce(onChange, 250));
    for (const control of [this.state, this.node, this.alerts]) control.addEventListener("change", onChange);
  }

  /** The query parameters of /api/cameras for the current choice. */
  params() {
    return {
      q: this.search.value.trim(), state: this.state.value ? this.state.value.split(",") : null,
      node: this.node.value, alerts: this.alerts.checked ? "open" : "",
    };
  }

  /** Offer the nodes that analyse `cameras` (keeps the current choice). */
  setNodes(cameras) {
    const nodes = [...new Set(cameras.map((c) => c.node).filter(Boolean))].sort();
    const known = [...this.node.options].slice(1).map((o) => o.value);
    if (nodes.join("\n") === known.join("\n")) return;
    const chosen = this.node.value;
    this.node.replaceChildren(el("option", { value: "" }, "any node"), ...nodes.map((n) => el("option", { value: n }, n)));
    if (chosen && !nodes.includes(chosen)) this.node.append(el("option", { value: chosen }, chosen));
    this.node.value = chosen;
  }
}

/** Previous / next buttons and "1–16 of 1000": `onChange()` runs when the page changes. */
export class Pager {
  constructor(container, size, onChange, prefix = "pg") {
    this.size = size;
    this.offset = 0;
    this.total = 0;
    this.prev = el("button", { type: "button", class: "small", id: `${prefix}-prev`, "aria-label": "Previous page" }, "‹ Prev");
    this.next = el("button", { type: "button", class: "small", id: `${prefix}-next`, "aria-label": "Next page" }, "Next ›");
    this.text = el("span", { class: "muted", id: `${prefix}-text`, "aria-live": "polite" });
    container.append(this.prev, this.text, this.next);
    this.prev.addEventListener("click", () => this.go(this.offset - this.size, onChange));
    this.next.addEventListener("click", () => this.go(this.offset + this.size, onChange));
  }

  go(offset, onChange) {
    this.offset = Math.max(0, Math.min(offset, Math.max(0, this.total - 1)));
    this.offset -= this.offset % this.size;
    onChange();
  }

  /** Back to the first page (the filters changed), or to another page size. */
  reset(size = this.size) {
    this.size = size;
    this.offset = 0;
  }

  /** Show where the page is among `total` matches. */
  show(total) {
    this.total = total;
    const page = Math.floor(this.offset / this.size) + 1;
    const pages = Math.max(1, Math.ceil(total / this.size));
    this.text.textContent = total
      ? `${this.offset + 1}–${Math.min(total, this.offset + this.size)} of ${total} · page ${page} of ${pages}`
      : "none";
    this.prev.disabled = this.offset === 0;
    this.next.disabled = this.offset + this.size >= total;
  }
}

/** One page of the cameras matching `filter`: `{items, total}`; steps back a page when the last one emptied. */
export async function cameraPage(filter, pager) {
  const fetchPage = () => apiPage(`/api/cameras${query({ ...filter.params(), limit: pager.size, offset: pager.offset })}`);
  let page = await fetchPage();
  if (!page.items.length && page.total && pager.offset) {
    pager.offset = Math.max(0, Math.ceil(page.total / pager.size) - 1) * pager.size;
    page = await fetchPage();
  }
  pager.show(page.total);
  return page;
}
