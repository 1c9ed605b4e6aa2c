/*
 * json: a small JSON writer and the hex encoding, the one place the daemons and tools write
 * both (issue 9 item 3): tsad's audit records, ocspd's status journal, ocspctl's output.
 *
 * No allocation: a struct json_out writes into the caller's buffer and remembers when it is
 * full (every later call does nothing; json_end() then returns 0), so a record is built with
 * a run of calls and checked once. The text is always NUL-terminated while not full.
 *
 * Commas are placed by json_key() and json_item(): one is written unless the previous
 * character is '{' or '[' (or nothing was written yet).
 *
 * Strings: '"', '\\' and the control characters U+0000..U+001F and U+007F are escaped
 * (\b \f \n \r \t or \u00XX); every other byte is copied unchanged, so UTF-8 passes through
 * (the caller hands valid UTF-8: config names, addresses, labels).
 *
 * Reading JSON back (tsactl verify) is done with jansson instead: see README, Dependencies.
 */
#ifndef COMMON_JSON_H
#define COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_out {
    char *p;
    size_t cap, len;
    bool full;
};

void json_init(struct json_out *o, char *buf, size_t cap);
/* Length of the text (NUL-terminated), 0 when it did not fit. */
size_t json_end(const struct json_out *o);

void json_raw(struct json_out *o, const char *s, size_t n); /* bytes as they are */
void json_lit(struct json_out *o, const char *s);           /* a C string as it is */
void json_printf(struct json_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void json_begin(struct json_out *o); /* '{' (after a comma when needed) */
void json_close(struct json_out *o); /* '}' */
void json_key(struct json_out *o, const char *key); /* [,]"key": */
void json_item(struct json_out *o);                 /* [,] before an array item */
/* Values. */
void json_str(struct json_out *o, const char *s); /* quoted, escaped; NULL -> null */
void json_strn(struct json_out *o, const char *s, size_t n);
void json_hex(struct json_out *o, const uint8_t *b, size_t n); /* "0a1b..." (lower case) */
void json_u64(struct json_out *o, uint64_t v);
void json_i64(struct json_out *o, int64_t v);
void json_bool(struct json_out *o, bool v);
void json_null(struct json_out *o);
/* Shorthands: key and value. */
void json_kstr(struct json_out *o, const char *key, const char *s);
void json_khex(struct json_out *o, const char *key, const uint8_t *b, size_t n);
void json_ku64(struct json_out *o, const char *key, uint64_t v);

/* Hex: 2n characters and a NUL into out (2n + 1 bytes); upper case when `upper`. */
void hex_encode(char *out, const uint8_t *b, size_t n, bool upper);
/* Decode exactly 2n hex digits (either case) of s into n bytes; false on anything else. */
bool hex_decode(uint8_t *out, size_t n, const char *s, size_t slen);

#endif
