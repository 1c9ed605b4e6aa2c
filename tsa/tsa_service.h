/*
 * tsa_service: the request pipeline of tsad (DESIGN D2, D10): parse -> select TSU -> clock
 * gate -> serial and genTime -> build TSTInfo and signedAttrs -> queue for signing (connection
 * suspended) -> in the signer's batch callback (no I/O): assemble each token and its audit
 * record, hand the record to the journal (or the store's commit pipeline) -> once the record
 * is durable, on the writer's thread: resume the connection with its token. A record that
 * cannot be written withholds its token (systemFailure).
 *
 * Failures map to PKIFailureInfo in one table (tsa_service.c).
 *
 * The TSUs form a set, replaced as a whole by tsa_service_reload() (SIGHUP): each request
 * holds a reference to the set it started with until its reply is given, so a request in
 * flight finishes with its TSU's old certificate and key; the set is freed by the last one.
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
/* SIGHUP (issue 9 item 4): re-read `path` and serve its TSUs: a new set is built with every
 * check of a start (certificates, chains, keys in the token or files, test signatures); only
 * when all of it loads does it replace the running set, atomically: requests already under
 * way finish with the set they started with, which is freed (its keys released) when the last
 * of them is answered. [tsu] sections, [tsa] hashes and [log] level apply; [server], [store],
 * [signer], [clock] and [limits] need a restart (logged as such, left as they are). ST_OK with
 * the changes in `what` ("tsus_added=NAME:sha256=FP,... tsus_removed=... tsus_changed=NAME:
 * sha256=OLD->NEW ... needs_restart=KEY,..."), or ST_CONFIG with the reason in err. Control
 * thread only. */
int tsa_service_reload(struct tsa_service *s, const char *path, char *what, size_t whatcap,
                       char *err, size_t errlen);
/* Stop the signer (pending requests answered), clock, store. NULL-safe. */
void tsa_service_free(struct tsa_service *s);

#endif
