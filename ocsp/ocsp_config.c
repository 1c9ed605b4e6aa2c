/*
 * ocsp_config: ocspd.conf schema and validation. See ocsp_config.h and conf/ocspd.conf.
 */
#include "ocsp/ocsp_config.h"
#include "common/config.h"
#include "common/log.h"
#include "common/status.h"
#include "ocsp/ocsp_cache.h"
#include "ocsp/ocsp_request.h"

#include <stdio.h>
#include <string.h>

struct ocsp_parse {
    struct ocsp_config *cfg;
    struct config_parse *p;
};

static int
copy_str(struct ocsp_parse *op, const struct config_pos *pos, const char *key, const char *v,
         char *dst, size_t cap)
{
    if (strlen(v) >= cap || v[0] == '\0')
        return config_error(op->p, pos, "%s: empty or too long", key);
    memcpy(dst, v, strlen(v) + 1);
    return ST_OK;
}

static int
ocsp_key_server(struct ocsp_parse *op, const char *k, const char *v, const struct config_pos *pos)
{
    struct ocsp_config *c = op->cfg;
    int st = config_server_key(op->p, &c->server, k, v, pos, OCSP_REQ_MAX);

    if (st != ST_NOTFOUND)
        return st;
    if (strcmp(k, "base_path") == 0) {
        if (v[0] != '/' || (strlen(v) > 1 && v[strlen(v) - 1] == '/'))
            return config_error(op->p, pos, "base_path: starts with '/', no trailing '/'");
        return copy_str(op, pos, k, v, c->base_path, sizeof(c->base_path));
    }
    return config_error(op->p, pos, "unknown key '%s' in [server]", k);
}

static int
ocsp_key_ocsp(struct ocsp_parse *op, const char *k, const char *v, const struct config_pos *pos)
{
    struct ocsp_config *c = op->cfg;
    unsigned long long n;

    if (strcmp(k, "refresh_interval") == 0) {
        if (config_duration(v, &c->refresh_interval) != 0 || c->refresh_interval < 0.1 ||
            c->refresh_interval > 86400)
            return config_error(op->p, pos, "refresh_interval: 100ms..1d");
    } else if (strcmp(k, "refresh_margin") == 0) {
        unsigned long long pct;
        if (config_uint(v, 1, 90, &pct) != 0)
            return config_error(op->p, pos, "refresh_margin: a percentage 1..90");
        c->refresh_margin = (double)pct / 100.0;
    } else if (strcmp(k, "max_age") == 0) {
        if (config_duration(v, &c->max_age) != 0 || c->max_age > 7 * 86400.0)
            return config_error(op->p, pos, "max_age: 0..7d");
    } else if (strcmp(k, "max_certids") == 0) {
        if (config_uint(v, 1, OCSP_MAX_CERTIDS, &n) != 0)
            return config_error(op->p, pos, "max_certids: 1..%d", OCSP_MAX_CERTIDS);
        c->max_certids = (unsigned)n;
    } else if (strcmp(k, "front_cache") == 0) {
        if (config_size(v, &c->front_cache) != 0 || c->front_cache > OCSP_FRONT_CACHE_MAX)
            return config_error(op->p, pos, "front_cache: 0 (off) .. 1G bytes");
    } else if (strcmp(k, "unissued_cache") == 0) {
        if (config_uint(v, 0, OCSP_CACHE_MAX_ENTRIES, &n) != 0)
            return config_error(op->p, pos, "unissued_cache: 0 (off) .. %u entries",
                                OCSP_CACHE_MAX_ENTRIES);
        c->unissued_cache = (size_t)n;
    } else {
        return config_error(op->p, pos, "unknown key '%s' in [ocsp]", k);
    }
    return ST_OK;
}

static int
ocsp_key(void *user, const char *section, const char *key, const char *value,
         const struct config_pos *pos)
{
    struct ocsp_parse *op = user;
    struct ocsp_config *c = op->cfg;

    if (strcmp(section, "server") == 0)
        return ocsp_key_server(op, key, value, pos);
    if (strcmp(section, "signer") == 0) {
        int st = config_signer_key(op->p, &c->signer, key, value, pos);

        if (st == ST_NOTFOUND)
            return config_error(op->p, pos, "unknown key '%s' in [signer]", key);
        return st;
    }
    if (strcmp(section, "ocsp") == 0)
        return ocsp_key_ocsp(op, key, value, pos);
    if (strcmp(section, "limits") == 0) {
        int st = ratelimit_config_key(op->p, &c->sign_limit, "sign", key, value, pos);

        if (st == ST_NOTFOUND)
            return config_error(op->p, pos, "unknown key '%s' in [limits]", key);
        return st;
    }
    if (strcmp(section, "log") == 0 && strcmp(key, "level") == 0) {
        if ((c->log_level = log_level_parse(value)) < 0)
            return config_error(op->p, pos, "level: err, warn, notice, info or debug");
        return ST_OK;
    }
    if (strcmp(section, "store") == 0) {
        int st = config_store_key(op->p, &c->store, key, value, pos, false);

        if (st == ST_NOTFOUND && strcmp(key, "prefault") == 0) {
            bool on;

            if (strcasecmp(value, "reread") == 0)
                c->store_prefault = OCSP_PREFAULT_REREAD;
            else if (config_bool(value, &on) == 0)
                c->store_prefault = on ? OCSP_PREFAULT_YES : OCSP_PREFAULT_NO;
            else
                return config_error(op->p, pos, "prefault: yes, no or reread");
            return ST_OK;
        }
        if (st == ST_NOTFOUND)
            return config_error(op->p, pos, "unknown key '%s' in [store]", key);
        return st;
    }
    return config_error(op->p, pos, "unknown key '%s' in [%s]", key, section);
}

static void
ocsp_defaults(struct ocsp_config *c)
{
    memset(c, 0, sizeof(*c));
    config_server_defaults(&c->server, 3181, 8192);
    c->server.max_connections = 4096;
    config_signer_defaults(&c->signer);
    strcpy(c->base_path, "/");
    c->log_level = LOG_LVL_INFO;
    config_store_defaults(&c->store, "/var/lib/ocspd", (size_t)4 << 30);
    c->store_prefault = OCSP_PREFAULT_YES;
    c->refresh_interval = 60;
    c->refresh_margin = 0.5;
    c->max_age = 3600;
    c->max_certids = 8;
    c->unissued_cache = 4096;
    c->front_cache = OCSP_FRONT_CACHE_DEFAULT;
    /* per client address: 20 signatures a second, bursts of 100 (README, "Abuse") */
    ratelimit_config_defaults(&c->sign_limit, 20, 100);
}

static int
ocsp_config_run(struct ocsp_config *cfg, const char *name, const char *text, char *err,
                size_t errlen)
{
    struct config_parse p = {0};
    struct ocsp_parse op = {cfg, &p};
    int st;

    ocsp_defaults(cfg);
    snprintf(cfg->file, sizeof(cfg->file), "%s", name);
    p.fn = ocsp_key;
    p.user = &op;
    st = text != NULL ? config_parse_string(&p, name, text) : config_parse_file(&p, name);
    if (st == ST_OK)
        st = config_signer_check(&p, &cfg->signer, name);
    if (st != ST_OK)
        snprintf(err, errlen, "%s", p.err);
    return st;
}

int
ocsp_config_load(struct ocsp_config *cfg, const char *path, char *err, size_t errlen)
{
    return ocsp_config_run(cfg, path, NULL, err, errlen);
}

int
ocsp_config_load_string(struct ocsp_config *cfg, const char *text, char *err, size_t errlen)
{
    return ocsp_config_run(cfg, "<string>", text, err, errlen);
}
