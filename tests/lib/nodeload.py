#!/usr/bin/env python3
"""nodeload.py: the client loop of the several-node tests (tests/integration/test_nginx_ocspd.sh,
test_haproxy_tsad.sh; issue 9 item 2): N keep-alive HTTP clients send requests through the
proxy until a stop file appears (or a time limit passes), and every request is logged with
its outcome, so that the test can count failures before and after a node was stopped.

  nodeload.py tsa URL TSQ OUTDIR [options]
      POST the TimeStampReq TSQ to URL; ok = HTTP 200 and a granted TimeStampResp (status 0
      or 1, a token); the token's serial number is logged, every --keep-every'th token is
      saved as OUTDIR/tok-N.tsr.
  nodeload.py ocsp BASE SPEC OUTDIR [options]
      SPEC: lines "POST FILE" (an OCSPRequest, posted to BASE/) or "GET PATH" (BASE/PATH),
      taken in turn; ok = HTTP 200 and a successful OCSPResponse (responseStatus 0).
  options: --clients N (4), --stop-file F (OUTDIR/stop), --max-seconds S (60),
           --keep-every K (25), --pause S (0.01: each client's pause between requests, so
           that the loop is steady traffic, not a benchmark on a shared machine)

OUTDIR/log.tsv: one line per request: start end client method http verdict detail
(start/end: Unix time, float; verdict ok or fail; detail: the serial (tsa), the
X-Cache-Status (ocsp) or why it failed). Prints "total=N ok=N failed=N" at the end.
"""

import http.client
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import derutil  # noqa: E402


def ocsp_ok(body):
    """A successful OCSPResponse: SEQUENCE { ENUMERATED 0, [0] ... }."""
    try:
        _, v, _ = derutil.tlv(body, 0)
        f = derutil.kids(v)
        return f[0][0] == 0x0a and f[0][1] == b'\x00' and len(f) == 2
    except (IndexError, ValueError):
        return False


class Loop:
    def __init__(self, mode, url, src, outdir, opts):
        self.mode = mode
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.base = u.path or '/'
        self.outdir = outdir
        self.opts = opts
        self.lock = threading.Lock()
        self.lines = []
        self.count = 0
        self.failed = 0
        if mode == 'tsa':
            with open(src, 'rb') as f:
                self.reqs = [('POST', self.base, f.read(), 'application/timestamp-query')]
        else:
            self.reqs = []
            with open(src) as f:
                for line in f:
                    meth, arg = line.split(None, 1)
                    arg = arg.strip()
                    if meth == 'POST':
                        with open(arg, 'rb') as b:
                            self.reqs.append(('POST', self.base, b.read(),
                                              'application/ocsp-request'))
                    else:
                        self.reqs.append(('GET', self.base.rstrip('/') + '/' + arg, None, None))

    def judge(self, resp, body):
        if resp.status != 200:
            return 'fail', 'http %d' % resp.status
        if self.mode == 'ocsp':
            if not ocsp_ok(body):
                return 'fail', 'not a successful OCSPResponse: ' + body[:8].hex()
            return 'ok', resp.getheader('X-Cache-Status') or '-'
        try:
            kv = dict(derutil.tsp_resp(body))
        except (IndexError, ValueError, KeyError) as e:
            return 'fail', 'undecodable TimeStampResp: %r' % e
        if kv.get('status') not in (0, 1) or kv.get('token') != 'present':
            return 'fail', 'status %s failbits %s' % (kv.get('status'), kv.get('failbits'))
        return 'ok', kv['serial']

    def client(self, n, stop_at):
        conn = None
        i = n
        while time.time() < stop_at and not os.path.exists(self.opts['stop']):
            meth, path, body, ctype = self.reqs[i % len(self.reqs)]
            i += 1
            t0 = time.time()
            code = 0
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=20)
                hdrs = {'Content-Type': ctype} if ctype else {}
                conn.request(meth, path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
                code = resp.status
                verdict, detail = self.judge(resp, data)
                if resp.getheader('Connection', '').lower() == 'close':
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                verdict, detail, data = 'fail', type(e).__name__ + ': ' + str(e), b''
                if conn is not None:
                    conn.close()
                conn = None
            t1 = time.time()
            with self.lock:
                self.count += 1
                k = self.count
                if verdict != 'ok':
                    self.failed += 1
                self.lines.append('%.3f\t%.3f\t%d\t%s\t%d\t%s\t%s\n' %
                                  (t0, t1, n, meth, code, verdict, detail.replace('\t', ' ')))
            if (self.mode == 'tsa' and verdict == 'ok' and
                    (k % self.opts['keep'] == 1 or self.opts['keep'] == 1)):
                with open(os.path.join(self.outdir, 'tok-%d.tsr' % k), 'wb') as f:
                    f.write(data)
            time.sleep(self.opts['pause'])
        if conn is not None:
            conn.close()

    def run(self):
        stop_at = time.time() + self.opts['max']
        th = [threading.Thread(target=self.client, args=(n, stop_at))
              for n in range(self.opts['clients'])]
        for t in th:
            t.start()
        for t in th:
            t.join()
        with open(os.path.join(self.outdir, 'log.tsv'), 'w') as f:
            f.writelines(sorted(self.lines))
        print('total=%d ok=%d failed=%d' % (self.count, self.count - self.failed, self.failed))


def main(argv):
    if len(argv) < 5 or argv[1] not in ('tsa', 'ocsp'):
        sys.stderr.write(__doc__)
        return 2
    mode, url, src, outdir = argv[1:5]
    opts = {'clients': 4, 'stop': os.path.join(outdir, 'stop'), 'max': 60.0, 'keep': 25,
            'pause': 0.01}
    names = {'--clients': ('clients', int), '--stop-file': ('stop', str),
             '--max-seconds': ('max', float), '--keep-every': ('keep', int),
             '--pause': ('pause', float)}
    rest = argv[5:]
    while rest:
        if rest[0] not in names or len(rest) < 2:
            sys.stderr.write('nodeload.py: bad option %s\n' % rest[0])
            return 2
        key, conv = names[rest[0]]
        opts[key] = conv(rest[1])
        rest = rest[2:]
    os.makedirs(outdir, exist_ok=True)
    Loop(mode, url, src, outdir, opts).run()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
