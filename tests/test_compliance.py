"""Retention compliance per data class: within limits, beyond them, and exempt under an evidence hold."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
import yaml
from typer.testing import CliRunner

from vigil.config import load_config
from vigil.governance.compliance import check_compliance
from vigil.governance.evidence_commands import report_app
from vigil.governance.service import open_governance
from vigil.store.db import open_store, utcnow
from vigil.store.recognition_schema import SightingRow
from vigil.store.recording_schema import SegmentRow
from vigil.store.recordings import RecordingIndex
from vigil.store.retention import Retention, RetentionPolicy
from vigil.store.schema import EventRow, TrackRow

CONFIG = {
    "data_dir": "data",
    "retention": {"continuous_hours": 48, "events_hours": 720, "snapshots_hours": 24, "sightings_hours": 720},
    "cameras": [{"id": "cam1", "url": "rtsp://cam1/stream", "purpose": "public order",
                 "recording": {"mode": "continuous", "max_age_hours": 24}},
                {"id": "cam2", "url": "rtsp://cam2/stream", "purpose": "traffic"}],
}


@pytest.fixture
def site(tmp_path):
    path = tmp_path / "vigil.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    config = load_config(path)
    store = open_store(config.store.database, data_dir=config.data_dir)
    yield path, config, store
    store.close()


def add_segment(store, camera: str, age_h: float, kind: str = "continuous") -> None:
    start = utcnow() - timedelta(hours=age_h)
    with store.session() as s:
        s.add(SegmentRow(camera_id=camera, start=start, end=start + timedelta(seconds=10), size_bytes=1000,
                         path=f"recordings/{camera}/{age_h}-{kind}.mp4", keyframes=1, codec="h264", kind=kind))


def add_event(store, age_h: float, n: int) -> None:
    with store.session() as s:
        s.add(EventRow(id=f"ev{n}", kind="line_cross", camera_id="cam2", at=utcnow() - timedelta(hours=age_h)))


def add_sighting(store, kind: str, age_h: float, plate: str | None = None, on_list: bool = False) -> None:
    at = utcnow() - timedelta(hours=age_h)
    with store.session() as s:
        s.add(SightingRow(kind=kind, camera_id="cam2", start=at, end=at + timedelta(seconds=3), plate_text=plate,
                          on_list=on_list, embedding=b"\0" * 512 if kind == "face" else None))


def test_inside_limits_is_ok(site):
    _, config, store = site
    add_segment(store, "cam1", 2)
    add_segment(store, "cam2", 40)  # cam2 has no camera limit: the class limit (48 h) applies
    add_event(store, 100, 1)
    add_sighting(store, "plate", 10, "AB123CD")
    with store.session() as s:
        s.add(TrackRow(camera_id="cam2", track_id=1, label="person", first_seen=utcnow() - timedelta(hours=5),
                       last_seen=utcnow() - timedelta(hours=5)))
    report = check_compliance(config, store, hotlist_texts=[])
    assert report.ok, report.to_dict()
    continuous = report.get("continuous")
    assert continuous.items == 2 and continuous.limit_hours == 48 and "cam1: 24 h" in continuous.note
    assert 39.9 < continuous.oldest_age_hours < 40.1
    assert report.get("tracks").items == 1 and report.get("plate_reads").limit_hours == 72


def test_over_age_items_are_reported(site):
    _, config, store = site
    add_segment(store, "cam1", 30)  # beyond cam1's 24 h, inside the class's 48 h
    add_event(store, 800, 1)
    add_sighting(store, "plate", 80, "XY999ZZ")  # not on a hotlist, beyond 72 h
    add_sighting(store, "plate", 80, "HOT1234")  # on a hotlist now: kept
    add_sighting(store, "face", 1)  # store_sightings is off: must not be stored at all
    snapshot = config.data_dir / "snapshots" / "cam2" / "old.jpg"
    snapshot.parent.mkdir(parents=True)
    snapshot.write_bytes(b"\xff\xd8")
    old = (utcnow() - timedelta(hours=30)).timestamp()
    os.utime(snapshot, (old, old))
    report = check_compliance(config, store, hotlist_texts=["HOT1234"])
    assert not report.ok
    over = {c.data_class: c.over_limit for c in report.classes}
    assert over == {"continuous": 1, "event_clips": 0, "snapshots": 1, "events": 1, "plate_reads": 1,
                    "face_sightings": 1, "tracks": 0}
    assert report.get("continuous").examples[0].startswith("recordings/cam1/")
    assert report.get("plate_reads").items == 1  # the hotlisted read is not in this class
    assert report.get("face_sightings").limit_hours == 0


def test_evidence_hold_exempts(site):
    _, config, store = site
    add_segment(store, "cam1", 30)
    add_event(store, 800, 1)
    retention = Retention(RecordingIndex(store, config.data_dir), RetentionPolicy())
    now = utcnow()
    retention.add_hold("CASE-1", "ines", "evidence", now - timedelta(hours=900), now, camera_id=None)
    report = check_compliance(config, store, hotlist_texts=[])
    assert report.ok
    assert report.get("continuous").held == 1 and report.get("events").held == 1


def test_face_sightings_need_an_authorisation_when_stored(site, tmp_path):
    _, config, store = site
    config.recognition.faces.store_sightings = True
    gov = open_governance(store, config.data_dir)
    gov.users.create("ines", "correct horse battery", "investigator", "admin", cameras=["*"])
    gov.users.create("sam", "correct horse battery", "supervisor", "admin", cameras=["*"])
    add_sighting(store, "face", 1)
    assert check_compliance(config, store, governance=gov, hotlist_texts=[]).get("face_sightings").over_limit == 1
    now = utcnow()
    auth = gov.authorisations.request("ines", legal_basis="order 1", case_ref="C-1", purpose="search",
                                      features=["face_search"], cameras=["cam2"], valid_from=now - timedelta(hours=3),
                                      valid_until=now + timedelta(hours=3))
    gov.authorisations.approve(auth.id, "sam")
    assert check_compliance(config, store, governance=gov, hotlist_texts=[]).ok


def test_cli_exits_1_when_over_limit(site):
    path, _, store = site
    runner = CliRunner()
    ok = runner.invoke(report_app, ["compliance", "-c", str(path), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["ok"] is True
    add_event(store, 800, 1)
    bad = runner.invoke(report_app, ["compliance", "-c", str(path)])
    assert bad.exit_code == 1 and "NOT compliant" in bad.output
