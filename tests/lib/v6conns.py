#!/usr/bin/env python3
"""v6conns.py PORT N PREFIX: open N idle connections to [PREFIX1]:PORT, one from each of
PREFIX1..PREFIXN (one host's /64), and print how many the server closed within 1 s."""
import socket, sys, time
port, n, pre = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conns = []
for i in range(1, n + 1):
    c = socket.socket(socket.AF_INET6)
    c.bind(("%s%x" % (pre, i + 1), 0))
    c.connect(("%s1" % pre, port))
    conns.append(c)
time.sleep(1)
closed = 0
for c in conns:
    c.setblocking(False)
    try:
        if c.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(closed)
