/*
 * http: the libmicrohttpd glue both daemons sit on (DESIGN D2, D8). It binds one address
 * (never a wildcard), runs MHD's epoll thread pool, routes requests by method and path,
 * buffers the whole request body up to a cap, and hands the handler a request it answers
 * either at once or later from any thread (suspend/resume), so that HTTP threads never wait
 * for the HSM. Transport per RFC 3161 section 3.4 (TSP-01, TSP-02) and RFC 6960 appendix A /
 * RFC 9919 section 5 (OCSP-02: the GET path is handed over raw, not percent-decoded).
 *
 * Built in, before any handler runs and in this order: 503 while stopping, 414 (URL longer
 * than max_url), 404 (no route for the path), 405 with Allow (path known, method not),
 * 415 (POST whose Content-Type does not match the route's), 413 (Content-Length above
 * max_body; a chunked body that grows past max_body makes the connection be cut). Each has a
 * short text/plain body and Cache-Control: no-cache (LW-04). Also built in:
 * GET /healthz (200/503 application/json from the health callback) and GET /metrics
 * (Prometheus text format 0.0.4 from common/metrics). HEAD is served by GET routes.
 *
 * Metrics: http_requests_total{code="2xx"...}, http_rejected_total{code="404"...},
 * http_connections, http_suspended_requests, http_request_body_bytes_total,
 * http_response_body_bytes_total, http_request_duration_seconds,
 * http_connections_rejected_total{reason="per_ip"...} (below).
 *
 * Hostile and slow clients (issue 8 item 1). Every connection is tracked from its accept to
 * its close (MHD's connection notifications; the bookkeeping is removed before MHD closes the
 * socket, so a descriptor is never shut down after it was reused):
 * - a connection waits for a request from the moment it is ready for one (accepted, or its
 *   previous answer sent); if no whole request line came within timeout_s it is closed as
 *   idle, and if the request (headers and body) is not whole within request_timeout_s of
 *   its request line it is cut (the deadline MHD's idle timeout, reset by every byte, cannot give).
 * Requests whose body is in (handler running, suspended for the HSM, answer being sent) are exempt;
 *   MHD's idle timeout (timeout_s + 1) still covers an answer the client does not read;
 * - per_ip_limit connections per client address at most: the next are closed at accept;
 * - MHD accepts up to max_connections + HTTP_RESERVE_CONNECTIONS. A connection past
 *   max_connections closes the connection that has waited longest for a request (evicted,
 *   as nginx reuses idle keep-alive connections), or, when none waits, it is a reserve
 *   connection: GET /healthz and /metrics are answered, anything else gets 503 with
 *   Retry-After: 1, each with Connection: close;
 * - each refusal is counted in http_connections_rejected_total{reason="per_ip" | "limit" |
 *   "deadline" | "idle" | "evicted"} and logged at info at most once per reason every 10 s
 *   with the count (idle closures, routine for kept-alive clients, at debug).
 * A cut connection is shut down (shutdown(2)); MHD sees the end of stream and closes it.
 *
 * HTTPS (issue 9 item 1; STANDARDS CIR-02, TPR-11): http_server_set_tls() adds a second
 * listener, libmicrohttpd's own TLS (GnuTLS), beside the plain one or instead of it. It serves
 * the same routes and goes through the same guard as the plain listener: request_timeout,
 * per_ip_limit, max_connections and the reserve count the connections of both together (a TLS
 * handshake is part of the wait for a request, so a client that never finishes one is cut as
 * idle), and the metrics are the same. Each listener has MHD's own connection limit and
 * thread pool. The certificate is chosen at each handshake (GnuTLS's certificate callback),
 * so http_tls_reload() changes it without a restart.
 *
 * Memory: at most max_connections requests exist at once, each holding at most max_body
 * bytes of body plus MHD's per-connection pool of max_url + 11 KiB (http_pool_bytes: the
 * header room, MHD's record of each line, and the reply's header block).
 *
 * Thread-safety: configuration calls (http_server_new, http_route, http_server_set_health,
 * http_server_set_tls, http_server_start, http_server_stop, http_server_free, and
 * http_tls_reload while serving) come from one control thread.
 * A request belongs to one thread at a time: the MHD thread while its handler runs, then,
 * after http_req_suspend(), whichever thread the handler hands it to, until http_reply().
 */
#ifndef COMMON_HTTP_H
#define COMMON_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_server;
struct http_request;

/* Defaults used for a zero field of struct http_config. */
#define HTTP_DEFAULT_THREADS 1u
#define HTTP_DEFAULT_MAX_BODY (64u * 1024u)
#define HTTP_DEFAULT_MAX_CONNECTIONS 1024u
#define HTTP_DEFAULT_TIMEOUT_S 30u
#define HTTP_DEFAULT_REQUEST_TIMEOUT_S 10u
/* Connections accepted beyond max_connections, kept for GET /healthz and /metrics. */
#define HTTP_RESERVE_CONNECTIONS 16u
#define HTTP_DEFAULT_MAX_URL 2048u
/* Request headers read beside a request line of max_url: up to HTTP_HEADER_ROOM bytes as sent
 * (whitespace and line ends included) in up to HTTP_HEADER_LINES records (header lines, parsed
 * cookies and query arguments together). More gets 431 before any handler runs; a query string
 * of more arguments closes the connection at once. */
#define HTTP_HEADER_ROOM (6u * 1024u)
#define HTTP_HEADER_LINES 64u

struct http_config {
    const char *listen_addr;    /* numeric IPv4 or IPv6 address, e.g. "127.0.0.1" or "::1" */
    uint16_t port;              /* 0 = let the kernel pick a free port (see http_server_port) */
    unsigned threads;           /* MHD thread pool size */
    size_t max_body;            /* request body cap, bytes */
    unsigned max_connections;   /* concurrent connections, suspended ones included */
    unsigned per_ip_limit;      /* concurrent connections per client address; 0 = no limit */
    unsigned timeout_s;         /* idle connection timeout, seconds (suspended ones exempt) */
    size_t max_url;             /* request-target (path and query) length cap, bytes */
    int listen_fd;              /* > 0: an already listening socket (systemd socket activation)
                                 * served instead of binding listen_addr:port; 0/-1: bind */
    unsigned request_timeout_s; /* deadline for a whole request, seconds (see below) */
};

/*
 * Called once the whole request body is in. It must either call http_reply() before it
 * returns, or call http_req_suspend() and then make sure http_reply() is called exactly once
 * later, from any thread (possibly even before the handler returns). A handler that does
 * neither gets a 500 sent for it. Runs on an MHD thread: it must not block.
 */
typedef void (*http_handler_fn)(struct http_request *req, void *ctx);

/*
 * Health callback for GET /healthz: write a NUL-terminated JSON document of at most cap
 * bytes into json (or leave it empty for a default one) and return nonzero when healthy
 * (200) or 0 when not (503). Runs on an MHD thread; must be quick and thread-safe.
 */
typedef int (*http_health_fn)(void *ctx, char *json, size_t cap);

/* libmicrohttpd's memory per connection of a server with this max_url (0: the default). */
size_t http_pool_bytes(size_t max_url);

/* Fill an http_config from a daemon's [server] section (max_url left at its default). */
struct config_server;
void http_config_init(struct http_config *hc, const struct config_server *cs);

/*
 * Create a server from cfg (copied; zero fields take the HTTP_DEFAULT_* values). Fails
 * (NULL, logged) when listen_addr is missing, not a numeric address, or a wildcard address
 * (0.0.0.0, ::). Registers the HTTP metrics. Nothing listens until http_server_start().
 */
struct http_server *http_server_new(const struct http_config *cfg);

/*
 * Add a route: requests whose method is `method` ("GET" also answers HEAD) and whose raw
 * path equals `path` (or, with prefix, starts with it) go to fn(req, ctx). The first
 * matching route in registration order wins; /healthz and /metrics are matched before any
 * route. content_type (POST only; NULL = any) is compared with the request's media type,
 * case-insensitively and ignoring parameters. Strings are copied; ctx is borrowed and must
 * outlive the server. Only before http_server_start(). Returns ST_OK, ST_INVALID (bad
 * argument, server started, or table full) or ST_NOMEM.
 */
int http_route(struct http_server *srv, const char *method, const char *path, bool prefix,
               const char *content_type, http_handler_fn fn, void *ctx);

/*
 * TLS versions and suites of the HTTPS listener (a GnuTLS priority string). TLS 1.2 and 1.3
 * only (CIR-02 asks for 1.2 or later; 1.0 and 1.1 are deprecated by RFC 8996); AEAD ciphers
 * only (AES-GCM, ChaCha20-Poly1305: no CBC with its padding-oracle history, no RC4 or 3DES);
 * in TLS 1.2 only ECDHE key exchange (forward secrecy; no static RSA key transport, no
 * finite-field DHE with client-chosen weak groups); no SHA-1 or SHA-224 signatures. TLS 1.3
 * suites are all AEAD with (EC)DHE by design. The server's order of preference wins; its
 * groups are listed with X25519 first, the key share clients send first: with GnuTLS's default
 * order (P-256 first) and server precedence, most clients were sent a HelloRetryRequest, an
 * extra round trip that made a handshake cost the server about eight times the CPU.
 */
#define HTTP_TLS_PRIORITIES                                                                        \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"            \
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-ALL:+GROUP-X25519:"  \
    "+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-X448:+GROUP-SECP521R1:-SIGN-RSA-SHA1:"               \
    "-SIGN-ECDSA-SHA1:-SIGN-DSA-SHA1:-SIGN-RSA-SHA224:-SIGN-ECDSA-SHA224:%SERVER_PRECEDENCE"

/* The HTTPS listener (see the top of this file). Strings are only read during the call. */
struct http_tls_config {
    const char *listen_addr; /* numeric IPv4 or IPv6 address, as http_config's */
    uint16_t port;           /* 0 = let the kernel pick (see http_server_tls_port) */
    const char *cert;        /* PEM: the server certificate, maybe followed by its chain */
    const char *key;         /* PEM: its private key, unencrypted, mode 0600 or stricter */
    const char *chain;       /* PEM: CA certificates sent after it, leaf's issuer first; or
                              * NULL / "" */
    bool only;               /* no plain HTTP listener (a socket systemd passed stays served) */
};

/*
 * Add the HTTPS listener. Loads and checks the files (http_tls.h: readable, a key that matches
 * the certificate, private to its owner, a chain that issued it, not expired). Before start.
 * Returns ST_OK, or ST_CONFIG / ST_INVALID / ST_NOMEM with the reason, naming the file, in err
 * (errlen bytes; err may be NULL).
 */
int http_server_set_tls(struct http_server *srv, const struct http_tls_config *tc, char *err,
                        size_t errlen);

/*
 * Rollover without a restart (issue 9 item 4): load cert, key and chain as
 * http_server_set_tls() does and make every NEW handshake use them; connections already open
 * keep the certificate they were set up with. On failure the current certificate stays and
 * err says why (also logged at warn). Any thread; calls are serialised by the caller (the
 * control thread). Returns ST_OK, ST_CONFIG (files refused), ST_INVALID (no HTTPS listener).
 */
int http_tls_reload(struct http_server *srv, const char *cert, const char *key, const char *chain,
                    char *err, size_t errlen);

/* The HTTPS listener's bound port; 0 without one or before start. */
uint16_t http_server_tls_port(const struct http_server *srv);

/* Set the /healthz callback (NULL: always healthy). ctx is borrowed. Before start. */
void http_server_set_health(struct http_server *srv, http_health_fn fn, void *ctx);

/*
 * Bind and start serving: MHD epoll thread pool, suspend/resume, connection, per-IP and
 * timeout limits as configured. Returns ST_OK, ST_INVALID (already started) or ST_IO
 * (bind or thread start failed; logged).
 */
int http_server_start(struct http_server *srv);

/* The plain listener's bound port (useful with port 0); 0 before start or without one. */
uint16_t http_server_port(const struct http_server *srv);

/*
 * Stop serving: stop accepting, answer 503 to new requests and to every request still
 * suspended (its later http_reply() becomes a no-op), wait up to 2 s for requests in flight
 * to finish, then stop MHD. NULL-safe; idempotent.
 */
void http_server_stop(struct http_server *srv);

/*
 * Stop (if needed) and free the server. NULL-safe. Every suspended request must have had
 * its http_reply() call first (stop the code that answers them before freeing); if some
 * have not, the server's memory is deliberately kept (and an error logged) so that the late
 * calls stay safe.
 */
void http_server_free(struct http_server *srv);

/*
 * Request accessors. Returned strings are owned by the request and valid until the request
 * owner calls http_reply(), except http_req_header(), valid only while the handler runs.
 */

/* Method as sent ("GET", "POST", "HEAD", ...). */
const char *http_req_method(const struct http_request *req);
/* URL path without the query, exactly as the client sent it: NOT percent-decoded. */
const char *http_req_path(const struct http_request *req);
/* The part of the raw path after the matched route's path ("" for an exact match). */
const char *http_req_subpath(const struct http_request *req);
/* Raw query string after '?', or NULL when there is none. */
const char *http_req_query(const struct http_request *req);
/* Request header value (case-insensitive name), NULL if absent. Only inside the handler. */
const char *http_req_header(const struct http_request *req, const char *name);
/* The request body (NULL when empty) and its length in *len. */
const unsigned char *http_req_body(const struct http_request *req, size_t *len);
/* The client's address as text ("127.0.0.1", "::1"). */
const char *http_req_client_ip(const struct http_request *req);
/* Process-wide monotonic request id, for log lines (log_req). */
uint64_t http_req_id(const struct http_request *req);
/* "HTTP/1.0" or "HTTP/1.1". */
const char *http_req_version(const struct http_request *req);
/* true when the request came over the HTTPS listener. */
bool http_req_tls(const struct http_request *req);

/*
 * Announce that the reply will come later, possibly from another thread. Call from the
 * handler, before handing req to another thread. The connection is suspended when the
 * handler returns (unless the reply has already been given) and resumed by http_reply().
 */
void http_req_suspend(struct http_request *req);

/*
 * Add a response header for the coming http_reply(). name is an HTTP token; value must not
 * contain CR or LF. Both are copied. Returns ST_OK, ST_INVALID (bad name/value, or already
 * replied) or ST_NOMEM (the per-request header space, about 1 KiB, is full).
 */
int http_reply_header(struct http_request *req, const char *name, const char *value);

/*
 * Answer the request: status (200..599; anything else is sent as 500), Content-Type (NULL:
 * none) and body (copied; may be NULL when len is 0), plus the headers added before. Call exactly
 * once per request; after it returns req must not be touched. From a handler that did not suspend:
 * in the handler. After http_req_suspend(): from any thread, and it resumes the connection. Returns
 * ST_OK; ST_NOMEM when the response could not be built (a 500 is sent instead); ST_INVALID when
 * called twice for a handler that did not suspend. The request is answered in every case.
 */
int http_reply(struct http_request *req, unsigned status, const char *content_type,
               const void *body, size_t len);

/*
 * As http_reply() but takes ownership of body, a malloc'ed buffer freed by the server
 * (also on failure), which saves the copy for large replies.
 */
int http_reply_take(struct http_request *req, unsigned status, const char *content_type, void *body,
                    size_t len);

/*
 * Replies whose body is sent without a copy (issue 10 item 2: a pre-signed OCSP hit should
 * cost what a null libmicrohttpd server costs returning the same bytes).
 *
 * The body is given as up to HTTP_PARTS_MAX parts, sent in order as they are: MHD writes
 * them to the socket from where they lie (MHD_create_response_from_iovec), so they must not
 * change or go away until the release callback says so. A part of length 0 is skipped
 * (its base may then be NULL). release(arg) runs exactly once, when the last response over
 * the parts has been destroyed, on whichever thread drops the last reference: an MHD
 * thread that has finished sending, or the caller of the last http_canned_unref() or of
 * the http_reply_*() call that failed. It must be quick and thread-safe, and must not call
 * libmicrohttpd or this module (it may run inside MHD's clean-up of a connection). NULL
 * release: nothing to call.
 */
#define HTTP_PARTS_MAX 8

struct http_part {
    const void *base; /* borrowed until release (see above) */
    size_t len;
};

struct http_header {
    const char *name;  /* an HTTP token */
    const char *value; /* no CR or LF */
};

typedef void (*http_release_fn)(void *arg);

/*
 * Answer the request with the body made of parts[0..n-1] (not copied; n <= HTTP_PARTS_MAX),
 * status and Content-Type as http_reply(), plus the headers added before. The parts are
 * handed over at the call: release(arg) is called exactly once in every case, after MHD has
 * sent them or at once on a failure (NULL req, bad parts, no memory, second reply), so the
 * caller never frees them itself. Same thread rules and return values as http_reply(); bad
 * parts (n too large, a NULL base with a length) answer 500 and return ST_INVALID.
 */
int http_reply_parts(struct http_request *req, unsigned status, const char *content_type,
                     const struct http_part *parts, size_t n, http_release_fn release, void *arg);

/*
 * A canned reply: status, headers and body built into one libmicrohttpd response once, then
 * queued for any number of requests, on any number of connections at once (MHD counts the
 * connections using a response). Made for an answer that many requests share (the OCSP
 * responder's pre-signed answer): no allocation, copy or header formatting per request.
 */
#define HTTP_CANNED_HEADERS 16

struct http_canned;

struct http_canned_spec {
    unsigned status;                        /* 200..599 */
    const char *content_type;               /* NULL: none; no CR or LF */
    struct http_part parts[HTTP_PARTS_MAX]; /* the body, in order; borrowed until release */
    size_t nparts;
    http_release_fn release; /* called once when the body is no longer used; may be NULL */
    void *release_arg;
    const struct http_header *headers; /* nheaders extra headers, validated as
                                        * http_reply_header() does; copied */
    size_t nheaders;                   /* at most HTTP_CANNED_HEADERS */
};

/*
 * Build a canned reply from spec. Strings and the headers array are only read during the
 * call (copied); the parts are borrowed until release(release_arg) runs, which is after the
 * last http_canned_unref() AND after every send using them has finished (MHD holds its own
 * reference while the reply is queued or being sent). The caller holds one reference.
 * Returns NULL (logged) when the spec is refused (bad status, header name or value, too many
 * parts or headers, a NULL base with a length) or memory is short; release is then NOT
 * called: the parts stay the caller's. Any thread. A canned reply belongs to no server and
 * may outlive the one it was sent on.
 */
struct http_canned *http_canned_new(const struct http_canned_spec *spec);

/* Take one more reference. Any thread (atomic). */
void http_canned_ref(struct http_canned *c);

/*
 * Drop a reference. NULL-safe; any thread (atomic). The last one destroys the MHD response;
 * sends still in flight keep the body until they finish, then release runs (see above).
 */
void http_canned_unref(struct http_canned *c);

/*
 * Answer the request with c: the request takes its own reference for as long as it needs c,
 * so the caller may unref c right after the call, even while the request is still being
 * sent. Same thread and lifetime rules as http_reply(): from the handler, or after
 * http_req_suspend() from any thread; exactly once per request; req must not be touched
 * afterwards. Headers added with http_reply_header() before this call cannot go into the
 * shared response: when there are any, a one-off response is built instead from the same
 * parts (not copied), c's Content-Type and headers and the request's headers, so the
 * request gets all of them at the cost of a plain reply. HEAD gets the headers only, as for
 * every reply. Returns ST_OK; ST_NOMEM when that one-off response could not be built (500
 * sent); ST_INVALID for a NULL c (500 sent) or a second reply. The request is answered in
 * every case.
 */
int http_reply_canned(struct http_request *req, struct http_canned *c);

#endif
