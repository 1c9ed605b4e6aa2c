/*
 * ocspctl_int: what the parts of the `ocspctl` operator tool share (ocspctl.c holds main and
 * the dispatch; ocspctl_util.c the parsing of serials, times, reasons, certificates and the
 * journal lines; ocspctl_issuer.c, ocspctl_status.c and ocspctl_import.c the subcommands).
 * Not used by ocspd. Every function returns a status of common/status.h (bool for predicates);
 * a subcommand has written a message naming what failed on stderr when it is not ST_OK, and
 * returns ST_INVALID for a wrong command line (usage), ST_EXISTS for a change refused by a
 * rule (EID-07), ST_ERR or another code for any other failure. Only main() (ocspctl.c) turns
 * them into exit codes: 0, 2, 3 and 1.
 */
#ifndef OCSP_OCSPCTL_INT_H
#define OCSP_OCSPCTL_INT_H

#include "ocsp/ocsp_config.h"
#include "ocsp/ocsp_store.h"

#include <openssl/x509.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct ctl {
    struct ocsp_config cfg; /* defaults, or the file given with -c */
    const char *who;        /* operator name for the journal */
    struct ocsp_store *store;
};

/* A serial as DER INTEGER content octets (the store's key form). */
struct ctl_serial {
    uint8_t b[OCSP_SERIAL_MAX];
    size_t len;
};

/* A growable JSON object writer for journal and export lines. */
struct ctl_json {
    char *p;
    size_t len, cap;
    bool failed;
    bool first;
};

/* ---- ocspctl_util.c ---- */

/* Open c->cfg.store.path into c->store (read-only unless write). Only `init` creates a store
 * (create true); the others refuse a directory without one. */
int ocspctl_open(struct ctl *c, bool write, bool create);

/* Parse hex (either case, optional 0x): positive, at most 20 octets of magnitude. */
int ocspctl_serial_parse(const char *hex, struct ctl_serial *out);
/* From an ASN1_INTEGER as encoded (content octets of its DER). */
int ocspctl_serial_from_asn1(const ASN1_INTEGER *a, struct ctl_serial *out);
/* Uppercase hex of the magnitude (no leading 00); out holds 2 * OCSP_SERIAL_MAX + 1. */
void ocspctl_serial_hex(const uint8_t *b, size_t len, char *out);

/* YYYYMMDDHHMMSSZ (gen_only) or also YYMMDDHHMMSSZ, to UTC seconds. */
int ocspctl_time_parse(const char *s, bool gen_only, int64_t *t);
int ocspctl_asn1_time(const ASN1_TIME *a, int64_t *t);
/* YYYYMMDDHHMMSSZ, or "-" for 0. out holds 16 bytes. */
void ocspctl_time_fmt(int64_t t, char out[16]);

/* CRLReason name -> code, -1 when unknown (accepts the OpenSSL `ca` index names too). */
int ocspctl_reason_parse(const char *name);
/* Name of a code ("-" for OCSP_REASON_NONE). */
const char *ocspctl_reason_name(uint8_t reason);

/* Load one certificate (PEM, or DER). NULL with a message on stderr. */
X509 *ocspctl_load_cert(const char *path);
/* Read a whole file (at most max bytes). */
int ocspctl_read_file(const char *path, size_t max, uint8_t **buf, size_t *len);
/* Is `child` issued by `ca`: name chaining and signature. */
bool ocspctl_issued_by(X509 *child, X509 *ca);

/* Issuer record by operator name. ST_NOTFOUND (message printed) when no such issuer. */
int ocspctl_issuer_find(struct ctl *c, const char *name, struct ocsp_issuer_rec *rec);
bool ocspctl_name_ok(const char *name);

/* Record a serial as issued: a new serial becomes GOOD; an existing record keeps its state
 * and gets not_after. */
int ocspctl_record_issued(struct ctl *c, const uint8_t *id, const struct ctl_serial *s,
                          int64_t not_after);

/* A store status as a subcommand's result: ST_OK and ST_EXISTS (a status change refused by
 * EID-07) as they are, any other failure ST_ERR (never ST_INVALID: that is a usage error). */
int ocspctl_status_of(int st);

void ocspctl_json_begin(struct ctl_json *j);
void ocspctl_json_str(struct ctl_json *j, const char *key, const char *v);
void ocspctl_json_int(struct ctl_json *j, const char *key, long long v);
void ocspctl_json_bool(struct ctl_json *j, const char *key, bool v);
/* v is already JSON (an object or literal). */
void ocspctl_json_raw(struct ctl_json *j, const char *key, const char *v);
/* Close the object; returns the line (owned by j) or NULL on allocation failure. */
const char *ocspctl_json_end(struct ctl_json *j);
void ocspctl_json_free(struct ctl_json *j);
/* A journal object started with time, who, op and issuer; finish with ocspctl_journal_end. */
void ocspctl_journal_begin(struct ctl *c, struct ctl_json *j, const char *op, const char *issuer);
int ocspctl_journal_end(struct ctl *c, struct ctl_json *j);

/* ---- ocspctl_import.c: the parsers of the imports (also the fuzz targets' entry points) ---- */

/* What a CRL says about itself. */
struct crl_info {
    bool delta, complete, has_number;
    uint64_t number, base;
    int64_t this_update, next_update;
};

/* One line of an OpenSSL `ca` index. */
struct ctl_index_entry {
    char kind; /* 'V', 'R' or 'E' */
    struct ctl_serial serial;
    enum ocsp_cert_state state; /* GOOD; REVOKED or HOLD for an R line (GOOD for removeFromCRL) */
    int reason;                 /* CRLReason, OCSP_REASON_NONE when none */
    int64_t not_after, when;    /* expiry; revocation time of an R line */
};

/* A CRL from a buffer: PEM, or DER with nothing after it. NULL (OpenSSL errors cleared) when
 * it is neither. The caller frees the CRL. */
X509_CRL *ocspctl_crl_parse(const uint8_t *buf, size_t len);
/* crlNumber, deltaCRLIndicator, IDP scope and times (the signature is not checked here).
 * ST_OK, or ST_ERR with a message naming `path` on stderr. */
int ocspctl_crl_info(X509_CRL *crl, const char *path, struct crl_info *ci);
/* Serial, reason and revocation date of one CRL entry; ST_INVALID for an entry to skip (no
 * usable serial or date; removeFromCRL outside a delta CRL). A reasonCode that is not a
 * CRLReason gives OCSP_REASON_NONE: the entry is still a revocation. */
int ocspctl_crl_entry(X509_REVOKED *r, bool delta, struct ctl_serial *s, int *reason,
                      int64_t *when);
/* Parse one index line in place (a trailing CR/LF dropped): ST_OK, ST_NOTFOUND for an empty
 * line, ST_INVALID when it is not an index line. */
int ocspctl_index_parse(char *line, struct ctl_index_entry *e);

/* ---- subcommands: argc/argv start at the subcommand's own name ---- */
int ocspctl_cmd_issuer(struct ctl *c, int argc, char **argv);
int ocspctl_cmd_add(struct ctl *c, int argc, char **argv);
int ocspctl_cmd_revoke(struct ctl *c, int argc, char **argv);
int ocspctl_cmd_hold(struct ctl *c, int argc, char **argv);
int ocspctl_cmd_release(struct ctl *c, int argc, char **argv);
int ocspctl_cmd_status(struct ctl *c, int argc, char **argv);
int ocspctl_cmd_list(struct ctl *c, int argc, char **argv);
int ocspctl_cmd_export(struct ctl *c, int argc, char **argv);
/* ocspctl_export.c: `export --journal [--from] [--to]` (the chained journal, issue 9 item 3),
 * else ocspctl_cmd_export. */
int ocspctl_cmd_export_any(struct ctl *c, int argc, char **argv);
void ocspctl_export_usage(FILE *f);
int ocspctl_cmd_import_crl(struct ctl *c, int argc, char **argv);
int ocspctl_cmd_import_index(struct ctl *c, int argc, char **argv);
/* ocspctl_purge.c */
int ocspctl_cmd_purge(struct ctl *c, int argc, char **argv);
void ocspctl_purge_usage(FILE *f);

/* Usage texts of the subcommand groups. */
void ocspctl_status_usage(FILE *f);
void ocspctl_import_usage(FILE *f);

/* True when argv[1..] asks for help (-h / --help as the only or first option). */
bool ocspctl_wants_help(int argc, char **argv);

#endif
