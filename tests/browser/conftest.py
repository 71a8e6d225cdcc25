"""Browser tests: the real command-centre app (uvicorn, random port) over a real pipeline on vtest, driven by
headless Debian Chromium through Python ``playwright`` (``playwright install`` is neither possible nor needed).

The session fixture ``centre`` starts, once for all tests:
- the demo config on ``video/vtest.avi`` (realtime, looping, continuous recording in short segments);
- ``open_services`` + ``Node`` (detector, tracker, rules, recorder) in background threads;
- governance users of every role, operator2 without the demo camera;
- ``create_app`` served by ``vigil.api.server.serve_in_thread``;
- a bus subscriber noting when each alert (warning or critical event) was published
  (``centre.published[event_id]``, epoch seconds).

Screenshots go to ``test-artifacts/``; the main pages are copied to ``docs/screenshots/<page>.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from vigil.paths import data_root

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
MAIN_PAGES = {"login", "map", "alerts", "event", "live", "search", "dashboards", "admin"}
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
CAMERA = "campus-junction"
PASSWORD = "correct-horse-battery"
#: username → (role, cameras)
USERS = {
    "operator": ("operator", ["*"]),
    "operator2": ("operator", ["north-gate"]),  # not the demo camera
    "investigator": ("investigator", ["*"]),
    "supervisor": ("supervisor", ["*"]),
    "auditor": ("auditor", ["*"]),
    "admin": ("admin", ["*"]),
}


@dataclass
class CommandCentre:
    url: str
    config: Any
    config_path: Path
    services: Any
    node: Any
    published: dict[str, float] = field(default_factory=dict)  # event id → publish time (epoch s)
    camera: str = CAMERA
    password: str = PASSWORD

    def wait_for(self, condition: Callable[[], Any], timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.2)
        pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _requirements() -> Path:
    for module in ("playwright", "fastapi", "uvicorn"):
        pytest.importorskip(module, reason=f"python package {module!r} is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    video = data_root() / "video" / "vtest.avi"
    if not video.exists():
        pytest.skip(f"third-party test data not found: {video} (set VIGIL_DATA)")
    if not (ROOT / "vigil" / "web" / "vendor" / "leaflet" / "leaflet.js").exists():
        pytest.skip("browser libraries missing: run python -m vigil.web.vendor")
    return video


def _write_config(out: Path, video: Path) -> tuple[Any, Path]:
    """The demo config (realtime, loop, continuous recording in 2 s segments), as a YAML file for scene saves."""
    from vigil.config import load_config
    from vigil.demo.run import demo_config

    config = demo_config(out, video, realtime=True, loop=True)
    plain = config.model_dump(mode="json", exclude_defaults=True)
    for camera in plain["cameras"]:
        camera["recording"] = {"mode": "continuous", "segment_seconds": 2, "pre_roll_s": 2, "post_roll_s": 2}
    path = out / "vigil.yaml"
    path.write_text(yaml.safe_dump(plain, sort_keys=False))
    return load_config(path), path


async def _note_publications(bus: Any, published: dict[str, float]) -> None:
    subscription = bus.subscribe()
    with contextlib.suppress(asyncio.CancelledError):
        async for event in subscription:
            if event.severity != "info":  # alerts: what the alert queue shows by default
                published[event.id] = time.time()


@pytest.fixture(scope="session")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CommandCentre]:
    video = _requirements()
    from vigil.api.app import create_app
    from vigil.api.server import serve_in_thread
    from vigil.assembly import open_services
    from vigil.governance.service import open_governance
    from vigil.runtime import Node
    from vigil.vision.detector import create_detector

    out = tmp_path_factory.mktemp("centre")
    config, config_path = _write_config(out, video)
    services = open_services(config).start()
    governance = open_governance(services.store, config.data_dir, checkpoint_every=1000)
    for username, (role, cameras) in USERS.items():
        governance.users.create(username, PASSWORD, role, actor="test-setup", cameras=cameras,
                                display_name=username.title())
    node = Node(config, create_detector(config.detector), packet_hooks=services.packet_hooks())
    services.attach(node)
    app = create_app(config, services, node, users=governance.users, audit=governance.audit,
                     authorisations=governance.authorisations, config_path=config_path)
    centre = CommandCentre("", config, config_path, services, node)
    services.spawn(_note_publications(services.bus, centre.published))
    worker = threading.Thread(target=node.start().run, name="vigil-node", daemon=True)
    worker.start()
    server = serve_in_thread(app)
    centre.url = server.url
    try:
        yield centre
    finally:
        server.stop()
        node.stop()
        worker.join(10)
        services.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    _requirements()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def page_opener(browser: Any, base_url: str) -> Iterator[Callable[..., Any]]:
    """``open_page("operator")``: a fresh browser context on ``base_url``, signed in through the login form (on
    ``/map``). Any uncaught JavaScript error or CSP refusal on its pages fails the test at the end."""
    contexts, pages = [], []

    def open_page(username: str, sign_in: bool = True) -> Any:
        context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=base_url)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(30_000)  # the machine is shared: allow for load
        page.on("pageerror", lambda error: page.js_errors.append(str(error)))
        page.on("console", lambda message: _note_policy_violation(page, message))
        page.js_errors = []
        pages.append(page)
        if sign_in:
            login(page, username)
        return page

    yield open_page
    errors = [error for page in pages for error in page.js_errors]
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture
def page_as(browser: Any, centre: CommandCentre) -> Iterator[Callable[..., Any]]:
    """``page_as("operator")``: a signed-in page on the demo command centre (``page_opener``)."""
    with page_opener(browser, centre.url) as open_page:
        yield open_page


def _note_policy_violation(page: Any, message: Any) -> None:
    """The app runs under its own Content-Security-Policy: anything the browser refuses is an error."""
    if message.type == "error" and "Content Security Policy" in message.text:
        page.js_errors.append(message.text)


def wait_until(page: Any, expression: str, timeout: float = 30.0) -> None:
    """Poll a JavaScript expression until it is truthy. ``page.wait_for_function`` cannot be used: it compiles
    its predicate with ``eval`` inside the page, which the app's CSP (no ``unsafe-eval``) refuses."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting in the page for: {expression}")
        page.wait_for_timeout(100)


def login(page: Any, username: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_url("**/map")
    page.wait_for_selector("#nav-user")


@pytest.fixture
def shot() -> Callable[[Any, str], Path]:
    """``shot(page, name)``: see ``screenshot``."""
    return screenshot


def screenshot(page: Any, name: str) -> Path:
    """Save ``test-artifacts/<name>.png``; main pages are also copied to ``docs/screenshots/``."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    if name in MAIN_PAGES:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{name}.png")
    return path
