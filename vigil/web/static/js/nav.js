// The nav bar on every page: links, the signed-in user, logout. `boot()` returns the user or redirects to login.
import { api, loginUrl } from "./api.js";
import { el } from "./ui.js";

// The permission each page needs (a convenience only: the API enforces every permission itself).
const PAGES = [
  { href: "/map", label: "Map", needs: null },
  { href: "/alerts", label: "Alerts", needs: "events.read" },
  { href: "/live", label: "Live", needs: "video.live" },
  { href: "/search", label: "Search", needs: "search" },
  { href: "/dashboards", label: "Dashboards", needs: "events.read" },
  { href: "/admin/cameras", label: "Camera admin", needs: "config.manage" },
  { href: "/nodes", label: "Nodes", needs: ["config.manage", "authorisation.approve"] },
  // accountability: `needs` may list several permissions (any one shows the page)
  { href: "/authorisations", label: "Authorisations", needs: "authorisation.read" },
  { href: "/holds", label: "Holds", needs: ["export", "authorisation.approve", "audit.read"] },
  { href: "/audit", label: "Audit", needs: "audit.read" },
  { href: "/reports", label: "Reports", needs: "reports.read" },
];

function visible(page, user) {
  if (page.needs === null || !Array.isArray(user.permissions)) return true;
  const needs = Array.isArray(page.needs) ? page.needs : [page.needs];
  return needs.some((permission) => user.permissions.includes(permission));
}

function render(user, active) {
  const roles = user.roles || [];
  const links = PAGES.filter((page) => visible(page, user)).map((page) => el("a", {
    class: "link", href: page.href, "aria-current": page.href === active ? "page" : null,
  }, page.label));
  const logout = el("button", { class: "small", type: "button", id: "logout", onclick: signOut }, "Log out");
  return el("nav", { class: "nav", "aria-label": "Main" },
    el("a", { class: "brand", href: "/map", "aria-label": "Vigil home" }, "VIGIL"),
    ...links,
    el("span", { class: "spacer" }),
    el("span", { class: "user", id: "nav-user" }, el("strong", {}, user.username), ` · ${roles.join(", ")}`),
    logout);
}

async function signOut() {
  try {
    await api("/api/auth/logout", { method: "POST", redirect: false });
  } finally {
    location.assign("/login");
  }
}

/** Check the session, draw the nav bar at the top of <body>, and return the user ({username, roles, cameras}). */
export async function boot(active) {
  let user;
  try {
    user = await api("/api/auth/me", { redirect: false });
  } catch {
    location.assign(loginUrl());
    throw new Error("not signed in");
  }
  document.body.prepend(render(user, active));
  return user;
}

/** True when the user's role carries `permission` (as told by /api/auth/me). */
export function can(user, permission) {
  return Array.isArray(user.permissions) && user.permissions.includes(permission);
}
