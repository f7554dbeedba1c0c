"""A fault-injecting HTTP proxy in front of a real S3 endpoint (moto's server), on loopback.

Reads (GET/HEAD, listings included) always pass through and are counted. Writes (PUT/POST) pass
through, except during a burst: each write starts one with probability ``burst_probability`` (a seeded
RNG), and the next ``burst_len`` writes, this one included, are answered with an S3 error without
reaching the store: 500 InternalError or 503 SlowDown, in S3's XML error format. Bursts model an S3
incident: botocore retries each write a few times, so only a burst outlasts its retries.

``together``: path fragments whose first requests are held until all of them have arrived (up to 5 s each), so a
test can tell requests sent at once from requests sent one after the other: ``counts["together"]`` is how many of
them met (0 when they came one at a time).

    with S3FaultProxy(moto_url, burst_probability=0.05, burst_len=6, seed=1) as proxy:
        storage = SeedanceStorage(url="s3://bucket/x", endpoint_url=proxy.url)
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ERRORS = (
    (500, "InternalError", "We encountered an internal error. Please try again."),
    (503, "SlowDown", "Please reduce your request rate."),
)
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class _Server(ThreadingHTTPServer):
    # socketserver listens with a backlog of 5: a client opening tens of connections at once (botocore's pool)
    # had the rest of its SYNs dropped and resent a second later, which S3 never does.
    request_queue_size = 128


class S3FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        burst_probability: float = 0.0,
        burst_len: int = 6,
        seed: int = 0,
        latency_s: float = 0.0,
        log_path: str | None = None,
        together: tuple[str, ...] = (),
    ):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port or 80)
        self.burst_probability, self.burst_len = burst_probability, burst_len
        self.latency_s = latency_s  # added to every request: a real S3 round trip, which loopback lacks
        self._rng = random.Random(f"{seed}:s3")
        self._lock = threading.Lock()
        self._left = 0
        self.counts = {"reads": 0, "writes": 0, "failed_writes": 0, "bursts": 0, "together": 0}
        self._waiting = list(together)
        self._barrier = threading.Barrier(len(together)) if together else None
        # One line per request ("METHOD path?query"), for a benchmark to say which requests a run makes.
        self._log = open(log_path, "a", buffering=1, encoding="utf-8") if log_path else None  # noqa: SIM115
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # A response is written as headers, then body: without TCP_NODELAY, Nagle's algorithm holds the body
            # back until the client's delayed ACK of the headers, 40 ms later (every GET took 80 ms, not 30).
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                proxy._meet(self.path)
                if proxy.latency_s:
                    time.sleep(proxy.latency_s)
                write = self.command in ("PUT", "POST")
                if proxy._log is not None:
                    with proxy._lock:
                        proxy._log.write(f"{self.command} {self.path}\n")
                if self.command in ("GET", "HEAD"):
                    with proxy._lock:
                        proxy.counts["reads"] += 1
                fault = proxy._fault() if write else None
                if fault is not None:
                    status, code, message = fault
                    xml = (
                        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                        f"<Message>{message}</Message><RequestId>proxy</RequestId></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(xml)))
                    self.end_headers()
                    self.wfile.write(xml)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                if body or write:
                    headers["Content-Length"] = str(len(body))
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body if (body or write) else None, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                finally:
                    conn.close()
                self.send_response(resp.status)
                head = self.command == "HEAD"  # a HEAD's Content-Length is the object's: pass it on
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_BY_HOP and (head or k.lower() != "content-length"):
                        self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="s3-fault-proxy", daemon=True)
        self._thread.start()

    def _meet(self, path: str) -> None:
        with self._lock:
            fragment = next((f for f in self._waiting if f in path), None)
            if fragment is None or self._barrier is None:
                return
            self._waiting.remove(fragment)
        try:
            self._barrier.wait(timeout=5)
        except threading.BrokenBarrierError:
            return  # sent one after the other: pass it on all the same
        with self._lock:
            self.counts["together"] += 1

    def _fault(self):
        with self._lock:
            self.counts["writes"] += 1
            if self._left == 0 and self.burst_probability and self._rng.random() < self.burst_probability:
                self._left = self.burst_len
                self.counts["bursts"] += 1
            if self._left == 0:
                return None
            self._left -= 1
            self.counts["failed_writes"] += 1
            return ERRORS[self._rng.randrange(len(ERRORS))]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> S3FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
