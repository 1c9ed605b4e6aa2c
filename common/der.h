/*
 * der: the project's one DER writer (DESIGN D1; X.690 DER rules: minimal lengths, minimal
 * INTEGERs, DEFAULT values omitted, SET OF sorted). Used for the CMS SignedData envelope of
 * time-stamp tokens (RFC 5652), TSTInfo (RFC 3161), PKIStatusInfo, and OCSP BasicOCSPResponse.
 *
 * Writing is forward: der_begin() opens a constructed element and returns a mark, der_end()
 * closes it, fixing the length (the content is moved when the length needs more than one
 * octet). Errors are sticky: after a failure every call is a no-op and der_finish() reports it,
 * so callers check once at the end.
 *
 * A writer over a caller buffer never grows; one from der_init_alloc() grows with realloc.
 * Not thread-safe; use one writer per thread.
 */
#ifndef COMMON_DER_H
#define COMMON_DER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Universal and context tags used by the project. */
enum {
    DER_BOOLEAN = 0x01,
    DER_INTEGER = 0x02,
    DER_BIT_STRING = 0x03,
    DER_OCTET_STRING = 0x04,
    DER_NULL = 0x05,
    DER_OID = 0x06,
    DER_ENUMERATED = 0x0a,
    DER_UTF8_STRING = 0x0c,
    DER_GENERALIZED_TIME = 0x18,
    DER_SEQUENCE = 0x30,
    DER_SET = 0x31
};
#define DER_CTX(n) ((uint8_t)(0x80 | (n)))      /* [n] IMPLICIT, primitive */
#define DER_CTX_CONS(n) ((uint8_t)(0xa0 | (n))) /* [n] constructed (EXPLICIT or IMPLICIT SEQ) */

struct der {
    uint8_t *buf;
    size_t len;
    size_t cap;
    bool growable;
    bool failed;
    unsigned open; /* elements begun and not yet ended */
};

/* A writer over buf[0..cap). */
void der_init(struct der *d, uint8_t *buf, size_t cap);
/* A growable writer; free with der_release() unless ownership was taken by der_take(). */
int der_init_alloc(struct der *d, size_t initial);
void der_release(struct der *d);
/* Hand the buffer to the caller (who frees it with free()); the writer is left empty. */
uint8_t *der_take(struct der *d, size_t *len);
/* 0 when every write fit and every element was closed, else ST_NOMEM / ST_INVALID. */
int der_finish(const struct der *d);

size_t der_begin(struct der *d, uint8_t tag);
void der_end(struct der *d, size_t mark);

void der_raw(struct der *d, const void *p, size_t n);
void der_tlv(struct der *d, uint8_t tag, const void *v, size_t n);
/* INTEGER from an unsigned big-endian magnitude (leading zeros stripped, 0x00 prepended when
 * the top bit is set). */
void der_uint(struct der *d, uint8_t tag, const uint8_t *mag, size_t n);
void der_u64(struct der *d, uint8_t tag, uint64_t v);
void der_bool(struct der *d, bool v);
void der_null(struct der *d);
/* GeneralizedTime YYYYMMDDHHMMSS[.f*]Z in UTC; `frac_digits` (0..9) digits of the fraction are
 * written and trailing zeros then removed, the dot too when nothing is left (RFC 3161 2.4.2).
 * A year outside 0000..9999 or a tv_nsec outside 0..999999999 fails the writer. */
void der_gentime(struct der *d, const struct timespec *t, unsigned frac_digits);
/* BIT STRING of a named bit list (bit 0 = first bit), trailing zero bits removed (X.690 11.2.2). */
void der_named_bits(struct der *d, uint32_t bits);

/* Length of the encoded header for a content of n octets with a one-octet tag. */
size_t der_header_len(size_t n);

/* One element of a SET OF, encoded separately, for der_set_of(). */
struct der_item {
    const uint8_t *p;
    size_t n;
};
/* Write a SET OF (with `tag`, usually DER_SET or [0]/[1] IMPLICIT) whose elements are sorted
 * as X.690 11.6 requires. Sorts `items` in place. */
void der_set_of(struct der *d, uint8_t tag, struct der_item *items, size_t n);

/* Encode a dotted OID as a complete DER OBJECT IDENTIFIER (tag, length, content) into out.
 * Returns the length, 0 when the text is not an OID or does not fit. */
size_t der_oid_from_text(const char *dotted, uint8_t *out, size_t cap);

/* Minimal reader used to walk DER we produced or already validated. Reads the element at
 * *p (< end): sets tag, content pointer and length, advances *p past it. false on malformed
 * input, indefinite length, or non-minimal length. */
bool der_read(const uint8_t **p, const uint8_t *end, uint8_t *tag, const uint8_t **content,
              size_t *len);

#endif
