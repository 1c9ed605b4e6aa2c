/*
 * loadgen_http: the HTTP/1.1 side of bench/loadgen (RFC 9112): the target URL, requests
 * written out in full before the run (RFC 9112 §3 request line, Host, Content-Type,
 * Content-Length, optional Connection: close; OCSP GET as RFC 6960 App. A.1
 * {url}/{url-encoded base64 of the DER}), and an incremental reply parser (status line,
 * Content-Length or chunked framing or read-until-close, Content-Type, Connection and the
 * HTTP/1.0 default of closing).
 *
 * Included by bench/loadgen.c only.
 */
#ifndef BENCH_LOADGEN_HTTP_H
#define BENCH_LOADGEN_HTTP_H

#include "bench/loadgen_reqset.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define LG_HDR_MAX 16384u

struct lg_target {
    char host[256];
    char port[8];
    char path[1024];
    bool tls; /* https:// */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

/* One request as sent on the wire. */
struct lg_wire {
    char *buf;
    size_t len;
};

/* What the parser learned from a reply's header block. */
struct lg_reply {
    bool have_hdr;
    size_t hdr_len; /* up to and including the empty line */
    int status;     /* HTTP status code */
    long long clen; /* Content-Length, -1 when absent */
    bool chunked;
    bool close;      /* server closes after this reply */
    bool ctype_ok;   /* Content-Type is the expected one */
    size_t body_off; /* where the (de-chunked) body starts in the buffer */
    size_t body_len;
    size_t total; /* bytes of the buffer this reply used */
};

/* http[s]://host[:port][/path]; resolves host (numeric or by name) to its first address. */
static int
lg_target_parse(struct lg_target *t, const char *url)
{
    const char *h, *slash, *colon;
    struct addrinfo hints = {0}, *ai = NULL;
    size_t hl;

    memset(t, 0, sizeof(*t));
    if (strncmp(url, "https://", 8) == 0)
        t->tls = true;
    else if (strncmp(url, "http://", 7) != 0)
        return ST_INVALID;
    h = url + (t->tls ? 8 : 7);
    slash = strchr(h, '/');
    if (slash == NULL)
        slash = h + strlen(h);
    colon = memchr(h, ':', (size_t)(slash - h));
    hl = (size_t)((colon ? colon : slash) - h);
    if (hl == 0 || hl >= sizeof(t->host) || strlen(slash) >= sizeof(t->path))
        return ST_INVALID;
    memcpy(t->host, h, hl);
    if (colon == NULL)
        strcpy(t->port, t->tls ? "443" : "80");
    else if ((size_t)(slash - colon - 1) >= sizeof(t->port) || slash == colon + 1)
        return ST_INVALID;
    else
        memcpy(t->port, colon + 1, (size_t)(slash - colon - 1));
    strcpy(t->path, *slash ? slash : "/");
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(t->host, t->port, &hints, &ai) != 0 || ai == NULL)
        return ST_INVALID;
    memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
    t->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    return ST_OK;
}

/* base64 then percent-encoding of '+', '/', '=' (RFC 6960 App. A.1, RFC 3986 §2.1). */
static char *
lg_get_suffix(const uint8_t *der, uint32_t len)
{
    size_t b64len = 4 * ((len + 2) / 3), i, o = 0;
    unsigned char *b64 = malloc(b64len + 1);
    char *out = malloc(3 * b64len + 1);

    if (b64 == NULL || out == NULL || EVP_EncodeBlock(b64, der, (int)len) != (int)b64len) {
        free(b64);
        free(out);
        return NULL;
    }
    for (i = 0; i < b64len; i++) {
        unsigned char c = b64[i];
        if (c == '+' || c == '/' || c == '=')
            o += (size_t)sprintf(out + o, "%%%02X", c);
        else
            out[o++] = (char)c;
    }
    out[o] = '\0';
    free(b64);
    return out;
}

static int
lg_wire_build(struct lg_wire *w, const struct lg_target *t, uint32_t kind, const struct lg_req *r,
              bool close)
{
    const char *ctype =
        kind == LG_KIND_TSA ? "application/timestamp-query" : "application/ocsp-request";
    const char *conn = close ? "Connection: close\r\n" : "";
    size_t base = strlen(t->path), cap;
    char *suffix = NULL;
    int n;

    if (r->method == LG_GET) {
        if ((suffix = lg_get_suffix(r->der, r->len)) == NULL)
            return ST_NOMEM;
        while (base > 0 && t->path[base - 1] == '/')
            base--;
    }
    cap = 512 + base + (suffix ? strlen(suffix) : 0) + strlen(t->host) + r->len;
    if ((w->buf = malloc(cap)) == NULL) {
        free(suffix);
        return ST_NOMEM;
    }
    if (r->method == LG_GET)
        n = snprintf(w->buf, cap, "GET %.*s/%s HTTP/1.1\r\nHost: %s:%s\r\n%s\r\n", (int)base,
                     t->path, suffix, t->host, t->port, conn);
    else
        n = snprintf(w->buf, cap,
                     "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: %s\r\n"
                     "Content-Length: %u\r\n%s\r\n",
                     t->path, t->host, t->port, ctype, r->len, conn);
    free(suffix);
    if (n < 0 || (size_t)n + r->len >= cap)
        return ST_INVALID;
    w->len = (size_t)n;
    if (r->method == LG_POST) {
        memcpy(w->buf + n, r->der, r->len);
        w->len += r->len;
    }
    return ST_OK;
}

/* Case-insensitive "does the header line start with name:"; returns the trimmed value. */
static const char *
lg_hdr_value(const char *line, const char *end, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *v;

    if ((size_t)(end - line) <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return NULL;
    v = line + nl + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *vlen = (size_t)(end - v);
    return v;
}

static bool
lg_token_in(const char *v, size_t vl, const char *tok)
{
    size_t tl = strlen(tok), i;

    for (i = 0; i + tl <= vl; i++) {
        if (strncasecmp(v + i, tok, tl) == 0)
            return true;
    }
    return false;
}

static void
lg_hdr_line(struct lg_reply *r, const char *line, const char *end, const char *want_ctype,
            bool *keepalive)
{
    const char *v;
    size_t vl, wl = strlen(want_ctype);

    if ((v = lg_hdr_value(line, end, "content-length", &vl)) != NULL)
        r->clen = strtoll(v, NULL, 10);
    else if ((v = lg_hdr_value(line, end, "content-type", &vl)) != NULL)
        r->ctype_ok = vl >= wl && strncasecmp(v, want_ctype, wl) == 0 &&
                      (vl == wl || v[wl] == ';' || v[wl] == ' ');
    else if ((v = lg_hdr_value(line, end, "transfer-encoding", &vl)) != NULL)
        r->chunked = lg_token_in(v, vl, "chunked");
    else if ((v = lg_hdr_value(line, end, "connection", &vl)) != NULL) {
        if (lg_token_in(v, vl, "close"))
            r->close = true;
        if (lg_token_in(v, vl, "keep-alive"))
            *keepalive = true;
    }
}

/* Parse the header block in buf[0..len); ST_OK with r->have_hdr when complete, ST_OK without
 * it when more bytes are needed, ST_INVALID when it is not HTTP. */
static int
lg_parse_head(struct lg_reply *r, const char *buf, size_t len, const char *want_ctype)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4), *line, *eol;
    bool http10, keepalive = false;

    if (end == NULL)
        return len > LG_HDR_MAX ? ST_INVALID : ST_OK;
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return ST_INVALID;
    http10 = buf[7] == '0';
    r->status = atoi(buf + 9);
    if (r->status < 100 || r->status > 599)
        return ST_INVALID;
    r->clen = -1;
    line = (const char *)memchr(buf, '\n', len) + 1;
    while (line < end + 2) {
        eol = memchr(line, '\r', (size_t)(end + 2 - line));
        if (eol == NULL)
            break;
        lg_hdr_line(r, line, eol, want_ctype, &keepalive);
        line = eol + 2;
    }
    if (http10 && !keepalive)
        r->close = true;
    r->hdr_len = (size_t)(end - buf) + 4;
    r->have_hdr = true;
    return ST_OK;
}

/* De-chunk in place (RFC 9112 §7.1). 1 when complete, 0 when more is needed, -1 on error. */
static int
lg_dechunk(struct lg_reply *r, char *buf, size_t len)
{
    size_t in = r->hdr_len, out = r->hdr_len;
    char *eol, *endp;
    unsigned long long sz;

    for (;;) {
        eol = memmem(buf + in, len - in, "\r\n", 2);
        if (eol == NULL)
            return 0;
        sz = strtoull(buf + in, &endp, 16);
        if (endp == buf + in || sz > (1u << 24))
            return -1;
        in = (size_t)(eol - buf) + 2;
        if (sz == 0)
            break;
        if (len - in < sz + 2)
            return 0;
        memmove(buf + out, buf + in, sz);
        out += sz;
        in += sz + 2;
    }
    eol = memmem(buf + in, len - in, "\r\n", 2); /* trailers end with an empty line */
    while (eol != NULL && eol != buf + in) {
        in = (size_t)(eol - buf) + 2;
        eol = memmem(buf + in, len - in, "\r\n", 2);
    }
    if (eol == NULL)
        return 0;
    r->body_off = r->hdr_len;
    r->body_len = out - r->hdr_len;
    r->total = in + 2;
    return 1;
}

/* 1 when buf holds a complete reply (eof: the peer closed), 0 when more is needed, -1 when
 * the bytes are not a valid reply. */
static int
lg_reply_complete(struct lg_reply *r, char *buf, size_t len, bool eof, const char *want_ctype)
{
    if (!r->have_hdr && lg_parse_head(r, buf, len, want_ctype) != ST_OK)
        return -1;
    if (!r->have_hdr)
        return eof ? -1 : 0;
    if (r->chunked)
        return r->status == 204 || r->status == 304 ? 1 : lg_dechunk(r, buf, len);
    r->body_off = r->hdr_len;
    if (r->clen >= 0) {
        if (len - r->hdr_len < (unsigned long long)r->clen)
            return eof ? -1 : 0;
        r->body_len = (size_t)r->clen;
        r->total = r->hdr_len + r->body_len;
        return 1;
    }
    if (r->status == 204 || r->status == 304) {
        r->body_len = 0;
        r->total = r->hdr_len;
        return 1;
    }
    if (!eof)
        return 0;
    r->close = true;
    r->body_len = len - r->hdr_len;
    r->total = len;
    return 1;
}

#endif
