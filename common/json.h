/*
 * json: a small JSON writer and the hex encoding, the one place the daemons and tools write
 * both (issue 9 item 3): tsad's audit records, ocspd's status journal, ocspctl's output.
 *
 * No allocation: a struct jw writes into the caller's buffer and remembers when it is
 * full (every later call does nothing; jw_end() then returns 0), so a record is built with
 * a run of calls and checked once. The text is always NUL-terminated while not full.
 *
 * Commas are placed by jw_key() and jw_item(): one is written unless the previous
 * character is '{', '[' or ':' (a value after its key), or nothing was written yet.
 *
 * Strings: '"', '\\' and the control characters U+0000..U+001F and U+007F are escaped
 * (\b \f \n \r \t or \u00XX); well-formed UTF-8 is copied unchanged, and a byte that is not
 * part of it (a Latin-1 operator name) is written as \u00XX, its Latin-1 reading, so that the
 * text is always valid JSON (RFC 8259 §8.1; a reader such as jansson refuses anything else).
 *
 * Reading JSON back (tsactl verify) is done with jansson instead: see README, Dependencies.
 */
#ifndef COMMON_JSON_H
#define COMMON_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jw {
    char *p;
    size_t cap, len;
    bool full;
};

void jw_init(struct jw *o, char *buf, size_t cap);
/* Length of the text (NUL-terminated), 0 when it did not fit. */
size_t jw_end(const struct jw *o);

void jw_raw(struct jw *o, const char *s, size_t n); /* bytes as they are */
void jw_lit(struct jw *o, const char *s);           /* a C string as it is */
void jw_printf(struct jw *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void jw_begin(struct jw *o);                /* '{' (after a comma when needed) */
void jw_close(struct jw *o);                /* '}' */
void jw_key(struct jw *o, const char *key); /* [,]"key": */
void jw_item(struct jw *o);                 /* [,] before an array item */
/* Values. */
void jw_str(struct jw *o, const char *s); /* quoted, escaped; NULL -> null */
void jw_strn(struct jw *o, const char *s, size_t n);
void jw_hex(struct jw *o, const uint8_t *b, size_t n); /* "0a1b..." (lower case) */
void jw_u64(struct jw *o, uint64_t v);
void jw_i64(struct jw *o, int64_t v);
void jw_bool(struct jw *o, bool v);
void jw_null(struct jw *o);
/* Shorthands: key and value. */
void jw_kstr(struct jw *o, const char *key, const char *s);
void jw_khex(struct jw *o, const char *key, const uint8_t *b, size_t n);
void jw_ku64(struct jw *o, const char *key, uint64_t v);

/* Hex: 2n characters and a NUL into out (2n + 1 bytes); upper case when `upper`. */
void hex_encode(char *out, const uint8_t *b, size_t n, bool upper);
/* The value of one hex digit (either case), -1 for anything else. */
int hex_digit(char c);
/* Decode exactly 2n hex digits (either case) of s into n bytes; false on anything else. */
bool hex_decode(uint8_t *out, size_t n, const char *s, size_t slen);

#endif
