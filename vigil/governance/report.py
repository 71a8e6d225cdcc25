"""The transparency report (self-contained HTML: inline CSS, charts as inline SVG) and a DPIA draft (Markdown).

Counted from the audit log, in the period: searches are entries whose action is ``search`` or starts with
``search.`` (e.g. ``search.face``, ``search.person``, ``search.plate``), by action; video access is
``video.*``; exports are ``export`` (and ``export_refused``); refused feature use is ``authorisation.refused``.
Authorisations are counted by what happened in the period (requested, approved, denied, revoked, expired).
Matches are the ``face_match`` and ``plate_match`` events; alerts are all events, by kind, severity and day.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from datetime import datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy import select

from vigil.config import Config
from vigil.governance.compliance import ComplianceReport, check_compliance
from vigil.store.db import Store, utcnow
from vigil.store.schema import EventRow

MATCH_KINDS = ("face_match", "plate_match")
BIOMETRIC_FEATURES = {"live_face_match": "live face-watchlist matching", "face_search": "retrospective face search",
                      "person_search": "cross-camera person tracking"}
SEVERITY_ORDER = ("critical", "high", "warning", "medium", "info", "low")

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2330;background:#f4f6fa;margin:0}
main{max-width:1080px;margin:0 auto;padding:32px 28px 60px}
header{background:#16243d;color:#fff;padding:30px 0 26px}
header .inner{max-width:1080px;margin:0 auto;padding:0 28px}
header h1{margin:0 0 4px;font-size:28px;font-weight:650;letter-spacing:.2px}
header p{margin:0;color:#b9c6dc}
h2{font-size:19px;margin:34px 0 12px;padding-bottom:6px;border-bottom:2px solid #dde3ee}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:14px;margin-top:22px}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 3px rgba(20,30,60,.08)}
.card .n{font-size:26px;font-weight:650}.card .l{color:#5b6578;font-size:13px}
table{width:100%;border-collapse:collapse;background:#fff;border-radius:10px;overflow:hidden;
box-shadow:0 1px 3px rgba(20,30,60,.08);font-size:14px}
th,td{text-align:left;padding:8px 12px;border-bottom:1px solid #edf0f5;vertical-align:top}
th{background:#eef2f8;font-weight:600;color:#3a4457}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.tag{display:inline-block;white-space:nowrap;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;
margin:1px 2px 1px 0}
.on{background:#fde8e8;color:#a02020}.off{background:#e9edf3;color:#5b6578}.rec{background:#e4effd;color:#1e4f91}
.ok{background:#e3f5e9;color:#1c6b3a}.bad{background:#fde8e8;color:#a02020}
.chart{background:#fff;border-radius:10px;padding:10px;box-shadow:0 1px 3px rgba(20,30,60,.08)}
.chart svg{width:100%;height:auto}
.muted{color:#6b7486}.small{font-size:13px}
.two{display:grid;grid-template-columns:1fr 1fr;gap:16px;align-items:start}
footer{margin-top:40px;color:#6b7486;font-size:13px}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _tag(text: str, cls: str) -> str:
    return f'<span class="tag {cls}">{_e(text)}</span>'


def _table(headers: list[str], rows: list[list[str]], numeric: set[int] | None = None, empty: str = "none") -> str:
    """An HTML table; ``rows`` cells are HTML already (escape values before)."""
    numeric = numeric or set()
    head = "".join(f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    if not rows:
        return f'<table><tr>{head}</tr><tr><td colspan="{len(headers)}" class="muted">{_e(empty)}</td></tr></table>'
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


# ---------------------------------------------------------------- data


def authorisation_counts(governance: Any, start: datetime, end: datetime) -> dict[str, int]:
    """What happened to authorisations in [start, end)."""
    inside = lambda at: at is not None and start <= at < end  # noqa: E731
    counts = Counter[str]()
    for a in governance.authorisations.list_authorisations():
        counts["requested"] += inside(a.created_at)
        counts["approved"] += inside(a.decided_at) and a.approver is not None and a.status in ("approved", "revoked")
        counts["denied"] += inside(a.decided_at) and a.status == "denied"
        counts["revoked"] += inside(a.revoked_at)
        counts["expired"] += a.status == "approved" and inside(a.valid_until) and a.valid_until <= utcnow()
        counts["active now"] += a.state(utcnow()) == "active"
    return {k: counts[k] for k in ("requested", "approved", "denied", "revoked", "expired", "active now")}


def audit_counts(governance: Any, start: datetime, end: datetime) -> dict[str, Counter[str]]:
    """Audit actions in the period, grouped: searches, video access, exports, refusals, other."""
    groups: dict[str, Counter[str]] = {k: Counter() for k in ("searches", "video", "exports", "refused", "other")}
    for entry in governance.audit.iter_entries():
        if not start <= entry.at < end:
            continue
        action = entry.action
        if action == "search" or action.startswith("search."):
            groups["searches"][action] += 1
        elif action.startswith("video."):
            groups["video"][action] += 1
        elif action.startswith("export"):
            groups["exports"][action] += 1
        elif action.endswith("refused") or action.endswith("_refused"):
            groups["refused"][action] += 1
        else:
            groups["other"][action] += 1
    return groups


def event_rows(store: Store, start: datetime, end: datetime) -> list[tuple[str, str, datetime]]:
    with store.session() as session:
        return [(r.kind, r.severity, r.at) for r in session.execute(
            select(EventRow.kind, EventRow.severity, EventRow.at).where(EventRow.at >= start, EventRow.at < end))]


def events_chart(rows: list[tuple[str, str, datetime]], start: datetime, end: datetime) -> str:
    """Stacked bars of events per day by kind, as an inline SVG (empty string without events)."""
    if not rows:
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    span = max(1, (end - start).days + (end.time() != start.time()))
    step_days = 1 if span <= 62 else 7  # long periods: weekly bars
    days = [(start + timedelta(days=i)).date() for i in range(0, span, step_days)]
    bucket = lambda at: days[min(len(days) - 1, (at.date() - days[0]).days // step_days)]  # noqa: E731
    kinds = [k for k, _ in Counter(k for k, _, _ in rows).most_common()]
    per = {k: Counter(bucket(at) for kk, _, at in rows if kk == k) for k in kinds}
    fig, ax = plt.subplots(figsize=(10.5, 3.4), dpi=100)
    bottom = [0] * len(days)
    colours = plt.get_cmap("tab20").colors
    for i, kind in enumerate(kinds):
        values = [per[kind].get(d, 0) for d in days]
        ax.bar(range(len(days)), values, bottom=bottom, label=kind, color=colours[i % len(colours)], width=0.8)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    step = max(1, len(days) // 12)
    ax.set_xticks(range(0, len(days), step), [d.strftime("%d %b") for d in days[::step]], fontsize=9)
    ax.set_ylabel("events per day" if step_days == 1 else "events per week", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, ncol=min(4, len(kinds)), frameon=False, loc="upper left", bbox_to_anchor=(0, 1.18))
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = re.sub(r"<metadata>.*?</metadata>", "", buffer.getvalue(), flags=re.S)
    return svg[svg.index("<svg"):]


# ---------------------------------------------------------------- sections


def _cameras_section(config: Config) -> str:
    rows = []
    for cam in config.cameras:
        features = [_tag(f"recording: {cam.recording.mode}", "rec" if cam.recording.mode != "off" else "off"),
                    _tag("face recognition", "on") if cam.recognition.faces else "",
                    _tag("plate recognition", "on") if cam.recognition.plates else ""]
        analytics = [f"{len(cam.zones)} zones", f"{len(cam.lines)} lines"]
        analytics += [name for name in ("loitering", "crowd", "running", "stopped", "forbidden_class")
                      if getattr(cam.rules, name)]
        where = f"{cam.lat:.5f}, {cam.lon:.5f}" if cam.lat is not None and cam.lon is not None else "—"
        rows.append([f"<b>{_e(cam.id)}</b><br><span class='muted small'>{_e(cam.name)}</span>",
                     _e(cam.purpose or "(no purpose stated)"), _e(where), "".join(features),
                     _e(", ".join(analytics)), _e(len(cam.privacy_masks)), _tag("enabled", "ok") if cam.enabled
                     else _tag("disabled", "off")])
    return _table(["camera", "purpose", "location", "features", "analytics", "privacy masks", "state"], rows,
                  {5}, "no cameras configured")


def _compliance_section(report: ComplianceReport) -> str:
    rows = []
    for c in report.classes:
        limit = "no limit set" if c.limit_hours is None else "not stored" if c.limit_hours == 0 else \
            f"{c.limit_hours:g} h"
        status = _tag("within limit", "ok") if c.ok else _tag(f"{c.over_limit} beyond limit", "bad")
        rows.append([_e(c.label), _e(c.items), _e(f"{c.oldest:%Y-%m-%d %H:%M}" if c.oldest else "—"), _e(limit),
                     status, _e(c.held), _e(c.note)])
    return _table(["data class", "items held", "oldest (UTC)", "limit", "status", "under hold", "note"], rows, {1, 5})


def _counter_rows(counter: Counter[str]) -> list[list[str]]:
    return [[f"<code>{_e(k)}</code>", _e(v)] for k, v in counter.most_common()]


def render_transparency_report(config: Config, store: Store, governance: Any, start: datetime, end: datetime,
                               compliance: ComplianceReport | None = None) -> str:
    """The transparency report for [start, end) as one self-contained HTML page."""
    compliance = compliance or check_compliance(config, store, governance=governance)
    auths = authorisation_counts(governance, start, end)
    audit = audit_counts(governance, start, end)
    events = event_rows(store, start, end)
    chain = governance.audit.verify()
    matches = Counter(k for k, _, _ in events if k in MATCH_KINDS)
    by_kind = Counter(k for k, _, _ in events)
    by_severity = Counter(s for _, s, _ in events)
    severity_rows = [[_e(s), _e(n)] for s, n in sorted(by_severity.items(),
                     key=lambda kv: SEVERITY_ORDER.index(kv[0]) if kv[0] in SEVERITY_ORDER else 99)]
    chart = events_chart(events, start, end)
    chain_text = (_tag("verified", "ok") + f" {chain.entries} entries, {chain.checkpoints} signed checkpoints"
                  if chain.ok else _tag("BROKEN", "bad") + f" at entry {_e(chain.first_bad_seq)}: {_e(chain.reason)}")
    cards = [(len(config.cameras), "cameras"), (sum(audit["searches"].values()), "searches"),
             (sum(matches.values()), "watchlist / hotlist matches"), (len(events), "events and alerts"),
             (auths["approved"], "authorisations approved"), (sum(audit["exports"].values()), "evidence exports")]
    period = f"{start:%d %B %Y %H:%M} – {end:%d %B %Y %H:%M} UTC"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Vigil transparency report, {_e(period)}</title><style>{CSS}</style></head><body>",
        f"<header><div class='inner'><h1>Transparency report</h1><p>{_e(period)} · generated "
        f"{utcnow():%Y-%m-%d %H:%M} UTC</p></div></header><main>",
        "<div class='cards'>" + "".join(f"<div class='card'><div class='n'>{_e(n)}</div><div class='l'>{_e(label)}"
                                        f"</div></div>" for n, label in cards) + "</div>",
        "<h2>Cameras, purposes and enabled features</h2>", _cameras_section(config),
        "<h2>Authorisations</h2><p class='muted small'>Live face matching, retrospective face search and "
        "cross-camera person tracking need an approved authorisation (four-eyes).</p>",
        _table(["requested", "approved", "denied", "revoked", "expired", "active now"],
               [[_e(auths[k]) for k in ("requested", "approved", "denied", "revoked", "expired", "active now")]],
               set(range(6))),
        "<h2>Searches and access to video</h2><p class='muted small'>Counted from the audit log: actions "
        "<code>search</code> and <code>search.*</code>, <code>video.*</code>, <code>export*</code>, and refusals "
        "(<code>*_refused</code>, <code>authorisation.refused</code>).</p>",
        "<div class='two'>", _table(["search type", "count"], _counter_rows(audit["searches"]), {1},
                                    "no searches in the period"),
        _table(["video access / export / refusal", "count"],
               _counter_rows(audit["video"] + audit["exports"] + audit["refused"]), {1}, "none in the period"),
        "</div>",
        "<h2>Matches and alerts</h2>",
        _table(["match kind", "count"], [[_e(k), _e(matches.get(k, 0))] for k in MATCH_KINDS], {1}),
        "<br>", f"<div class='chart'>{chart}</div>" if chart else "<p class='muted'>No events in the period.</p>",
        "<br><div class='two'>", _table(["event kind", "count"], [[_e(k), _e(n)] for k, n in by_kind.most_common()],
                                        {1}, "no events"),
        _table(["severity", "count"], severity_rows, {1}, "no events"), "</div>",
        "<h2>Data held and retention compliance</h2>",
        f"<p>{_tag('compliant', 'ok') if compliance.ok else _tag('not compliant', 'bad')} "
        f"<span class='muted small'>checked {compliance.at:%Y-%m-%d %H:%M} UTC; items under an evidence hold are "
        "exempt</span></p>", _compliance_section(compliance),
        f"<h2>Audit chain</h2><p>{chain_text}</p>",
        "<footer>Generated by Vigil. Every view of video, search, export, watchlist change, authorisation and "
        "configuration change is recorded in a hash-chained audit log with signed checkpoints.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(parts)


# ---------------------------------------------------------------- DPIA


def _hours(value: float | None) -> str:
    return "no limit set (set one)" if value is None else f"{value:g} hours ({value / 24:g} days)"


def render_dpia(config: Config) -> str:
    """A Data Protection Impact Assessment draft (Markdown), pre-filled from the configuration."""
    r, rec = config.retention, config.recognition
    faces = [c.id for c in config.cameras if c.recognition.faces]
    plates = [c.id for c in config.cameras if c.recognition.plates]
    masked = [c.id for c in config.cameras if c.privacy_masks]
    lines = ["# Data Protection Impact Assessment — draft", "",
             "_Pre-filled by Vigil from the configuration. Review every section; text in italics is guidance._", "",
             "## 1. Purposes of the processing", ""]
    purposes = sorted({c.purpose for c in config.cameras if c.purpose})
    lines += [f"- {p}" for p in purposes] or ["- _No camera states a purpose: set `purpose` for every camera._"]
    lines += ["", "## 2. Cameras and locations", "", "| camera | name | location | purpose | recording | masks |",
              "|---|---|---|---|---|---|"]
    for c in config.cameras:
        where = f"{c.lat:.5f}, {c.lon:.5f}" if c.lat is not None and c.lon is not None else "not set"
        lines.append(f"| {c.id} | {c.name or '-'} | {where} | {c.purpose or '(none)'} | {c.recording.mode} | "
                     f"{len(c.privacy_masks)} |")
    lines += ["", "## 3. Categories of personal data", "",
              "- Video images of people and vehicles in the cameras' fields of view (recordings, event clips, "
              "snapshots).",
              "- Metadata: object tracks (class, time, path, colour), events and alerts, counts.",
              f"- Licence-plate reads (text, time, place): {'cameras ' + ', '.join(plates) if plates else 'off'}.",
              f"- Biometric data (face embeddings, special category under GDPR Art. 9): "
              f"{'live matching on cameras ' + ', '.join(faces) if faces else 'off'}; embeddings of unmatched "
              f"faces {'are stored for retrospective search' if rec.faces.store_sightings else 'are not stored'}.",
              "- Accounts and the audit log of the system's users.", "",
              "## 4. Recipients", "",
              "- Operators (live view and alerts for assigned cameras), investigators (search and playback inside a "
              "case), supervisors (approve authorisations), auditors (audit log and reports, no video), "
              "administrators (configuration, no video).",
              "- External recipients of evidence exports (courts, police): only redacted exports with a manifest "
              "and audit reference. _List the organisations here._", "",
              "## 5. Retention per data class", "", "| data class | limit |", "|---|---|",
              f"| continuous video | {_hours(r.continuous_hours)} |",
              f"| event clips | {_hours(r.event_clips_hours)} |",
              f"| snapshots | {_hours(r.snapshots_hours)} |", f"| events | {_hours(r.events_hours)} |",
              f"| track summaries and sightings | {_hours(r.sightings_hours)} |",
              f"| plate reads not on a hotlist | {_hours(rec.plates.read_retention_hours)} |",
              f"| face embeddings of unmatched people | "
              f"{_hours(r.sightings_hours) if rec.faces.store_sightings else 'not stored'} |", ""]
    per_camera = [c for c in config.cameras if c.recording.max_age_hours or c.recording.max_size_gb]
    lines += [f"- Camera {c.id}: recordings at most {_hours(c.recording.max_age_hours)}"
              + (f", {c.recording.max_size_gb:g} GB" if c.recording.max_size_gb else "") for c in per_camera]
    lines += ["- Evidence holds exempt the data of a case from deletion until released.", "",
              "## 6. Biometric and sensitive features, and their legal basis", "",
              "| feature | enabled | requirement |", "|---|---|---|"]
    lines += [f"| {label} | {'on cameras ' + ', '.join(faces) if key == 'live_face_match' and faces else 'on request'} "
              f"| an approved authorisation per case (legal basis, case reference, scope, validity window; approver "
              f"≠ requester) |" for key, label in BIOMETRIC_FEATURES.items()]
    lines += [f"| plate hotlist matching | {'cameras ' + ', '.join(plates) if plates else 'off'} | each hotlist entry "
              "records its reason and authority (warrant, case or order) and may expire |", "",
              "_State the legal basis for each purpose (GDPR Art. 6, and Art. 9(2) / national law for biometric "
              "processing; for law enforcement the LED Art. 8 and 10)._", "",
              "## 7. Risks and mitigations", "", "| risk | mitigation in Vigil |", "|---|---|",
              f"| Filming private spaces (windows, doorways) | privacy masks blacked out before analysis"
              f"{' on ' + ', '.join(masked) if masked else ' (none configured)'} |",
              "| Function creep, mass biometric surveillance | face features off unless an authorisation is active; "
              "four-eyes approval; refusals audited |",
              "| Misuse by staff | role-based access, camera grants, hash-chained audit log with signed checkpoints, "
              "transparency report |",
              "| Over-retention | per-class limits applied automatically; `vigil report compliance` checks them |",
              "| Disclosure of bystanders in evidence | exports blur every face and plate except the subject's; "
              "manifest with sha256 and audit reference |",
              "| Misidentification | match thresholds calibrated on real data; matches are alerts for a human to "
              "review, never automatic action |",
              "| Security breach | passwords hashed (argon2), sessions expire, secrets redacted from logs |", "",
              "## 8. Consultation and sign-off", "", "- Data protection officer: _name, date, advice_",
              "- Decision: _approved / approved with conditions / rejected_", ""]
    return "\n".join(lines)
