#!/usr/bin/env python3
"""keepalive_late.py PORT QUERY IDLE BODY_SECONDS: on one kept-alive connection, a token
request, then IDLE seconds of silence (under the idle timeout), then a second request whose
body takes BODY_SECONDS to arrive (under request_timeout). Prints the HTTP status of each
answer ("cut" when the server closed the connection instead)."""
import socket, sys, time

port, qfile, idle, body_s = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
q = open(qfile, "rb").read()
head = ("POST /tsa/soft HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\n"
        "Content-Length: %d\r\n\r\n" % len(q)).encode()
s = socket.create_connection(("127.0.0.1", port))
s.settimeout(20)

def answer():
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return "cut"
        buf += d
    h, _, rest = buf.partition(b"\r\n\r\n")
    n = int([l.split(b":")[1] for l in h.split(b"\r\n")
             if l.lower().startswith(b"content-length")][0])
    while len(rest) < n:
        d = s.recv(65536)
        if not d:
            return "cut"
        rest += d
    return h.split(b" ")[1].decode()

s.sendall(head + q)
out = [answer()]
time.sleep(idle)
try:
    s.sendall(head)
    steps = 4
    for i in range(steps):
        s.sendall(q[i * len(q) // steps:(i + 1) * len(q) // steps])
        time.sleep(body_s / steps)
    out.append(answer())
except OSError:
    out.append("cut")
print(" ".join(out))
