#!/usr/bin/env python3
"""Write the hand-made seed inputs (seed-*) of the fuzz targets into tests/fuzz/corpus/<target>/.

Run once when a target's input format changes; the files are kept in git and replayed by
`make check`. The CRLs are signed with a throwaway key made here (python3-cryptography): the
import's signature check is not what the CRL target fuzzes."""
import base64
import datetime
import os
import struct
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TOP = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(TOP, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- config: first byte: bit 0 tsad, bit 1 also through a file ----
TSAD = """[server]
listen = 127.0.0.1:3180
threads = 2
max_body = 16k
timeout = 15s
[log]
level = info
[clock]
chrony_socket = /run/chrony/chronyd.sock
poll_interval = 1s
max_update_age = 1100s
kernel_check = yes
[store]
path = /var/lib/tsad
map_size = 16G
fill_limit = 0.8
journal = yes
journal_segment = 16M
[signer]
pkcs11_module = /usr/lib/softhsm/libsofthsm2.so
token = tsa
pin_file = /etc/tsad/pin
queue_max = 4096
batch_max = 64
[tsa]
hashes = sha256 sha384 sha512
[tsu example]
policy = 1.3.6.1.4.1.55555.1.1
path = /tsa
default = yes
certificate = /etc/tsad/tsu.pem
chain = /etc/tsad/ca-chain.pem
key_label = tsu-example
signature = ecdsa
digest = sha256
accuracy = 1s
qualified = no
tsa_name = yes
"""
OCSPD = """[server]
listen = 127.0.0.1:3181
threads = 2
max_body = 8k
base_path = /ocsp
[log]
level = debug
[store]
path = /var/lib/ocspd
map_size = 4G
fill_limit = 80%
reader_check = 60s
[signer]
pkcs11_module = /usr/lib/softhsm/libsofthsm2.so
token = ocsp
pin_file = /etc/ocspd/pin
[ocsp]
refresh_interval = 60s
refresh_margin = 50
max_age = 1h
max_certids = 8
"""
put("config", "tsad", b"\x03" + TSAD.encode())
put("config", "ocspd", b"\x02" + OCSPD.encode())
put("config", "tsad-two-tsu", b"\x01" + (TSAD + "[tsu second]\npolicy = 1.2.3.4\npath = /tsa\n"
                                         "certificate = /a.pem\nchain = /b.pem\nkey_file = /k\n").encode())
put("config", "tsad-qualified", b"\x03" + TSAD.replace("qualified = no", "qualified = yes").encode())
put("config", "tsad-bad-hash", b"\x03" + TSAD.replace("sha384 sha512", "md5").encode())
put("config", "ocspd-unknown-key", b"\x02[ocsp]\nfrobnicate = 1\n")
put("config", "ocspd-bad-duration", b"\x02[ocsp]\nrefresh_interval = 5 fortnights\n")
put("config", "ocspd-syntax", b"\x02[server\nlisten 127.0.0.1\n")
put("config", "ocspd-long-line", b"\x02[server]\nlisten = " + b"1" * 300 + b"\n")
put("config", "tsad-crlf-comments", b"\x01; comment\r\n# other\r\n[server]\r\nlisten = [::1]:0\r\n")
put("config", "ocspd-sizes", b"\x00[server]\nmax_body = 1G\n[store]\nmap_size = 18446744073709551615\n")
put("config", "empty", b"\x03")

# ---- index_import: OpenSSL `ca` index.txt lines ----
put("index_import", "valid", "V\t301231235959Z\t\t1000\tunknown\t/CN=leaf\n")
put("index_import", "revoked-reasons",
    "R\t301231235959Z\t240101000000Z,keyCompromise\t1001\tunknown\t/CN=a\n"
    "R\t20501231235959Z\t240101000000Z,certificateHold\t0x1002\tunknown\t/CN=b\n"
    "R\t301231235959Z\t240101000000Z,removeFromCRL\t1003\tunknown\t/CN=c\n"
    "R\t301231235959Z\t240101000000Z\tFF\tunknown\t/CN=d\n")
put("index_import", "openssl-spellings",
    "R\t301231235959Z\t240101000000Z,holdInstruction,1.2.840.10040.2.2\t10\tunknown\t/CN=e\n"
    "R\t301231235959Z\t240101000000Z,CAkeyTime,20240101000000Z\t11\tunknown\t/CN=f\n")
put("index_import", "expired-crlf", "E\t200101000000Z\t\t0ABC\tunknown\t/CN=g\r\n\r\n")
put("index_import", "long-serial", "V\t99991231235959Z\t\t" + "7F" * 19 + "\tunknown\t/CN=h\n")
put("index_import", "bad-lines", "X\t301231235959Z\t\t1\tunknown\t/CN=i\nV\t30123123595\t\t1\n"
    "V\t301231235959Z\t\t00\tunknown\n-----BEGIN CERTIFICATE-----\nR\t301231235959Z\tbad\t2\n")
put("index_import", "reason-7", "R\t301231235959Z\t240101000000Z,7\t12\tunknown\t/CN=j\n")
put("index_import", "few-fields", "V\t301231235959Z\n\tV\t\t\t\n")
put("index_import", "years", "V\t00010101000000Z\t\t1\tunknown\t/CN=k\nV\t500101000000Z\t\t2\n"
    "V\t19700101000000Z\t\t3\tunknown\t/CN=l\n")

# ---- ocsp_get: first byte = room (0xff: OCSP_REQ_MAX), then the path ----
req_dir = os.path.join(TOP, "corpus", "ocsp_request")
reqs = sorted(os.listdir(req_dir))[:2]
for i, r in enumerate(reqs):
    der = open(os.path.join(req_dir, r), "rb").read()
    b64 = base64.b64encode(der).decode()
    put("ocsp_get", "request%d" % i, b"\xff" + b64.encode())
    put("ocsp_get", "request%d-escaped" % i, b"\xff//" + b64.replace("+", "%2B").replace(
        "/", "%2F").replace("=", "%3d").encode())
    put("ocsp_get", "request%d-unpadded" % i, b"\xff/" + b64.rstrip("=").encode())
put("ocsp_get", "small-room", b"\x01QUJD")
put("ocsp_get", "exact-room", b"\x02/QUI=")
put("ocsp_get", "bad-escape", b"\xff%4G%")
put("ocsp_get", "bad-padding", b"\xffQQ=")
put("ocsp_get", "one-char-extra", b"\xffQUJDR")
put("ocsp_get", "form-plus", b"\xff+/+/")

# ---- der_write: programs (see fuzz_der_write.c run()) ----
def tbytes(sec, nsec):
    v = sec + (1 << 39)
    return v.to_bytes(5, "big") + struct.pack(">I", nsec)

T2026 = 1767323045
put("der_write", "integers", bytes([0, 1, 5, 0, 2, 0x80, 1, 0, 3, 0, 0, 0, 0, 0]) +
    bytes([1]) + b"\xff" * 8 + bytes([1]) + b"\x00" * 8)
put("der_write", "oids", bytes([2, 5, 1, 1, 2, 1, 0x48, 1, 0xce, 1, 0x3d, 1, 4]) +
    bytes([2, 2, 2, 8]) + b"\xff" * 8 + bytes([2, 0, 0]))
put("der_write", "octets", bytes([3, 0]) + bytes([3, 5]) + b"hello" + bytes([0x83, 200]) +
    bytes(range(244)))
put("der_write", "times", bytes([4]) + tbytes(T2026, 123456789) + bytes([9]) +
    bytes([4]) + tbytes(T2026, 500000000) + bytes([3]) + bytes([4]) + tbytes(T2026, 0) +
    bytes([6]) + bytes([4]) + tbytes(253402300799, 999999999) + bytes([9]))
put("der_write", "time-out-of-range", bytes([4]) + tbytes(253402300800, 0) + bytes([0]))
put("der_write", "bool-null-bits", bytes([5, 0x85, 6, 7, 0, 0, 0, 0, 7, 0x80, 0, 0, 1, 7]) +
    b"\xff\xff\xff\xff")
put("der_write", "nested", bytes([8, 8, 9, 3, 5, 10, 9, 0, 6, 10, 10, 3, 2]) + b"ok")
put("der_write", "set-of", bytes([10, 5, 3]) + b"abc" + bytes([0, 1]) + b"\x80" + bytes([1]) +
    bytes([0, 1]) + bytes([2, 0]) + b"zz" + bytes([1, 4]) + b"\x00\x00\x00\x01" + bytes([0]))
put("der_write", "set-in-seq", bytes([8, 10, 2, 1]) + b"b" + bytes([0, 1]) + b"a" + bytes([0]))
put("der_write", "context", bytes([11, 0, 3]) + b"abc" + bytes([11, 30, 0, 9, 1, 6, 10]))

# ---- crl_import: CRLs ----
key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fuzz CA")])
now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def revoked(serial, reason=None, when=now):
    b = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when)
    if reason is not None:
        b = b.add_extension(x509.CRLReason(reason), critical=False)
    return b.build()


def crl(entries=(), number=1, delta=None, idp=None):
    b = x509.CertificateRevocationListBuilder().issuer_name(name).last_update(now)
    b = b.next_update(now + datetime.timedelta(days=7))
    if number is not None:
        b = b.add_extension(x509.CRLNumber(number), critical=False)
    if delta is not None:
        b = b.add_extension(x509.DeltaCRLIndicator(delta), critical=True)
    if idp is not None:
        b = b.add_extension(idp, critical=True)
    for e in entries:
        b = b.add_revoked_certificate(e)
    return b.sign(key, hashes.SHA256())


R = x509.ReasonFlags
full = crl([revoked(0x1000, R.key_compromise), revoked(0x1001, R.certificate_hold),
            revoked(0x1002), revoked((1 << 159) - 1, R.superseded)], number=5)
put("crl_import", "full.der", full.public_bytes(serialization.Encoding.DER))
put("crl_import", "full.pem", full.public_bytes(serialization.Encoding.PEM))
put("crl_import", "empty.der", crl().public_bytes(serialization.Encoding.DER))
put("crl_import", "delta.der", crl([revoked(0x1001, R.remove_from_crl),
                                    revoked(0x2000, R.aa_compromise)], number=6,
                                   delta=5).public_bytes(serialization.Encoding.DER))
put("crl_import", "no-number.der", crl([revoked(7)], number=None).public_bytes(
    serialization.Encoding.DER))
idp_user = x509.IssuingDistributionPoint(None, None, True, False, None, False, False)
put("crl_import", "idp-user.der", crl([revoked(9)], idp=idp_user).public_bytes(
    serialization.Encoding.DER))
idp_ind = x509.IssuingDistributionPoint(None, None, False, False, None, True, False)
put("crl_import", "idp-indirect.der", crl(idp=idp_ind).public_bytes(serialization.Encoding.DER))
idp_dp = x509.IssuingDistributionPoint(
    [x509.UniformResourceIdentifier("http://crl.example/part1.crl")], None, False, False, None,
    False, False)
put("crl_import", "idp-partition.der", crl(idp=idp_dp).public_bytes(serialization.Encoding.DER))
der = full.public_bytes(serialization.Encoding.DER)
put("crl_import", "trailing.der", der + b"\x00")
put("crl_import", "truncated.der", der[:len(der) // 2])
put("crl_import", "bad.pem", b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
