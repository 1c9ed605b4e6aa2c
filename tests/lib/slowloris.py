#!/usr/bin/env python3
"""slowloris.py: hostile slow HTTP clients, for the tests and the bench (issue 8 item 1).

    slowloris.py --port P [--host 127.0.0.1] --conns N [--sources SPEC] [--mode MODE]
                 [--interval S] [--duration S] [--reopen S] [--path /tsa] [--ready FILE]

Opens N connections to HOST:P, spread round-robin over the source addresses of SPEC (a comma
list of addresses and ranges, "127.0.0.2" or "127.0.1.1-127.0.1.200": the whole of 127/8 is
loopback on Linux), and holds them for --duration seconds:

    idle     connects and sends nothing
    headers  sends a request line, then one header line every --interval seconds, never the
             blank line that ends the headers
    body     sends a whole POST header with Content-Length: 4096, then one body byte every
             --interval seconds

A connection the server closes is counted (with its lifetime), and opened again after
--reopen seconds when that is given (a client that insists). When the first N connections
have been tried, FILE (--ready) is created. At the end (or on SIGTERM) it prints one JSON
object: opened, failed (could not connect), closed (by the server), answered (the server sent
bytes before closing), still_open, closed_under_1s (refused at once) and the closed
connections' lifetimes (min, p50, max, in seconds).
"""
import argparse
import ipaddress
import json
import random
import selectors
import signal
import socket
import sys
import time


def parse_sources(spec):
    out = []
    for part in spec.split(","):
        part = part.strip()
        if "-" in part:
            lo, hi = (int(ipaddress.ip_address(x)) for x in part.split("-", 1))
            out += [str(ipaddress.ip_address(i)) for i in range(lo, hi + 1)]
        elif part:
            out.append(part)
    return out


class Conn:
    __slots__ = ("sock", "t0", "next_send", "answered")

    def __init__(self, sock, t0, next_send):
        self.sock = sock
        self.t0 = t0
        self.next_send = next_send
        self.answered = False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, required=True)
    ap.add_argument("--sources", default="127.0.0.1")
    ap.add_argument("--mode", choices=("idle", "headers", "body"), default="headers")
    ap.add_argument("--interval", type=float, default=4.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--reopen", type=float, default=None)
    ap.add_argument("--path", default="/tsa")
    ap.add_argument("--ready", default=None)
    a = ap.parse_args()

    srcs = parse_sources(a.sources)
    sel = selectors.DefaultSelector()
    stats = {"opened": 0, "failed": 0, "closed": 0, "answered": 0}
    lifetimes = []
    reopen_at = []  # times at which to open one more connection
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    seq = [0]
    if a.mode == "headers":
        first = ("GET %s HTTP/1.1\r\nHost: x\r\n" % a.path).encode()
        step = b"X-Slow: 1\r\n"
    elif a.mode == "body":
        first = ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query"
                 "\r\nContent-Length: 4096\r\n\r\n" % a.path).encode()
        step = b"0"
    else:
        first = step = b""

    def open_one(now):
        src = srcs[seq[0] % len(srcs)]
        seq[0] += 1
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((src, 0))
            s.settimeout(1.0)
            s.connect((a.host, a.port))
            s.setblocking(False)
            if first:
                s.send(first)
        except OSError:
            stats["failed"] += 1
            s.close()
            return
        c = Conn(s, now, now + random.uniform(0, a.interval))
        sel.register(s, selectors.EVENT_READ, c)
        stats["opened"] += 1

    def closed(c, now):
        sel.unregister(c.sock)
        c.sock.close()
        stats["closed"] += 1
        if c.answered:
            stats["answered"] += 1
        lifetimes.append(now - c.t0)
        if a.reopen is not None:
            reopen_at.append(now + a.reopen)

    t_start = time.monotonic()
    for _ in range(a.conns):
        open_one(time.monotonic())
    if a.ready:
        open(a.ready, "w").close()
    end = t_start + a.duration
    while not stop[0]:
        now = time.monotonic()
        if now >= end:
            break
        for key, _ in sel.select(timeout=0.05):
            c = key.data
            try:
                data = c.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                c.answered = True
            else:
                closed(c, time.monotonic())
        now = time.monotonic()
        if step:
            for key in list(sel.get_map().values()):
                c = key.data
                if c.next_send <= now:
                    c.next_send = now + a.interval
                    try:
                        c.sock.send(step)
                    except OSError:
                        pass  # the read side sees the close
        due = [t for t in reopen_at if t <= now]
        if due:
            reopen_at[:] = [t for t in reopen_at if t > now]
            for _ in due:
                open_one(now)
    out = dict(stats)
    out["still_open"] = len(sel.get_map())
    for key in list(sel.get_map().values()):
        key.data.sock.close()
    lifetimes.sort()
    out["closed_under_1s"] = sum(1 for t in lifetimes if t < 1.0)
    if lifetimes:
        out["lifetime_min"] = round(lifetimes[0], 3)
        out["lifetime_p50"] = round(lifetimes[len(lifetimes) // 2], 3)
        out["lifetime_max"] = round(lifetimes[-1], 3)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
