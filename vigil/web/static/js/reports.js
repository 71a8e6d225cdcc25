// Reports: the transparency report for a chosen period (the HTML route in an iframe), the retention compliance
// table (/api/reports/compliance) and the DPIA draft.
import { api, query } from "./api.js";
import { boot } from "./nav.js";
import { $, badge, el, formatTime, fromLocalInput, showError, toLocalInput } from "./ui.js";

const DAY_MS = 24 * 3600 * 1000;

function limitText(hours) {
  if (hours === null || hours === undefined) return "no limit";
  if (hours === 0) return "not stored";
  return hours % 24 === 0 ? `${hours / 24} d` : `${hours} h`;
}

function presetPeriod() {
  const preset = $("#p-preset").value;
  if (preset === "custom") return;
  const to = new Date();
  $("#p-to").value = toLocalInput(to);
  $("#p-from").value = toLocalInput(new Date(to.getTime() - Number(preset) * DAY_MS));
}

function showReport() {
  showError($("#reports-error"), "");
  const preset = $("#p-preset").value;
  // a preset period ends now (on the server), so the report includes what happened this minute
  const from = preset === "custom" ? fromLocalInput($("#p-from").value)
    : new Date(Date.now() - Number(preset) * DAY_MS).toISOString();
  const to = preset === "custom" ? fromLocalInput($("#p-to").value) : "";
  if (from && to && new Date(to) <= new Date(from)) {
    showError($("#reports-error"), "The end of the period must be after its start.");
    return;
  }
  const url = `/api/reports/transparency${query({ from, to })}`;
  $("#report-frame").src = url;
  $("#report-open").href = url;
}

async function compliance() {
  try {
    const report = await api("/api/reports/compliance");
    $("#compliance-ok").replaceWith(Object.assign(badge(report.ok ? "compliant" : "not compliant",
      report.ok ? "auth-active" : "bad"), { id: "compliance-ok" }));
    $("#compliance-at").textContent = `Checked ${formatTime(report.at)}; data under an evidence hold is exempt.`;
    $("#compliance-rows").replaceChildren(...report.classes.map((c) => el("tr", { "data-class": c.class },
      el("td", { title: c.note || "" }, c.label),
      el("td", { class: "mono", title: c.oldest ? `oldest ${formatTime(c.oldest)}` : "" }, String(c.items),
        c.held ? el("div", { class: "muted" }, `${c.held} held`) : ""),
      el("td", { class: "nowrap" }, limitText(c.limit_hours)),
      el("td", { title: c.ok ? "within its limit" : (c.examples || []).join(", ") },
        c.ok ? badge("ok", "auth-active") : badge(`${c.over_limit} over`, "bad")))));
  } catch (error) {
    showError($("#reports-error"), `Compliance: ${error.message}`);
  }
}

async function main() {
  await boot("/reports");
  presetPeriod();
  $("#p-preset").addEventListener("change", () => {
    presetPeriod();
    if ($("#p-preset").value !== "custom") showReport();
  });
  for (const input of [$("#p-from"), $("#p-to")]) input.addEventListener("change", () => { $("#p-preset").value = "custom"; });
  $("#period-form").addEventListener("submit", (event) => {
    event.preventDefault();
    showReport();
  });
  showReport();
  await compliance();
}

main();
