/*
 * ocsp_journal: the JSON lines of the OCSP store's journal (the evidence of EID-07/08, RO-08),
 * built from explicit inputs; ocsp_store seals and appends them in the transaction of the
 * change they record. One JSON object on one line each.
 */
#ifndef OCSP_OCSP_JOURNAL_H
#define OCSP_OCSP_JOURNAL_H

#include "ocsp/ocsp_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One status change of one serial, done or refused. */
struct ocsp_journal_status {
    int64_t time;
    const char *who;         /* operator, NULL: "" */
    const char *issuer_name; /* "" when unknown */
    const uint8_t *issuer_id;
    const uint8_t *serial;
    size_t serial_len;
    const struct ocsp_status *before; /* NULL: no record */
    const struct ocsp_status *after;
    bool refused;
};

/* {"time":..,"who":..,"op":"status","issuer":..,"issuer_id":HEX,"serial":HEX,"result":
 * "ok"|"refused","before":{state,reason,revocation_time,not_after}|null,"after":{...}} */
void ocsp_journal_status_line(char *line, size_t cap, const struct ocsp_journal_status *e);

/* The store's schema upgraded in place. */
struct ocsp_journal_upgrade {
    int64_t time;
    const char *who;
    unsigned from, to;
    size_t dropped;        /* stored responses dropped (re-signed on demand) */
    size_t rekeyed;        /* stored responses moved to the new key layout, their DER kept */
    size_t rekeyed_before; /* ... by an earlier run of the upgrade that stopped part-way */
};

/* {"time":..,"who":..,"op":"schema_upgrade","from":F,"to":T,"responses_dropped":N,
 * "responses_rekeyed":M,"responses_rekeyed_before":B} */
void ocsp_journal_upgrade_line(char *line, size_t cap, const struct ocsp_journal_upgrade *e);

/* A bulk import (issue 10 §3): the import journalled as what it is, one entry. The serials it
 * added are not listed: the file is the evidence, identified by its SHA-256 (of the bytes
 * read). Revocations, holds, releases and refusals get their own status entries besides. */
struct ocsp_journal_import {
    int64_t time;
    const char *who;
    const char *op; /* "import-index" */
    const char *issuer_name;
    const char *file;
    const uint8_t *sha256; /* 32 bytes; NULL: not read to its end */
    size_t lines;          /* entries (lines that are not blank) read and applied; of a write that
                            * stopped, those of the committed chunks (as every count) */
    size_t added, unchanged, updated, revoked, held, released, refused, failed;
    size_t not_imported; /* good entries left out: the store would pass its fill_limit */
    bool committed;      /* every line read was committed */
    size_t committed_lines;
};

/* {"time":..,"who":..,"op":OP,"issuer":..,"file":..,"sha256":HEX|null,"lines":N,"new":N,
 * "unchanged":N,"updated":N,"revoked":N,"held":N,"released":N,"refused":N,"failed":N,
 * "not_imported_full":N,"committed":B,"committed_lines":N}; false when it does not fit in cap
 * (line is then not a whole object) */
bool ocsp_journal_import_line(char *line, size_t cap, const struct ocsp_journal_import *e);

#endif
