"""``vigil lists …`` (watchlists and hotlists) and ``vigil search …`` (forensic search): thin Typer + rich layers.

Mounted by ``vigil.cli``: ``app.add_typer(lists_app, name="lists")`` and ``app.add_typer(search_app, name="search")``.
User errors are ``VigilError``s (one line, printed by ``vigil.cli.main``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from vigil.config import Config, load_config
from vigil.errors import VigilError

if TYPE_CHECKING:
    from vigil.store.db import Store
    from vigil.store.lists import ListStore
    from vigil.store.search import SearchPage, SearchQuery
    from vigil.vision.face_detect import FaceFinder
    from vigil.vision.face_embed import FaceEmbedder

lists_app = typer.Typer(help="Face watchlists and plate hotlists.", no_args_is_help=True)
search_app = typer.Typer(help="Forensic search over tracks, events, plate reads and faces.", no_args_is_help=True)

out = Console()

ConfigOption = typer.Option(..., "-c", "--config", help="YAML config file.")
ByOpt = typer.Option(None, "--by", help="Who makes the change (default: the OS user).")


class CommandError(VigilError):
    """A bad command-line value; the message names the option."""


def _time(option: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    from vigil.events.codec import parse_time

    try:
        return parse_time(text)
    except ValueError:
        raise CommandError(f"{option}: not an ISO 8601 time: {text!r} (e.g. 2025-01-31T18:00:00+00:00)") from None


def _user(by: str | None) -> str:
    if by:
        return by
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "unknown"


@contextlib.contextmanager
def _opened(config_path: Path) -> Iterator[tuple[Config, Store]]:
    from vigil.store.db import open_store

    config = load_config(config_path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    with open_store(config.store.database, data_dir=config.data_dir) as store:
        yield config, store


Audit = Callable[..., object]


def _auditor(config: Config, store: Store, by: str | None) -> Audit:
    """``audit(action, object, **details)``: an audit entry by ``cli:<user>``, as the API writes for its users."""
    from vigil.governance.service import open_governance

    log = open_governance(store, config.data_dir, checkpoint_every=config.governance.checkpoint_every).audit
    actor = f"cli:{_user(by)}"
    return lambda action, obj, **details: log.append(actor, action, obj, details=details or None)


@contextlib.contextmanager
def _lists(config_path: Path, by: str | None = None) -> Iterator[tuple[ListStore, Audit]]:
    """The lists, and the audit every change through the console is written to."""
    from vigil.store.lists import ListStore

    with _opened(config_path) as (config, store):
        yield ListStore(store, config.data_dir), _auditor(config, store, by)


def _face_models(config: Config) -> tuple[FaceFinder, FaceEmbedder]:
    from vigil.vision.enrichers import RecognitionModels

    models = RecognitionModels(config.recognition.plates.region, config.recognition.faces)
    return models.face_detector(), models.face_embedder()


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S") if at else "-"


# ---------------------------------------------------------------------- lists

DescriptionOpt = typer.Option("", "--description", help="What the list is for.")


@lists_app.command("create-watchlist")
def create_watchlist(name: str, config_path: Path = ConfigOption, description: str = DescriptionOpt,
                     by: str | None = ByOpt) -> None:
    """Create a face watchlist."""
    _create_list("watchlist", name, config_path, description, by)


@lists_app.command("create-hotlist")
def create_hotlist(name: str, config_path: Path = ConfigOption, description: str = DescriptionOpt,
                   by: str | None = ByOpt) -> None:
    """Create a licence-plate hotlist."""
    _create_list("hotlist", name, config_path, description, by)


def _create_list(kind: str, name: str, config_path: Path, description: str, by: str | None) -> None:
    with _lists(config_path, by) as (lists, audit):
        made = lists.create_list(name, kind, _user(by), description)
        audit(f"{kind}.create", f"{kind}:{made.name}", description=description)
    out.print(f"{kind} {made.name!r} created (id {made.id})")


@lists_app.command("list")
def list_lists(name: str | None = typer.Argument(None, help="A list: show its entries."),
               config_path: Path = ConfigOption) -> None:
    """The lists, or the entries of one list."""
    from vigil.store.db import utcnow

    with _lists(config_path) as (lists, _audit):
        if name is None:
            table = Table("list", "kind", "entries", "created by", "created", "description", title="lists")
            for info in lists.lists():
                table.add_row(info.name, info.kind, str(info.entries), info.created_by, _when(info.created_at),
                              info.description)
            out.print(table)
            return
        entries = lists.entries(name)
    now = utcnow()
    table = Table("id", "name", "plate", "reason", "authority", "by", "created", "expires", "state", title=name)
    for entry in entries:
        state = "[green]active[/]" if entry.active(now) else "[red]expired[/]"
        table.add_row(str(entry.id), entry.name, entry.plate_text or "", entry.reason, entry.authority,
                      entry.created_by, _when(entry.created_at), _when(entry.expires_at), state)
    out.print(table)


@lists_app.command("delete")
def delete_list(name: str, config_path: Path = ConfigOption) -> None:
    """Delete a list with all its entries (and enrolment photos)."""
    with _lists(config_path) as (lists, audit):
        kind = next((info.kind for info in lists.lists() if info.name == name), "list")
        count = lists.delete_list(name)
        audit(f"{kind}.delete", f"{kind}:{name}", entries=count)
    out.print(f"list {name!r} deleted with {count} entries")


@lists_app.command("enrol")
def enrol_face(watchlist: str, name: str, images: list[Path] = typer.Argument(..., help="One or more photos."),
               config_path: Path = ConfigOption,
               reason: str = typer.Option(..., "--reason", help="Why this person is on the list."),
               authority: str = typer.Option(..., "--authority", help="Warrant, case or order reference."),
               expires: str | None = typer.Option(None, "--expires", help="ISO 8601 time the entry stops matching."),
               by: str | None = ByOpt) -> None:
    """Enrol a person on a watchlist from photos (each: one sharp face, big enough)."""
    expires_at = _time("--expires", expires)
    detector, embedder = _face_models(load_config(config_path))
    with _lists(config_path, by) as (lists, audit):
        entry = lists.enrol_face(watchlist, name, images, detector, embedder,
                                 reason=reason, authority=authority, created_by=_user(by), expires_at=expires_at)
        audit("watchlist.entry_add", f"watchlist:{watchlist}", entry=entry.id, name=name, reason=reason,
              authority=authority, images=len(images))
    out.print(f"enrolled {entry.name!r} on {watchlist!r} as entry {entry.id} from {len(images)} photo(s)")


@lists_app.command("add-plate")
def add_plate(hotlist: str, text: str, config_path: Path = ConfigOption,
              reason: str = typer.Option(..., "--reason", help="Why this plate is on the list."),
              authority: str = typer.Option(..., "--authority", help="Warrant, case or order reference."),
              expires: str | None = typer.Option(None, "--expires", help="ISO 8601 time the entry stops matching."),
              by: str | None = ByOpt) -> None:
    """Add a plate to a hotlist."""
    expires_at = _time("--expires", expires)
    with _lists(config_path, by) as (lists, audit):
        entry = lists.add_plate(hotlist, text, reason=reason, authority=authority,
                                created_by=_user(by), expires_at=expires_at)
        audit("hotlist.entry_add", f"hotlist:{hotlist}", entry=entry.id, plate=entry.plate_text, reason=reason,
              authority=authority)
    out.print(f"plate {entry.plate_text} added to {hotlist!r} as entry {entry.id}")


@lists_app.command("remove")
def remove_entry(entry_id: int, config_path: Path = ConfigOption) -> None:
    """Remove one entry (by id, see `vigil lists list LIST`)."""
    with _lists(config_path) as (lists, audit):
        entry = lists.remove_entry(entry_id)
        kind = "hotlist" if entry.plate_text else "watchlist"
        audit(f"{kind}.entry_remove", f"{kind}:{entry.list_name}", entry=entry.id)
    out.print(f"entry {entry.id} ({entry.name}) removed from {entry.list_name!r}")


# ---------------------------------------------------------------------- search

def _print_hits(page: SearchPage, title: str, data_dir: Path) -> None:
    table = Table("camera", "start", "end", "what", "track", "score", "snapshot", "clip", title=title)
    for hit in page.hits:
        if hit.similarity is not None:
            score = f"similarity {hit.similarity:.2f}"
        elif hit.distance is not None:
            score = f"distance {hit.distance:.2f}"
        else:
            score = ""
        what = " ".join(str(p) for p in (hit.kind, hit.label, hit.text, hit.details.get("colour")) if p)
        snapshot = str(data_dir / hit.thumbnail) if hit.thumbnail else "-"
        table.add_row(hit.camera_id, _when(hit.start), _when(hit.end), what,
                      "" if hit.track_id is None else str(hit.track_id), score, snapshot, str(hit.clip))
    out.print(table)
    if page.next_offset is not None:
        out.print(f"more: --offset {page.next_offset}")


def _run(config_path: Path, query: SearchQuery, title: str) -> None:
    from vigil.store.search import search
    from vigil.store.sightings import SightingStore

    with _opened(config_path) as (config, store):
        sightings = SightingStore(store, face_threshold=config.recognition.faces.threshold)
        page = search(store, query, sightings)
        fields = {f.name: getattr(query, f.name) for f in dataclasses.fields(query) if f.name != "face_vector"}
        details = {k: v for k, v in fields.items() if v is not None and v != [] and v != ()}
        action = "search.face" if query.face_vector is not None else "search"
        _auditor(config, store, None)(action, f"search:{title}", **json.loads(json.dumps(details, default=str)))
    _print_hits(page, title, config.data_dir)


CameraOpt = typer.Option(None, "--camera", help="Camera id (repeatable).")
FromOpt = typer.Option(None, "--from", help="ISO 8601 start time.")
ToOpt = typer.Option(None, "--to", help="ISO 8601 end time.")
LimitOpt = typer.Option(50, "--limit", min=1, max=1000)
OffsetOpt = typer.Option(0, "--offset", min=0)


@search_app.command("plate")
def search_plate(text: str, config_path: Path = ConfigOption,
                 fuzzy: bool = typer.Option(False, "--fuzzy", help="Allow one edit and confusable characters."),
                 max_distance: float | None = typer.Option(None, "--max-distance", min=0),
                 camera: list[str] | None = CameraOpt, start: str | None = FromOpt, end: str | None = ToOpt,
                 limit: int = LimitOpt, offset: int = OffsetOpt) -> None:
    """Plate reads of a plate (exact, or fuzzy)."""
    from vigil.store.search import SearchQuery

    config = load_config(config_path)
    query = SearchQuery(start=_time("--from", start), end=_time("--to", end), cameras=camera or None, plate=text,
                        fuzzy=fuzzy, max_distance=config.recognition.plates.max_distance if max_distance is None
                        else max_distance, confusable_weight=config.recognition.plates.confusable_weight,
                        limit=limit, offset=offset)
    _run(config_path, query, f"plate {text}" + (" (fuzzy)" if fuzzy else ""))


@search_app.command("face")
def search_face(image: Path, config_path: Path = ConfigOption,
                threshold: float | None = typer.Option(None, "--threshold", min=0, help="Euclidean distance."),
                camera: list[str] | None = CameraOpt, start: str | None = FromOpt, end: str | None = ToOpt,
                limit: int = LimitOpt, offset: int = OffsetOpt) -> None:
    """Face sightings of the person in a probe photo, most similar first."""
    from vigil.store.search import SearchQuery, embed_probe

    config = load_config(config_path)
    begin, finish = _time("--from", start), _time("--to", end)
    detector, embedder = _face_models(config)
    vector = embed_probe(image, detector, embedder)
    query = SearchQuery(start=begin, end=finish, cameras=camera or None, face_vector=vector,
                        face_threshold=config.recognition.faces.threshold if threshold is None else threshold,
                        limit=limit, offset=offset)
    _run(config_path, query, f"faces like {image.name}")


@search_app.command("objects")
def search_objects(config_path: Path = ConfigOption,
                   label: list[str] | None = typer.Option(None, "--class", help="Object class (repeatable)."),
                   colour: list[str] | None = typer.Option(None, "--colour", help="Colour name (repeatable)."),
                   zone: list[str] | None = typer.Option(None, "--zone", help="Zone visited (repeatable)."),
                   camera: list[str] | None = CameraOpt, start: str | None = FromOpt, end: str | None = ToOpt,
                   limit: int = LimitOpt, offset: int = OffsetOpt) -> None:
    """Object tracks by class, colour, zone, camera and time."""
    from vigil.store.search import SearchQuery

    query = SearchQuery(start=_time("--from", start), end=_time("--to", end), cameras=camera or None,
                        kinds=["track"], classes=label or None, colours=colour or None, zones=zone or None,
                        limit=limit, offset=offset)
    _run(config_path, query, "objects")
