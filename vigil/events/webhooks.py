"""Webhooks: each event POSTed as JSON, signed with HMAC-SHA256, from a bounded backlog (``run_sink``).

A down or slow endpoint never blocks the pipeline or the other sinks: events wait in its own backlog
(``max_backlog``, the oldest dropped and counted when full) and each POST runs on the webhook's own
thread, so a hanging endpoint cannot starve the event loop's shared thread pool either. Connection
errors, timeouts, 5xx and 429 are retried with exponential backoff; other 4xx answers are refused events,
not retried. Logs name the endpoint without its password or query string (where tokens often are).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote, urlsplit, urlunsplit

from vigil.config import redact_url
from vigil.events.codec import encode_event
from vigil.events.sinks import QueuedSink, SinkError, SinkRejected
from vigil.types import Event

#: the header that carries a webhook body's HMAC-SHA256 signature
SIGNATURE_HEADER = "X-Vigil-Signature"


def public_url(url: str) -> str:
    """The URL as logs may show it: password hidden, query string and fragment removed."""
    parts = urlsplit(url)
    return redact_url(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")))


def split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without its ``user:password@`` and, if it had one, the matching Basic ``Authorization`` value
    (urllib does not take credentials from the URL)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.netloc.rsplit("@", 1)[1]
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    return urlunsplit(parts._replace(netloc=host)), "Basic " + base64.b64encode(pair).decode()


class WebhookSink(QueuedSink):
    """POSTs each event as JSON (one attempt per ``send``; ``run_sink`` retries). Credentials in the URL
    (``https://user:password@host/...``) are sent as HTTP Basic authentication.

    With a ``secret`` each body is signed: ``X-Vigil-Signature: sha256=<HMAC-SHA256 of the body, hex>``.
    """

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        timeout_s: float = 5.0,
        secret: str | None = None,
        max_backlog: int = 1000,
        retries: int | None = None,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        super().__init__(f"webhook:{public_url(url)}", max_backlog, retries, backoff_s, max_backoff_s)
        self.url, authorization = split_credentials(url)
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        if authorization is not None:
            self.headers.setdefault("Authorization", authorization)
        self.timeout_s = timeout_s
        self._secret = secret.encode() if secret else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vigil-webhook")

    def sign(self, body: bytes) -> str | None:
        if self._secret is None:
            return None
        return "sha256=" + hmac.new(self._secret, body, hashlib.sha256).hexdigest()

    def _post(self, body: bytes) -> int:
        headers = dict(self.headers)
        signature = self.sign(body)
        if signature is not None:
            headers[SIGNATURE_HEADER] = signature
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
            return int(response.status)

    async def send(self, event: Event) -> None:
        body = encode_event(event)
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._post, body)
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and exc.code != 429:  # the receiver rejects this event: retrying will not help
                raise SinkRejected(f"HTTP {exc.code}") from None
            raise SinkError(f"HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise SinkError(str(getattr(exc, "reason", exc))) from None

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
