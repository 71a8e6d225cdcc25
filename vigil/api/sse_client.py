"""A client of the command centre's live event stream (``/api/events/stream``), for benchmarks and tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx


def event_stream(base_url: str, headers: dict[str, str],
                 timeout: float | None = None) -> Iterator[dict[str, Any] | None]:
    """Yields ``None`` once the server says the stream is connected, then each Vigil event's JSON body.

    Raises ``httpx.HTTPStatusError`` when the stream is refused (401/403)."""
    with httpx.stream("GET", base_url + "/api/events/stream", headers=headers, timeout=timeout) as response:
        response.raise_for_status()
        kind = None
        for line in response.iter_lines():
            if line.startswith(": connected"):
                yield None
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "vigil":
                yield json.loads(line[6:])
