#!/usr/bin/env python3
"""Time to the first byte of streamed completions sent one after another on one kept connection,
as the OpenAI SDKs send them (their HTTP clients keep connections): prints "median|p95" in ms.

Usage: stream_ttfb_keepalive.py URL BODY COUNT [BEARER]
"""
import socket
import statistics
import sys
import time
import urllib.parse

url, body, count = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3])
bearer = sys.argv[4] if len(sys.argv) > 4 else ""
target = urllib.parse.urlparse(url)
head = (
    f"POST {target.path} HTTP/1.1\r\nHost: {target.netloc}\r\nContent-Type: application/json\r\n"
    f"Content-Length: {len(body)}\r\n" + (f"Authorization: Bearer {bearer}\r\n" if bearer else "") + "\r\n"
).encode()
connection = socket.create_connection((target.hostname, target.port))
connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def exchange():
    """Sends one request; returns the seconds to its answer's first byte after reading it whole."""
    started = time.perf_counter()
    connection.sendall(head + body)
    received = connection.recv(65536)
    first = time.perf_counter() - started
    if not received.startswith(b"HTTP/1.1 200"):
        sys.exit(f"answer: {received[:200]!r}")
    # A chunked stream ends with its last chunk.
    while not received.endswith(b"0\r\n\r\n"):
        more = connection.recv(65536)
        if not more:
            sys.exit("the connection closed mid-answer")
        received += more
    return first


for _ in range(20):
    exchange()
times = sorted(exchange() * 1000 for _ in range(count))
print(f"{statistics.median(times):.3f}|{times[int(0.95 * (len(times) - 1))]:.3f}")
