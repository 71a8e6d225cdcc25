// Login page: POST /api/auth/login, then go to ?next= (a local path) or the map.
import { api } from "./api.js";
import { $ } from "./ui.js";

function nextPage() {
  const next = new URLSearchParams(location.search).get("next") || "";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/login") ? next : "/map";
}

$("#login-form").addEventListener("submit", async (submit) => {
  submit.preventDefault();
  const error = $("#login-error");
  const button = $("#login-submit");
  error.textContent = "";
  button.disabled = true;
  try {
    await api("/api/auth/login", {
      method: "POST", redirect: false,
      body: { username: $("#username").value.trim(), password: $("#password").value },
    });
    location.assign(nextPage());
  } catch (failure) {
    const wait = failure.retryAfter ? ` (try again in ${failure.retryAfter} s)` : "";
    error.textContent = failure.message + (failure.status === 429 && !/\d/.test(failure.message) ? wait : "");
    $("#password").select();
  } finally {
    button.disabled = false;
  }
});
