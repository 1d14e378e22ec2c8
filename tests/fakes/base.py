"""The shared machinery of the fake destination servers: a threaded HTTP server on loopback, a request log,
and fault injection.

A fake subclasses `FakeServer` and implements `route(request)`; the base does everything a test of a sender
needs around it, in this order for each request:

1. log the request (`requests`, with the time it arrived);
2. an injected fault (`fail_next`) or a breached rate limit (`rate_limit`) answers instead of the vendor;
3. otherwise the fake checks auth and the request, applies it to its state and builds the vendor's answer;
   `reject_record` predicates are checked by the fake before it applies anything (the whole batch is refused);
4. `delay_next` holds the answer back (the write is already applied, as when a slow vendor outlasts a client's
   timeout); `drop_connection_after_accept` closes the socket instead of answering a write the fake applied.

Servers bind 127.0.0.1 on a free port and stop cleanly on `__exit__` (open keep-alive sockets included).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class RecordedRequest:
    """One request as the fake received it. `status` is what the fake answered (None: connection dropped)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # header names lower-cased
    body: bytes
    received_at: float
    status: int | None = None
    dropped: bool = False
    faulted: bool = False  # answered by an injected fault, not by the vendor logic

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def param(self, name: str) -> str | None:
        """A single query-string parameter (the first if repeated)."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    """The vendor's answer: a status, a JSON (or raw bytes/text) body and extra headers."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class _Fault:
    status: int
    headers: dict[str, str] | None
    body: Any


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs and requests.Session use
    # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for the client's delayed
    # ACK (~40 ms a request), which would make a throughput benchmark measure TCP, not the sender.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, open_=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.fake._track(self.connection, open_=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is `FakeServer.requests`; stderr noise helps nobody

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            received_at=time.time(),
        )
        reply, delay, drop = self.server.fake._dispatch(request)
        if delay:
            time.sleep(delay)
        if drop:
            # Applied, never answered: the client sees the connection close with no response.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        payload = reply.encoded()
        try:
            self.send_response(reply.status)
            headers = {**self.server.fake.common_headers(request, reply), **reply.headers}
            for name, value in headers.items():
                self.send_header(name, value)
            if payload or reply.status not in (204, 304):
                self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up waiting (a timeout test): nothing to answer

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # listen() backlog. socketserver's default of 5 is overrun when dozens of clients connect at once on a busy
    # machine (the one accepting thread falls behind): connections were reset and a thread-safety test lost 3 of
    # 32 requests. A real API server's backlog is in the hundreds.
    request_queue_size = 128

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)


class FakeServer:
    """Base of every fake destination. Use as a context manager: `with FakeSendGrid() as api: ...`."""

    #: A name for messages, e.g. "SendGrid".
    vendor = "fake"
    #: Keep each request's body in `requests` (a benchmark sending 10^6 rows turns it off to save memory).
    keep_bodies = True

    def __init__(self) -> None:
        self.lock = threading.RLock()  # guards the vendor state and the knobs; handlers run in threads
        self.requests: list[RecordedRequest] = []
        self._faults: list[_Fault] = []
        self._delays: list[float] = []
        self._drops = 0
        self._reject_predicates: list[Callable[[Any], bool]] = []
        self._rate_limit: tuple[int, float] | None = None
        self._window_start = 0.0
        self._window_count = 0
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self._server = _Server(self)
        # A short poll interval: shutdown() waits up to one interval, and tests start and stop many fakes.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name=f"{self.vendor}-fake", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        with self.lock:
            connections = list(self._connections)
        for conn in connections:  # keep-alive sockets would otherwise keep handler threads waiting
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "start the fake first (use it as a context manager)"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _track(self, conn: socket.socket, *, open_: bool) -> None:
        with self.lock:
            if open_:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    # ---- fault knobs -----------------------------------------------------------------------------------

    def fail_next(
        self, status: int, times: int = 1, headers: Mapping[str, str] | None = None, body: Any = None
    ) -> None:
        """Answer the next `times` requests with `status` without applying them. Body and headers default to
        what the vendor sends for that status (e.g. SendGrid's 429 error body and X-RateLimit-* headers)."""
        with self.lock:
            self._faults.extend(_Fault(status, dict(headers) if headers else None, body) for _ in range(times))

    def reject_record(self, predicate: Callable[[Any], bool]) -> None:
        """Refuse, with the vendor's 400 and error body, any batch holding a record for which `predicate` is
        true (the record as the vendor receives it: a SendGrid contact dict, a Meta data row, ...)."""
        with self.lock:
            self._reject_predicates.append(predicate)

    def drop_connection_after_accept(self, times: int = 1) -> None:
        """For the next `times` writes the fake accepts: apply them, then close the socket without answering
        (the sender cannot know whether its request was applied)."""
        with self.lock:
            self._drops += times

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Hold back the answer to the next `times` requests by `seconds` after applying them (for client
        timeouts: the write happened, the client never hears of it)."""
        with self.lock:
            self._delays.extend([seconds] * times)

    def rate_limit(self, limit: int, window_seconds: float = 1.0) -> None:
        """Enforce at most `limit` requests per fixed window; beyond it answer the vendor's 429."""
        with self.lock:
            self._rate_limit = (limit, window_seconds)
            self._window_start, self._window_count = time.time(), 0

    def reset_faults(self) -> None:
        with self.lock:
            self._faults.clear()
            self._delays.clear()
            self._drops = 0
            self._reject_predicates.clear()
            self._rate_limit = None

    # ---- request log helpers ---------------------------------------------------------------------------

    def requests_to(self, method: str | None = None, path_contains: str = "") -> list[RecordedRequest]:
        with self.lock:
            return [
                r for r in self.requests if (method is None or r.method == method.upper()) and path_contains in r.path
            ]

    # ---- hooks for subclasses --------------------------------------------------------------------------

    def route(self, request: RecordedRequest) -> Reply:
        """The vendor's logic: check auth and the request, apply it, answer. Called with `self.lock` held."""
        raise NotImplementedError

    def fault_reply(self, status: int) -> Reply:
        """The vendor's answer for an injected status (body and headers), e.g. a 429 with its retry hint."""
        return Reply(status, {"error": f"injected {status}"})

    def rate_limit_reply(self, reset_at: float) -> Reply:
        """The vendor's 429 when the enforced rate limit is exceeded; `reset_at` is when the window ends."""
        reply = self.fault_reply(429)
        reply.headers.setdefault("Retry-After", str(max(1, int(reset_at - time.time() + 0.999))))
        return reply

    def common_headers(self, request: RecordedRequest, reply: Reply) -> dict[str, str]:
        """Headers on every answer (e.g. SendGrid's X-RateLimit-*)."""
        return {}

    def is_write(self, request: RecordedRequest) -> bool:
        """Which requests `drop_connection_after_accept` applies to."""
        return request.method != "GET"

    def rejected(self, records: Iterable[Any]) -> list[int]:
        """Positions of the records a `reject_record` predicate matches; a fake calls this before applying."""
        with self.lock:
            predicates = list(self._reject_predicates)
        return [i for i, record in enumerate(records) if any(p(record) for p in predicates)]

    # ---- dispatch ----------------------------------------------------------------------------------------

    def rate_limit_state(self) -> tuple[int, int, float]:
        """(limit, remaining, reset epoch seconds) of the current window, for vendors' rate-limit headers."""
        with self.lock:
            limit, window = self._rate_limit or (600, 60.0)
            now = time.time()
            if self._rate_limit is None:
                # Not enforcing: still report a plausible, never-exhausted window.
                reset = (int(now // window) + 1) * window
                return limit, limit, reset
            return limit, max(0, limit - self._window_count), self._window_start + window

    def x_rate_limit_headers(self) -> dict[str, str]:
        """SendGrid's and Braze's `X-RateLimit-*` headers; the reset is rounded up to a whole second, so a client
        that waits until it never retries early."""
        limit, remaining, reset = self.rate_limit_state()
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset + 0.999)),
        }

    def _dispatch(self, request: RecordedRequest) -> tuple[Reply, float, bool]:
        with self.lock:
            self.requests.append(request)
            delay = self._delays.pop(0) if self._delays else 0.0
            reply: Reply | None = None
            if self._faults:
                fault = self._faults.pop(0)
                reply = self.fault_reply(fault.status)
                if fault.body is not None:
                    reply.body = fault.body
                if fault.headers is not None:
                    reply.headers = {**reply.headers, **fault.headers}
                request.faulted = True
            elif self._rate_limit is not None:
                limit, window = self._rate_limit
                now = time.time()
                if now >= self._window_start + window:
                    self._window_start, self._window_count = now, 0
                self._window_count += 1
                if self._window_count > limit:
                    reply = self.rate_limit_reply(self._window_start + window)
                    request.faulted = True
            if reply is None:
                try:
                    reply = self.route(request)
                    reply.encoded()  # an answer that cannot be encoded is the fake's bug: surface it as a 500
                except Exception as exc:  # a bug in a fake must surface as a 500 the test can see, not a hang
                    reply = Reply(500, {"fake_error": f"{type(exc).__name__}: {exc}"})
            drop = False
            if not request.faulted and 200 <= reply.status < 300 and self.is_write(request) and self._drops:
                self._drops -= 1
                drop = True
            request.status = None if drop else reply.status
            request.dropped = drop
            if not self.keep_bodies:
                request.body = b""
            return reply, delay, drop


def bearer_token(request: RecordedRequest) -> str | None:
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def json_body(request: RecordedRequest) -> Any:
    """The parsed JSON body, or raises ValueError with a message a vendor would give."""
    if not request.body:
        raise ValueError("request body is empty")
    try:
        return json.loads(request.body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"request body is not valid JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None
