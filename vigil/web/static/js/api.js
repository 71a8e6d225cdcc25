// Talking to the Vigil API: JSON in and out, the server's one-sentence errors, redirect to login on 401.

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** Turn a FastAPI error body ({detail: str | [{loc, msg}]}) into one readable sentence. */
export function describeDetail(body, fallback) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      const where = (d.loc || []).filter((p) => p !== "body").join(".");
      return where ? `${where}: ${d.msg}` : d.msg;
    }).join("; ");
  }
  return fallback;
}

export function loginUrl() {
  const next = location.pathname + location.search;
  return next.startsWith("/login") ? "/login" : `/login?next=${encodeURIComponent(next)}`;
}

/**
 * Call the API. `body` is sent as JSON, `form` (FormData) as multipart. Returns the parsed JSON (or null for
 * an empty answer); throws ApiError(status, detail) on a 4xx/5xx. A 401 sends the browser to the login page.
 */
export async function api(path, options = {}) {
  return (await call(path, options)).data;
}

/** A page of a list that answers `X-Total-Count` (GET /api/cameras): `{items, total}`. */
export async function apiPage(path, options = {}) {
  const { data, response } = await call(path, options);
  const total = Number(response.headers.get("X-Total-Count"));
  return { items: data || [], total: Number.isFinite(total) ? total : (data || []).length };
}

async function call(path, { method = "GET", body, form, redirect = true } = {}) {
  const options = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (form !== undefined) {
    options.body = form;
  } else if (body !== undefined) {
    options.body = JSON.stringify(body);
    options.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new ApiError(0, `the server cannot be reached (${error.message})`);
  }
  if (response.status === 401 && redirect) {
    location.assign(loginUrl());
    throw new ApiError(401, "not signed in");
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, describeDetail(data, `${response.status} ${response.statusText}`));
    error.retryAfter = response.headers.get("Retry-After");
    throw error;
  }
  return { data, response };
}

/** Build a query string from an object, leaving out empty values; arrays repeat the key. */
export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => search.append(key, v));
    else search.set(key, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Open the live event stream; `onEvent(eventOut)` for each alert. Reconnects on its own (EventSource). */
export function eventStream(onEvent, onState = () => {}) {
  const source = new EventSource("/api/events/stream", { withCredentials: true });
  source.addEventListener("vigil", (message) => {
    try { onEvent(JSON.parse(message.data)); } catch (error) { console.warn("bad event", error); }
  });
  source.onopen = () => onState("open");
  source.onerror = () => onState(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  return source;
}
