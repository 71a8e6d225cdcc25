"""The API fuzzed over its own OpenAPI document (issue 17 §3): schemathesis, run as integrators run it (``st run``),
against a real uvicorn server over a real SQLite store, once with a bearer token of each role.

Each run checks every operation for: no server error, no status code the document does not declare, response
bodies, content types and headers that match the document, and the role matrix of ``tests/fuzz_checks.py``
(a role is refused exactly where the declared permissions say). Streaming routes are excluded from the fuzz
and read here with a bounded read. ``VIGIL_FUZZ_EXAMPLES`` and ``VIGIL_FUZZ_SEED`` widen or vary a run.

Not checked by schemathesis here, with the reason:
- ``ignored_auth``: the fixed ``Authorization`` header is sent with every case, so schemathesis's own "remove the
  credentials" probe cannot remove it; ``test_api.py`` sends every route without credentials and with forged ones.
- ``positive_data_acceptance``: it expects 2xx for any schema-valid input, but ``to`` after ``from`` and similar
  rules between fields cannot be written in OpenAPI; they answer a declared 422 naming the fields.
- ``negative_data_rejection``: pydantic accepts a number of seconds for a date-time, as documented by pydantic.
- ``/api/auth/logout`` and ``/api/users/{username}/sessions/revoke``: the fuzz would end its own session (it
  follows links from ``GET /api/users`` to the names there); called here once per role, and in ``test_api.py``
  and ``test_api_security.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.fuzz_checks import role_allows
from tests.support import login, served_api
from vigil.governance.roles import ROLES
from vigil.types import Event

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "fuzzy otter lantern 42"
#: (method, path, path as called) of the routes the fuzz leaves out: streams (read here with a bounded read),
#: and the two that end sessions, the run's own included (called here once per role, on a user that is not there)
EXCLUDED = (("GET", "/api/cameras/{camera_id}/live.mjpg", "/api/cameras/cam-a/live.mjpg"),
            ("GET", "/api/events/stream", "/api/events/stream"),
            ("POST", "/api/auth/logout", "/api/auth/logout"),
            ("POST", "/api/users/{username}/sessions/revoke", "/api/users/nobody-here/sessions/revoke"))
EXCLUDED_PATHS = r"live\.mjpg$|/api/events/stream$|/api/auth/logout$|/sessions/revoke$"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,unsupported_method,role_matrix")
CONFIG = {
    "data_dir": "data",
    "cameras": [{"id": "cam-a", "url": "a.mp4", "name": "North gate", "fps": 5, "lat": 47.14, "lon": 9.52,
                 "zones": [{"name": "gate", "polygon": [[0, 0], [100, 0], [100, 100]], "classes": ["person"]}]}],
}


def user_name(role: str) -> str:
    """Names the fuzzer will not stumble on (it may revoke sessions of any user it can name)."""
    return f"fz-{role}-q7x"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory):
    if shutil.which("st", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    users = [(user_name(role), role, ["*"]) for role in ROLES]
    with served_api(tmp_path_factory.mktemp("fuzz"), CONFIG, users, PASSWORD) as env:
        for i in range(3):
            env["services"].events.add_event(Event("zone_enter", "cam-a", datetime(2026, 1, 15, 9, i, tzinfo=UTC),
                                                   track_id=i, label="person", zone="gate"))
        yield env


def token(env, role: str) -> str:
    return login(env["url"], user_name(role), PASSWORD).headers["Authorization"]


@pytest.mark.parametrize("role", ROLES)
def test_schemathesis_finds_nothing_for_the_role(env, role: str) -> None:
    examples = os.environ.get("VIGIL_FUZZ_EXAMPLES", "5")
    command = [str(Path(sys.executable).parent / "st"), "run", f"{env['url']}/api/openapi.json",
               "--header", f"Authorization: {token(env, role)}", "--checks", CHECKS,
               "--exclude-path-regex", EXCLUDED_PATHS, "--max-examples", examples,
               "--seed", os.environ.get("VIGIL_FUZZ_SEED", "17"), "--request-timeout", "20",
               "--report", "junit", "--report-dir", str(env["folder"] / f"report-{role}"), "--no-color"]
    run = subprocess.run(command, cwd=env["folder"], capture_output=True, text=True, timeout=480,
                         env={**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_checks", "VIGIL_FUZZ_ROLE": role,
                              "PYTHONPATH": str(ROOT)})
    summary = run.stdout[run.stdout.find("SUMMARY"):]
    assert run.returncode == 0, f"schemathesis as {role}:\n{run.stdout[-20000:]}\n{run.stderr[-2000:]}"
    assert "Tested:" in summary and "generated" in summary, summary


@pytest.mark.parametrize("role", ROLES)
def test_routes_left_out_of_the_fuzz_follow_the_role_matrix(env, role: str) -> None:
    document = httpx.get(env["url"] + "/api/openapi.json").json()
    for method, path, called in EXCLUDED:
        operation = document["paths"][path][method.lower()]
        headers = {"Authorization": token(env, role)}  # a fresh session: logout ends it
        with httpx.stream(method, env["url"] + called, headers=headers, timeout=10) as response:
            assert str(response.status_code) in operation["responses"], (path, response.status_code)
            if role_allows(role, operation):
                assert response.status_code != 403, (path, response.read())
            else:
                assert response.status_code == 403, (path, response.status_code)
            if response.status_code == 200 and method == "GET":  # a stream: its head only (no frames here)
                documented = operation["responses"]["200"]["content"]
                assert response.headers["content-type"].split(";")[0] in {t.split(";")[0] for t in documented}
