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
    size_t dropped; /* stored responses dropped (re-signed on demand) */
};

/* {"time":..,"who":..,"op":"schema_upgrade","from":F,"to":T,"responses_dropped":N} */
void ocsp_journal_upgrade_line(char *line, size_t cap, const struct ocsp_journal_upgrade *e);

#endif
