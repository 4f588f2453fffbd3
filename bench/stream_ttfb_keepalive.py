#!/usr/bin/env python3
"""Time to the first byte of streamed completions sent one after another on kept connections, as
the OpenAI SDKs send them (their HTTP clients keep connections).

Usage: stream_ttfb_keepalive.py COUNT BODY URL BEARER [BODY URL BEARER ...]   (BEARER "-" for none)

With several targets, one kept connection each, the requests alternate between them, so that
each is measured under the same conditions as the others (a shared machine's load changes by the
minute). Prints one "median|p95" in ms per target, space-separated, in the order given.
"""
import socket
import statistics
import sys
import time
import urllib.parse

count = int(sys.argv[1])
triples = sys.argv[2:]
if not triples or len(triples) % 3:
    sys.exit(__doc__)


class Target:
    def __init__(self, body, url, bearer):
        body = body.encode()
        target = urllib.parse.urlparse(url)
        self.request = (
            f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n" + (f"Authorization: Bearer {bearer}\r\n" if bearer != "-" else "") + "\r\n"
        ).encode() + body
        self.connection = socket.create_connection((target.hostname, target.port))
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.times = []

    def exchange(self):
        """Sends one request; returns the seconds to its answer's first byte after reading it whole."""
        started = time.perf_counter()
        self.connection.sendall(self.request)
        received = self.connection.recv(65536)
        first = time.perf_counter() - started
        if not received.startswith(b"HTTP/1.1 200"):
            sys.exit(f"answer: {received[:200]!r}")
        # A chunked stream ends with its last chunk.
        while not received.endswith(b"0\r\n\r\n"):
            more = self.connection.recv(65536)
            if not more:
                sys.exit("the connection closed mid-answer")
            received += more
        return first


targets = [Target(*triples[i:i + 3]) for i in range(0, len(triples), 3)]
for _ in range(20):
    for target in targets:
        target.exchange()
for _ in range(count):
    for target in targets:
        target.times.append(target.exchange() * 1000)
results = []
for target in targets:
    times = sorted(target.times)
    results.append(f"{statistics.median(times):.3f}|{times[int(0.95 * (len(times) - 1))]:.3f}")
print(" ".join(results))
