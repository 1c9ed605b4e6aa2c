/*
 * ocsp_service: ocspd's HTTP pipeline (DESIGN D2, D6): routes, health, metrics, replies.
 *
 *   POST {base} (application/ocsp-request) or GET {base}/{url-encoded base64}
 *   -> the front cache (ocsp_front, [ocsp] front_cache): the same request bytes answered
 *      before get that reply again, built once, if the serial's status record (read again),
 *      the issuer registry's generation, the clock and the max-age still back it
 *   -> parse (ocsp_request_fast, else ocsp_request) -> one CertID without a nonce to echo:
 *      the pre-signed response from
 *      the store, if it was signed for the serial's current status record, by the issuer's
 *      current signer, and is not past its nextUpdate; or, for a serial without a record, the
 *      answer in the unissued cache (ocsp_cache) -> reply with RFC 9919 caching headers (ETag,
 *      Last-Modified, Expires, Cache-Control max-age, public, no-transform, must-revalidate;
 *      304 on If-None-Match), offered to the front cache
 *   -> otherwise the answer costs a signature: the client address's token bucket
 *      ([limits] sign_rate, common/ratelimit; OCSP-27) must allow it, else tryLater with
 *      Retry-After (a one-CertID nonce request gets the pre-signed answer without its nonce);
 *   -> build the tbsResponseData, suspend the connection, sign through the batched signer;
 *      single-CertID answers are stored for the next request (without a status record: kept
 *      in the unissued cache instead; the same CertID asked while it is being signed waits
 *      for it rather than costing another signature).
 * The service starts the refresher thread (ocsp_refresher): status changes re-signed at once,
 * stored responses before their nextUpdate, issuers added with ocspctl loaded, all without a
 * restart.
 */
#ifndef OCSP_OCSP_SERVICE_H
#define OCSP_OCSP_SERVICE_H

#include "common/http.h"
#include "ocsp/ocsp_config.h"

#include <stdbool.h>

struct ocsp_service;

/* `check` (ocspd -n): an existing store is opened read-only and no refresher runs. */
struct ocsp_service *ocsp_service_new(const struct ocsp_config *cfg, struct http_server *http,
                                      bool check);
void ocsp_service_free(struct ocsp_service *s);
/* SIGHUP (issue 9 item 4): re-read `path`; load every issuer of the store again and look for
 * each key again (ocsp_responder_reload_all: an issuer whose key does not load keeps its
 * running signer, and the reload is reported failed naming it); then [ocsp] max_age,
 * refresh_interval, refresh_margin, max_certids and [log] level apply. [server] (base_path
 * too), [store], [signer], [limits] and [ocsp] unissued_cache need a restart (logged). ST_OK
 * with the signer changes in `what`, or an error with the reason in err. Control thread. */
int ocsp_service_reload(struct ocsp_service *s, const char *path, char *what, size_t whatcap,
                        char *err, size_t errlen);

#endif
