/*
 * libFuzzer target: the CRL side of `ocspctl import-crl` (ocsp/ocspctl_import.c) on arbitrary
 * bytes: ocspctl_crl_parse (PEM or DER, RFC 5280 §5.1), then what the import reads before and
 * after the signature check (which no fuzzed CRL passes, so it is skipped here):
 * ocspctl_crl_info (critical extensions §5.2/§5.3, crlNumber §5.2.3, deltaCRLIndicator
 * §5.2.4, issuingDistributionPoint §5.2.5, thisUpdate/nextUpdate) and ocspctl_crl_entry for every
 * entry, as a full and as a delta CRL. Properties checked beyond "no crash": no OpenSSL error is
 * left behind; a delta CRL has a crlNumber; an accepted entry has a serial of 1..OCSP_SERIAL_MAX
 * octets, a CRLReason 0..10 but not 7 (§5.3.1) or none (also for a reasonCode that is not a
 * CRLReason: still a revocation), and removeFromCRL only in a delta CRL.
 */
#include "common/status.h"
#include "ocsp/ocspctl_int.h"

#include <openssl/err.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_entry(X509_REVOKED *r, bool delta)
{
    struct ctl_serial s;
    char hex[2 * OCSP_SERIAL_MAX + 1];
    int reason = -2;
    int64_t when = 0;

    memset(&s, 0, sizeof(s));
    if (ocspctl_crl_entry(r, delta, &s, &reason, &when) != ST_OK)
        return;
    if (s.len == 0 || s.len > OCSP_SERIAL_MAX)
        abort();
    /* RFC 5280 §5.3.1, written out here rather than taken from ocsp_reason_valid() */
    if (reason != OCSP_REASON_NONE && (reason < 0 || reason > 10 || reason == 7))
        abort();
    if (reason == OCSP_REVOKED_STATUS_REMOVEFROMCRL && !delta)
        abort();
    ocspctl_serial_hex(s.b, s.len, hex);
    if (strlen(hex) == 0 || strlen(hex) > 2 * s.len)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    X509_CRL *crl;
    STACK_OF(X509_REVOKED) * revs;
    struct crl_info ci;

    if (!quiet) { /* the parsers' messages, not the sanitizers' reports (fd 2 stays open) */
        FILE *null = fopen("/dev/null", "w");
        if (null != NULL)
            stderr = null;
        quiet = true;
    }
    if ((crl = ocspctl_crl_parse(data, size)) == NULL)
        return 0;
    if (ERR_peek_error() != 0)
        abort(); /* the parser leaves no error behind for the next OpenSSL call */
    if (ocspctl_crl_info(crl, "fuzz", &ci) == ST_OK && ci.delta && !ci.has_number)
        abort();
    revs = X509_CRL_get_REVOKED(crl);
    for (int i = 0; revs != NULL && i < sk_X509_REVOKED_num(revs); i++) {
        check_entry(sk_X509_REVOKED_value(revs, i), false);
        check_entry(sk_X509_REVOKED_value(revs, i), true);
    }
    X509_CRL_free(crl);
    ERR_clear_error();
    return 0;
}
