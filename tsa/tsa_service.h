/*
 * tsa_service: the request pipeline of tsad (DESIGN D2, D10): parse -> select TSU -> clock
 * gate -> serial and genTime -> build TSTInfo and signedAttrs -> queue for signing (connection
 * suspended) -> in the signer's batch callback (no I/O): assemble each token and its audit
 * record, hand the record to the journal (or the store's commit pipeline) -> once the record
 * is durable, on the writer's thread: resume the connection with its token. A record that
 * cannot be written withholds its token (systemFailure).
 *
 * Failures map to PKIFailureInfo in one table (tsa_service.c).
 */
#ifndef TSA_TSA_SERVICE_H
#define TSA_TSA_SERVICE_H

#include "common/clock.h"
#include "common/http.h"
#include "common/signer.h"
#include "common/store.h"
#include "tsa/tsa_config.h"
#include "tsa/tsa_token.h"

#include <stdbool.h>

struct tsa_service;

/* Build the service from a validated config: load TSUs, open store (one tsad per store: an
 * exclusive lock, refused while another holds it), recover its journal, start clock and
 * signer, register HTTP routes on `http` (not started). NULL on failure, with reasons logged.
 * `clock_src` NULL means chronyd; tests may pass a replaced source. `check` (tsad -n): the
 * store is only opened read-only when it exists: no lock, no journal, nothing written. */
struct tsa_service *tsa_service_new(const struct tsa_config *cfg, struct http_server *http,
                                    const struct clock_source *clock_src, bool check);
/* Stop the signer (pending requests answered), clock, store. NULL-safe. */
void tsa_service_free(struct tsa_service *s);

#endif
