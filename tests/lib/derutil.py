#!/usr/bin/env python3
"""derutil.py: the DER reader/writer of the tsad and ocspd integration tests.

A minimal X.690 DER walker (tlv, kids, oid) and writer (enc, enc_oid), and on top of them:
  - RFC 3161 TimeStampResp / TimeStampReq readers and a TimeStampReq writer for requests
    openssl cannot make (tests/integration/test_tsad*.sh);
  - RFC 6960 OCSPResponse / OCSPRequest readers and an OCSPRequest writer
    (tests/integration/test_ocspd*.sh), the responder key hash of RFC 6960 §4.2.1 (OCSP-08);
  - small byte-level tools for hostile input (BER copies, nesting bombs, flipped bytes) and the
    raw HTTP clients of test_tsad_hostile.sh (clients that vanish, pipelined requests).

Importable (`import derutil`) or run as `derutil.py COMMAND ARGS...`; readers print key=value
lines (all or nothing: a parse error prints nothing and exits non-zero). Commands:
  tsp-resp FILE             TimeStampResp: status, failbits, failinfo_minimal, token fields
  tsp-req FILE              TimeStampReq: req_imprint_der, req_nonce
  tsp-mkreq OUT K=V...      TimeStampReq from version, alg, params (null|absent|HEX), hash,
                            policy, nonce, certreq=1, ext=OID [critical=1]
  ocsp-resp FILE            OCSPResponse: status, type, rid, produced, single.N.*, ext.*
  ocsp-req FILE             OCSPRequest: certid.N, ext.*
  ocsp-mkreq OUT FROM.req OPTS...
                            OCSPRequest with FROM's CertIDs (see ocsp_mkreq)
  keyhash CERT              SHA-1 of the subjectPublicKey BIT STRING contents (hex)
  certsha256 CERT           SHA-256 of the certificate DER (hex)
  mdb DUMP                  mdb_dump output -> "KEYHEX VALUE" lines
  ber IN OUT                IN with its outer length made indefinite (BER, not DER)
  ber-longlen IN OUT        IN with its short outer length written in long form, one octet
                            more than needed (BER, not DER)
  nest OUT DEPTH            DEPTH nested SEQUENCEs around a NULL
  flip FILE OFFSET          XOR 1 into the byte at OFFSET (negative: from the end)
  tsa-abort PORT FILE N close|rst
                            N clients POST FILE to /tsa and go away at once
  tsa-pipeline PORT FILE N  N POSTs of FILE back to back on one connection; prints the
                            number of "200 OK" answers
"""

import hashlib
import socket
import struct
import subprocess
import sys

OID_PKIX_OCSP_NONCE = '1.3.6.1.5.5.7.48.1.2'
OID_PKIX_OCSP_ARCHIVE_CUTOFF = '1.3.6.1.5.5.7.48.1.6'
OID_QC_STATEMENTS = '1.3.6.1.5.5.7.1.3'
OID_SIGNING_CERT = '1.2.840.113549.1.9.16.2.12'
OID_SIGNING_CERT_V2 = '1.2.840.113549.1.9.16.2.47'

# ---- reader ----


def tlv(b, i):
    """One TLV at offset i: (tag, contents, offset after it). Single-octet tags only."""
    t, l = b[i], b[i + 1]
    i += 2
    if l & 0x80:
        n = l & 0x7f
        l = int.from_bytes(b[i:i + n], 'big')
        i += n
    if i + l > len(b):
        raise ValueError('truncated')
    return t, b[i:i + l], i + l


def kids(v):
    """The TLVs of a constructed value's contents: [(tag, contents, whole TLV)]."""
    out, i = [], 0
    while i < len(v):
        t, c, j = tlv(v, i)
        out.append((t, c, v[i:j]))
        i = j
    return out


def oid(v):
    """OBJECT IDENTIFIER contents -> dotted string."""
    parts, n = [], 0
    for c in v:
        n = (n << 7) | (c & 0x7f)
        if not c & 0x80:
            parts.append(n)
            n = 0
    first = min(parts[0] // 40, 2)
    return '.'.join(str(x) for x in [first, parts[0] - 40 * first] + parts[1:])


def uint(v):
    return int.from_bytes(v, 'big')


def cert_der(path):
    """A PEM or DER certificate file as DER (through openssl x509)."""
    return subprocess.run(['openssl', 'x509', '-in', path, '-outform', 'DER'],
                          capture_output=True, check=True).stdout


# ---- writer ----


def enc(tag, body):
    """One TLV with a minimal (DER) length."""
    n = len(body)
    if n < 0x80:
        return bytes([tag, n]) + body
    nb = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return bytes([tag, 0x80 | len(nb)]) + nb + body


def enc_oid(s):
    """Dotted string -> OBJECT IDENTIFIER TLV."""
    p = [int(x) for x in s.split('.')]
    body = b''
    for n in [40 * p[0] + p[1]] + p[2:]:
        chunk = [n & 0x7f]
        while n > 0x7f:
            n >>= 7
            chunk.insert(0, 0x80 | (n & 0x7f))
        body += bytes(chunk)
    return enc(0x06, body)


def enc_ext(o, crit, value):
    """Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue }."""
    return enc(0x30, enc_oid(o) + (b'\x01\x01\xff' if crit else b'') + enc(0x04, value))


# ---- RFC 3161 ----


def _failinfo(st):
    """PKIFailureInfo BIT STRING of a PKIStatusInfo -> (bit numbers, DER-minimal yes/no/n/a)."""
    fi = [c for t, c, _ in st if t == 0x03]
    if not fi:
        return [], 'n/a'
    unused, data = fi[0][0], fi[0][1:]
    bits = [i for i in range(8 * len(data)) if data[i // 8] & (0x80 >> i % 8)]
    # X.690 §11.2.2: no trailing zero bits, unused bits exactly the trailing zeros
    last = data[-1] if data else 0
    tz = (last & -last).bit_length() - 1 if last else 8
    return bits, 'yes' if data and last and unused == tz else 'no'


def _tstinfo(v, out):
    f = kids(v)
    out.append(('tst_version', uint(f[0][1])))
    out.append(('policy', oid(f[1][1])))
    imp = kids(f[2][1])
    alg = kids(imp[0][1])
    out.append(('imprint_der', f[2][2].hex()))
    out.append(('imprint_alg', oid(alg[0][1])))
    out.append(('imprint_hash', imp[1][1].hex()))
    out.append(('serial', f[3][1].hex()))
    out.append(('gentime', f[4][1].decode()))
    opt = {t: c for t, c, _ in f[5:]}
    out.append(('accuracy', f[5][2].hex() if len(f) > 5 and f[5][0] == 0x30 else ''))
    out.append(('ordering', 'present' if 0x01 in opt else 'absent'))
    out.append(('nonce', opt[0x02].hex() if 0x02 in opt else ''))
    out.append(('tsa', 'present' if 0xa0 in opt else 'absent'))
    exts, crit, qcs = [], 'no', []
    for _, c, _ in (kids(opt[0xa1]) if 0xa1 in opt else []):  # [1] IMPLICIT Extensions
        e = kids(c)
        exts.append(oid(e[0][1]))
        if len(e) == 3 and e[1][0] == 0x01 and e[1][1] != b'\x00':
            crit = 'yes'
        if oid(e[0][1]) == OID_QC_STATEMENTS:
            qcs += [oid(kids(s)[0][1]) for _, s, _ in kids(kids(e[-1][1])[0][1])]
    out.append(('ext_oids', ','.join(exts)))
    out.append(('ext_critical', crit))
    out.append(('qc_statements', ','.join(qcs)))


def _ess_cert_id(name, a, out):
    """SigningCertificate(V2) attribute value -> certHash, hashAlgorithm, issuerSerial."""
    val = kids(a[1][1])[0][1]
    cid = kids(kids(kids(val)[0][1])[0][1])  # first ESSCertID(v2)
    key = 'essv2' if name == OID_SIGNING_CERT_V2 else 'essv1'
    out.append((key + '_hash', [c for t, c, _ in cid if t == 0x04][0].hex()))
    out.append((key + '_alg', 'present' if cid[0][0] == 0x30 else 'absent'))
    out.append((key + '_issuer_serial', 'present' if cid[-1][0] == 0x30 else 'absent'))


def _signed_data(v, out):
    f = kids(v)
    out.append(('sd_version', uint(f[0][1])))
    eci = kids(f[2][1])
    out.append(('econtent_type', oid(eci[0][1])))
    certs = [c for t, c, _ in f[3:] if t == 0xa0]
    certs = kids(certs[0]) if certs else []
    out.append(('certs', len(certs)))
    out.append(('cert_sha256', ','.join(hashlib.sha256(raw).hexdigest() for _, _, raw in certs)))
    sis = kids([c for t, c, _ in f[3:] if t == 0x31][0])
    out.append(('signer_infos', len(sis)))
    attrs = kids([c for t, c, _ in kids(sis[0][1]) if t == 0xa0][0])
    names = []
    for _, a, _ in attrs:
        a = kids(a)
        name = oid(a[0][1])
        names.append(name)
        if name in (OID_SIGNING_CERT_V2, OID_SIGNING_CERT):
            _ess_cert_id(name, a, out)
    out.append(('attrs', ','.join(names)))
    _tstinfo(kids(kids(eci[1][1])[0][1])[0][1], out)


def tsp_resp(b):
    """TimeStampResp (RFC 3161 §2.4.2) -> [(key, value)]."""
    out = []
    _, v, end = tlv(b, 0)
    out.append(('trailing', len(b) - end))
    f = kids(v)
    st = kids(f[0][1])
    out.append(('status', uint(st[0][1])))
    bits, minimal = _failinfo(st)
    out.append(('failbits', ','.join(str(x) for x in bits)))
    out.append(('failinfo_minimal', minimal))
    out.append(('token', 'present' if len(f) > 1 else 'absent'))
    if len(f) > 1:
        out.append(('token_sha256', hashlib.sha256(f[1][2]).hexdigest()))
        ci = kids(f[1][1])
        out.append(('content_type', oid(ci[0][1])))
        _signed_data(kids(ci[1][1])[0][1], out)
    return out


def tsp_req(b):
    """TimeStampReq (RFC 3161 §2.4.1) -> [(key, value)]."""
    out = []
    f = kids(tlv(b, 0)[1])
    out.append(('req_imprint_der', f[1][2].hex()))
    for t, c, _ in f[2:]:
        if t == 0x02:
            out.append(('req_nonce', c.hex()))
    return out


def tsp_mkreq(a):
    """TimeStampReq DER from a dict: version (1), alg (sha256 OID), params (null | absent | HEX
    of the parameters TLV), hash (HEX, 32 x 0x11), policy, nonce (HEX INTEGER contents),
    certreq=1, ext=OID [critical=1] (one [0] extension with a NULL value)."""
    alg = enc_oid(a.get('alg', '2.16.840.1.101.3.4.2.1'))
    params = a.get('params', 'null')
    if params == 'null':
        alg += b'\x05\x00'
    elif params != 'absent':
        alg += bytes.fromhex(params)
    body = enc(0x02, bytes([int(a.get('version', '1'))]))
    body += enc(0x30, enc(0x30, alg) + enc(0x04, bytes.fromhex(a.get('hash', '11' * 32))))
    if 'policy' in a:
        body += enc_oid(a['policy'])
    if 'nonce' in a:
        body += enc(0x02, bytes.fromhex(a['nonce']))
    if a.get('certreq') == '1':
        body += b'\x01\x01\xff'
    if 'ext' in a:  # [0] IMPLICIT Extensions: one Extension { oid, [critical], OCTET STRING }
        body += enc(0xa0, enc_ext(a['ext'], a.get('critical') == '1', b'\x05\x00'))
    return enc(0x30, body)


# ---- RFC 6960 ----


def _ocsp_exts(v, pre, out):
    """Extensions SEQUENCE contents -> PRE.OID=crit:valuehex lines and PRE=OID,OID."""
    names = []
    for _, e, _ in kids(v):
        k = kids(e)
        o = oid(k[0][1])
        crit = len(k) == 3 and k[1][0] == 0x01 and k[1][1] != b'\x00'
        out.append(('%s.%s' % (pre, o), '%d:%s' % (crit, k[-1][1].hex())))
        names.append(o)
    out.append((pre, ','.join(names)))


def _ocsp_single(n, s, out):
    """SingleResponse number n -> single.N.* lines."""
    sk = kids(s)
    p = 'single.%d' % n
    out.append((p + '.certid', sk[0][2].hex()))
    out.append((p + '.hashalg', oid(kids(kids(sk[0][1])[0][1])[0][1])))
    st = sk[1]
    out.append((p + '.status',
                {0x80: 'good', 0xa1: 'revoked', 0x82: 'unknown'}.get(st[0], hex(st[0]))))
    if st[0] == 0xa1:
        ri = kids(st[1])
        out.append((p + '.revtime', ri[0][1].decode()))
        if len(ri) > 1:
            out.append((p + '.reason', uint(tlv(ri[1][1], 0)[1])))
    out.append((p + '.this', sk[2][1].decode()))
    for x in sk[3:]:
        if x[0] == 0xa0:
            out.append((p + '.next', tlv(x[1], 0)[1].decode()))
        elif x[0] == 0xa1:
            _ocsp_exts(tlv(x[1], 0)[1], p + '.ext', out)
            for _, e, _ in kids(tlv(x[1], 0)[1]):
                ek = kids(e)
                if oid(ek[0][1]) == OID_PKIX_OCSP_ARCHIVE_CUTOFF:
                    out.append((p + '.archive_cutoff', tlv(ek[-1][1], 0)[1].decode()))


def ocsp_resp(b):
    """OCSPResponse (RFC 6960 §4.2.1) -> [(key, value)]."""
    out = []
    _, top, end = tlv(b, 0)
    out.append(('trailing', len(b) - end))
    k = kids(top)
    out.append(('status', uint(k[0][1])))
    out.append(('has_bytes', int(len(k) > 1)))
    if len(k) < 2:
        return out
    rb = kids(kids(k[1][1])[0][1])
    out.append(('type', oid(rb[0][1])))
    basic = kids(tlv(rb[1][1], 0)[1])
    tbs = kids(basic[0][1])
    out.append(('sigalg', oid(kids(basic[1][1])[0][1])))
    certs = kids(kids(basic[3][1])[0][1]) if len(basic) > 3 else []
    out.append(('certs', len(certs)))
    for n, c in enumerate(certs):
        out.append(('cert.%d.sha256' % n, hashlib.sha256(c[2]).hexdigest()))
    i = 1 if tbs[0][0] == 0xa0 else 0
    out.append(('version_present', i))
    rid = tbs[i]
    out.append(('rid', 'bykey:' + tlv(rid[1], 0)[1].hex() if rid[0] == 0xa2 else 'byname'))
    out.append(('produced', tbs[i + 1][1].decode()))
    singles = kids(tbs[i + 2][1])
    out.append(('singles', len(singles)))
    for n, s in enumerate(singles):
        _ocsp_single(n, s[1], out)
    for x in tbs[i + 3:]:
        if x[0] == 0xa1:
            _ocsp_exts(tlv(x[1], 0)[1], 'ext', out)
    return out


def _ocsp_req_tbs(b):
    return kids(kids(tlv(b, 0)[1])[0][1])


def ocsp_req(b):
    """OCSPRequest (RFC 6960 §4.1.1) -> [(key, value)]."""
    out = []
    for x in _ocsp_req_tbs(b):
        if x[0] == 0x30:
            for n, r in enumerate(kids(x[1])):
                out.append(('certid.%d' % n, kids(r[1])[0][2].hex()))
        elif x[0] == 0xa2:
            _ocsp_exts(tlv(x[1], 0)[1], 'ext', out)
    return out


def _ocsp_mkreq_opts(args):
    opts, exts, sexts = {'copies': '0'}, [], []
    for a in args:
        k, v = a.split('=', 1)
        if k in ('ext', 'single_ext'):
            o, c, h = v.split(':')
            (exts if k == 'ext' else sexts).append(enc_ext(o, c == '1', bytes.fromhex(h)))
        else:
            opts[k] = v
    if 'nonce' in opts:
        n = int(opts['nonce'])
        exts.append(enc_ext(OID_PKIX_OCSP_NONCE, False,
                            enc(0x04, bytes(range(1, n + 1))) if n else b''))
    return opts, exts, sexts


def _certid_noparams(certid):
    """A CertID whose hashAlgorithm has no parameters (a NULL there dropped), the other
    spelling RFC 5754 allows and Go's x/crypto/ocsp sends."""
    parts = kids(tlv(certid, 0)[1])
    alg = kids(parts[0][1])
    return enc(0x30, enc(0x30, alg[0][2]) + b''.join(p[2] for p in parts[1:]))


def ocsp_mkreq(src, args):
    """OCSPRequest DER with the CertIDs of the request src (bytes). args, K=V strings:
    copies=N (CertIDs repeated to N), nonce=LEN, ext=OID:CRIT:HEX..., single_ext=OID:CRIT:HEX...
    (HEX = extnValue contents), version=N (explicit), requestor=EMAIL (requestorName),
    signed=1 (a bogus optionalSignature), trailing=1 (one byte after the request),
    noparams=1 (each CertID's hashAlgorithm without parameters)."""
    ids = []
    for x in _ocsp_req_tbs(src):
        if x[0] == 0x30:
            ids = [kids(r[1])[0][2] for r in kids(x[1])]
    opts, exts, sexts = _ocsp_mkreq_opts(args)
    if opts.get('noparams') == '1':
        ids = [_certid_noparams(c) for c in ids]
    reqs = b''
    for i in range(int(opts['copies']) or len(ids)):
        body = ids[i % len(ids)]
        if sexts:
            body += enc(0xa0, enc(0x30, b''.join(sexts)))
        reqs += enc(0x30, body)
    tbs = b''
    if 'version' in opts:
        tbs += enc(0xa0, enc(0x02, bytes([int(opts['version'])])))
    if 'requestor' in opts:
        tbs += enc(0xa1, enc(0x81, opts['requestor'].encode()))
    tbs += enc(0x30, reqs)
    if exts:
        tbs += enc(0xa2, enc(0x30, b''.join(exts)))
    top = enc(0x30, tbs)
    if opts.get('signed') == '1':  # optionalSignature with a signature that verifies nothing
        alg = enc(0x30, enc_oid('1.2.840.10045.4.3.2'))
        top += enc(0xa0, enc(0x30, alg + enc(0x03, b'\x00' + bytes(range(64)))))
    der = enc(0x30, top)
    return der + b'\x00' if opts.get('trailing') == '1' else der


def key_hash(cert):
    """SHA-1 of a certificate's subjectPublicKey BIT STRING contents (RFC 6960 §4.2.1)."""
    tbs = kids(kids(tlv(cert, 0)[1])[0][1])
    i = 1 if tbs[0][0] == 0xa0 else 0
    spki = kids(tbs[i + 5][1])
    return hashlib.sha1(spki[1][1][1:]).hexdigest()


# ---- hostile input ----


def ber_indefinite(b):
    """The outer TLV of b with an indefinite length and end-of-contents octets."""
    t, v, _ = tlv(b, 0)
    return bytes([t, 0x80]) + v + b'\x00\x00'


def ber_long_length(b):
    """b (short outer length) with that length in long form with a needless extra octet."""
    if b[1] >= 0x80:
        raise ValueError('outer length is not in short form')
    return bytes([b[0], 0x82, 0x00, b[1]]) + b[2:]


def nest(depth):
    inner = b'\x05\x00'
    for _ in range(depth):
        inner = enc(0x30, inner)
    return inner


def mdb_rows(lines):
    """mdb_dump (hex) output -> [(key bytes, value bytes)]."""
    rows, data = [], False
    for l in lines:
        if l.startswith('HEADER=END'):
            data = True
        elif l.startswith('DATA=END'):
            break
        elif data:
            rows.append(bytes.fromhex(l.strip()))
    return list(zip(rows[0::2], rows[1::2]))


def _tsa_http_post(q):
    return ('POST /tsa HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/timestamp-query\r\n'
            'Content-Length: %d\r\n\r\n' % len(q)).encode() + q


def tsa_abort(port, q, n, rst):
    """n clients that send a whole request and go away at once (RST when rst)."""
    for _ in range(n):
        s = socket.create_connection(('127.0.0.1', port))
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        s.sendall(_tsa_http_post(q))
        s.close()


def tsa_pipeline(port, q, n):
    """n requests written back to back on one connection; the number of 200 answers."""
    s = socket.create_connection(('127.0.0.1', port))
    s.settimeout(10)
    s.sendall(_tsa_http_post(q) * n)
    data = b''
    try:
        while data.count(b'HTTP/1.1 200 OK') < n:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError:
        pass
    s.close()
    return data.count(b'HTTP/1.1 200 OK')


# ---- command line ----


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def _write(path, b):
    with open(path, 'wb') as f:
        f.write(b)


def _print_kv(pairs):
    sys.stdout.write(''.join('%s=%s\n' % kv for kv in pairs))


def _flip(path, offset):
    b = bytearray(_read(path))
    b[offset] ^= 1
    _write(path, bytes(b))


def _mdb(path):
    with open(path) as f:
        for k, v in mdb_rows(f.read().splitlines()):
            print(k.hex(), v.decode())


COMMANDS = {
    'tsp-resp': lambda a: _print_kv(tsp_resp(_read(a[0]))),
    'tsp-req': lambda a: _print_kv(tsp_req(_read(a[0]))),
    'tsp-mkreq': lambda a: _write(a[0], tsp_mkreq(dict(x.split('=', 1) for x in a[1:]))),
    'ocsp-resp': lambda a: _print_kv(ocsp_resp(_read(a[0]))),
    'ocsp-req': lambda a: _print_kv(ocsp_req(_read(a[0]))),
    'ocsp-mkreq': lambda a: _write(a[0], ocsp_mkreq(_read(a[1]), a[2:])),
    'keyhash': lambda a: print(key_hash(cert_der(a[0]))),
    'certsha256': lambda a: print(hashlib.sha256(cert_der(a[0])).hexdigest()),
    'mdb': lambda a: _mdb(a[0]),
    'ber': lambda a: _write(a[1], ber_indefinite(_read(a[0]))),
    'ber-longlen': lambda a: _write(a[1], ber_long_length(_read(a[0]))),
    'nest': lambda a: _write(a[0], nest(int(a[1]))),
    'flip': lambda a: _flip(a[0], int(a[1])),
    'tsa-abort': lambda a: tsa_abort(int(a[0]), _read(a[1]), int(a[2]), a[3] == 'rst'),
    'tsa-pipeline': lambda a: print(tsa_pipeline(int(a[0]), _read(a[1]), int(a[2]))),
}


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        sys.stderr.write('usage: derutil.py %s ARGS...\n' % '|'.join(COMMANDS))
        return 2
    COMMANDS[argv[1]](argv[2:])
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
