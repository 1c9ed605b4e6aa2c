/*
 * tsa_config: tsad.conf schema and validation. See tsa_config.h and conf/tsad.conf.
 */
#include "tsa/tsa_config.h"
#include "common/chain.h"
#include "common/config.h"
#include "common/der.h"
#include "common/journal.h"
#include "common/log.h"
#include "common/signer.h"
#include "common/status.h"

#include <math.h>
#include <openssl/objects.h>
#include <stdio.h>
#include <string.h>

struct tsa_parse {
    struct tsa_config *cfg;
    struct config_parse *p;
    struct tsa_unit_config *unit; /* current [tsu NAME] section */
    char section[160];
};

static int
copy_str(struct tsa_parse *tp, const struct config_pos *pos, const char *key, const char *v,
         char *dst, size_t cap)
{
    if (strlen(v) >= cap || v[0] == '\0')
        return config_error(tp->p, pos, "%s: empty or too long", key);
    memcpy(dst, v, strlen(v) + 1);
    return ST_OK;
}

/* Imprint hashes accepted by name (ALG-01); weak ones are refused in the config itself. */
static int
tsa_hash_nid(const char *name)
{
    static const struct {
        const char *name;
        int nid;
    } ok[] = {{"sha256", NID_sha256},     {"sha384", NID_sha384},     {"sha512", NID_sha512},
              {"sha3-256", NID_sha3_256}, {"sha3-384", NID_sha3_384}, {"sha3-512", NID_sha3_512}};

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(name, ok[i].name) == 0)
            return ok[i].nid;
    return NID_undef;
}

static int
tsa_parse_hashes(struct tsa_parse *tp, const struct config_pos *pos, const char *v)
{
    char buf[256], *save = NULL;
    struct tsa_config *cfg = tp->cfg;

    if (strlen(v) >= sizeof(buf))
        return config_error(tp->p, pos, "hashes: too long");
    strcpy(buf, v);
    cfg->n_hashes = 0;
    for (char *t = strtok_r(buf, " ,", &save); t != NULL; t = strtok_r(NULL, " ,", &save)) {
        int nid = tsa_hash_nid(t);

        if (nid == NID_undef)
            return config_error(tp->p, pos,
                                "hashes: '%s' is not accepted (sha256, sha384, sha512, "
                                "sha3-256, sha3-384, sha3-512; MD5, SHA-1 and SHA-224 are weak, "
                                "ALG-01)",
                                t);
        if (cfg->n_hashes == TSA_MAX_HASHES)
            return config_error(tp->p, pos, "hashes: too many");
        cfg->hashes[cfg->n_hashes++] = nid;
    }
    if (cfg->n_hashes == 0)
        return config_error(tp->p, pos, "hashes: at least one is needed");
    return ST_OK;
}

static int
tsa_key_clock(struct tsa_parse *tp, const char *k, const char *v, const struct config_pos *pos)
{
    struct tsa_config *c = tp->cfg;
    double *dst = NULL;

    if (strcmp(k, "chrony_socket") == 0)
        return copy_str(tp, pos, k, v, c->chrony_socket, sizeof(c->chrony_socket));
    if (strcmp(k, "kernel_check") == 0) {
        if (config_bool(v, &c->kernel_check) != 0)
            return config_error(tp->p, pos, "kernel_check: yes or no");
        return ST_OK;
    }
    if (strcmp(k, "poll_interval") == 0)
        dst = &c->poll_interval;
    else if (strcmp(k, "max_update_age") == 0)
        dst = &c->max_update_age;
    else if (strcmp(k, "leap_guard") == 0)
        dst = &c->leap_guard;
    else
        return config_error(tp->p, pos, "unknown key '%s' in [clock]", k);
    if (config_duration(v, dst) != 0 || *dst > 86400)
        return config_error(tp->p, pos, "%s: a duration such as 1s or 500ms", k);
    if (dst == &c->poll_interval && (*dst < 0.05 || *dst > 60))
        return config_error(tp->p, pos, "poll_interval: 50ms..60s");
    return ST_OK;
}

static int
tsa_key_unit(struct tsa_parse *tp, const char *k, const char *v, const struct config_pos *pos)
{
    struct tsa_unit_config *u = tp->unit;
    uint8_t oid[64];
    bool *flag = NULL;

    if (strcmp(k, "policy") == 0) {
        if (der_oid_from_text(v, oid, sizeof(oid)) == 0)
            return config_error(tp->p, pos, "policy: '%s' is not a dotted OID", v);
        return copy_str(tp, pos, k, v, u->policy, sizeof(u->policy));
    }
    if (strcmp(k, "path") == 0) {
        if (v[0] != '/')
            return config_error(tp->p, pos, "path: must start with '/'");
        return copy_str(tp, pos, k, v, u->path, sizeof(u->path));
    }
    if (strcmp(k, "certificate") == 0)
        return copy_str(tp, pos, k, v, u->cert, sizeof(u->cert));
    if (strcmp(k, "chain") == 0)
        return copy_str(tp, pos, k, v, u->chain, sizeof(u->chain));
    if (strcmp(k, "key_label") == 0)
        return copy_str(tp, pos, k, v, u->key_label, sizeof(u->key_label));
    if (strcmp(k, "key_file") == 0)
        return copy_str(tp, pos, k, v, u->key_file, sizeof(u->key_file));
    if (strcmp(k, "signature") == 0) {
        if ((u->scheme = signer_scheme_parse(v)) < 0)
            return config_error(tp->p, pos, "signature: ecdsa, rsa-pkcs1 or rsa-pss");
        return ST_OK;
    }
    if (strcmp(k, "digest") == 0) {
        if ((u->hash = signer_hash_parse(v)) < 0)
            return config_error(tp->p, pos, "digest: sha256, sha384 or sha512");
        return ST_OK;
    }
    if (strcmp(k, "accuracy") == 0) {
        if (config_duration(v, &u->accuracy) != 0 || u->accuracy < 1e-6 || u->accuracy > 1.0 ||
            fabs(u->accuracy * 1e6 - round(u->accuracy * 1e6)) > 1e-6)
            return config_error(tp->p, pos,
                                "accuracy: a whole number of microseconds from 1us "
                                "to 1s (TPR-04, TSA-01, TSP-20)");
        return ST_OK;
    }
    if (strcmp(k, "default") == 0)
        flag = &u->is_default;
    else if (strcmp(k, "qualified") == 0)
        flag = &u->qualified;
    else if (strcmp(k, "tsa_name") == 0)
        flag = &u->tsa_name;
    else if (strcmp(k, "ess_cert_id_v1") == 0)
        flag = &u->ess_cert_id_v1;
    else if (strcmp(k, "https_only") == 0)
        flag = &u->https_only;
    else
        return config_error(tp->p, pos, "unknown key '%s' in [%s]", k, tp->section);
    if (config_bool(v, flag) != 0)
        return config_error(tp->p, pos, "%s: yes or no", k);
    return ST_OK;
}

/* [audit]: the chain's node name and its signed checkpoints (issue 9 item 3). */
static int
tsa_key_audit(struct tsa_parse *tp, const char *k, const char *v, const struct config_pos *pos)
{
    struct tsa_audit_config *a = &tp->cfg->audit;

    if (a->line == 0)
        a->line = pos->line;
    if (strcmp(k, "node") == 0) {
        if (!chain_node_valid(v))
            return config_error(tp->p, pos, "node: 1 to 63 of A-Z a-z 0-9 . _ -");
        return copy_str(tp, pos, k, v, a->node, sizeof(a->node));
    }
    if (strcmp(k, "checkpoint_interval") == 0) {
        if (config_duration(v, &a->checkpoint_interval) != 0 ||
            (a->checkpoint_interval != 0 &&
             (a->checkpoint_interval < 1 || a->checkpoint_interval > 86400)))
            return config_error(tp->p, pos, "checkpoint_interval: 0 (none) or 1s..1d");
        return ST_OK;
    }
    if (strcmp(k, "key_label") == 0)
        return copy_str(tp, pos, k, v, a->key_label, sizeof(a->key_label));
    if (strcmp(k, "key_file") == 0)
        return copy_str(tp, pos, k, v, a->key_file, sizeof(a->key_file));
    if (strcmp(k, "certificate") == 0)
        return copy_str(tp, pos, k, v, a->cert, sizeof(a->cert));
    if (strcmp(k, "signature") == 0) {
        if ((a->scheme = signer_scheme_parse(v)) < 0)
            return config_error(tp->p, pos, "signature: ecdsa, rsa-pkcs1 or rsa-pss");
        return ST_OK;
    }
    if (strcmp(k, "digest") == 0) {
        if ((a->hash = signer_hash_parse(v)) < 0)
            return config_error(tp->p, pos, "digest: sha256, sha384 or sha512");
        return ST_OK;
    }
    return config_error(tp->p, pos, "unknown key '%s' in [audit]", k);
}

/* [audit]: a checkpoint key of its own, complete (issue 9 item 3). */
static int
tsa_validate_audit(struct tsa_config *c, struct config_parse *p)
{
    struct tsa_audit_config *a = &c->audit;
    struct config_pos pos = {c->file, a->line};
    bool has_key = a->key_label[0] != '\0' || a->key_file[0] != '\0';

    if (a->node[0] == '\0')
        chain_default_node(a->node, sizeof(a->node));
    if (!has_key && a->checkpoint_interval == 0 && a->cert[0] == '\0')
        return ST_OK; /* no checkpoints */
    if ((a->key_label[0] != '\0') == (a->key_file[0] != '\0') || a->cert[0] == '\0')
        return config_error(p, &pos,
                            "[audit]: checkpoints need a certificate and exactly one of "
                            "key_label (PKCS#11) and key_file");
    for (size_t i = 0; i < c->n_units; i++) {
        const struct tsa_unit_config *u = &c->units[i];

        if ((a->key_label[0] != '\0' && strcmp(a->key_label, u->key_label) == 0) ||
            (a->key_file[0] != '\0' && strcmp(a->key_file, u->key_file) == 0) ||
            strcmp(a->cert, u->cert) == 0)
            return config_error(p, &pos,
                                "[audit]: the audit key is the key of [tsu %s]: checkpoints "
                                "need a key of their own (a TSU key signs time-stamp tokens "
                                "only)",
                                u->name);
    }
    if (a->checkpoint_interval == 0)
        a->checkpoint_interval = 60;
    if (a->scheme == 0)
        a->scheme = SIGNER_ECDSA;
    if (a->hash == 0)
        a->hash = SIGNER_SHA256;
    if (a->key_label[0] != '\0' &&
        (c->signer.p11_module[0] == '\0' || c->signer.p11_token[0] == '\0' ||
         c->signer.p11_pin_file[0] == '\0'))
        return config_error(p, &pos,
                            "[signer]: pkcs11_module, token and pin_file are required "
                            "when [audit] uses key_label");
    return ST_OK;
}

/* Start a new [tsu NAME] section. */
static int
tsa_new_unit(struct tsa_parse *tp, const char *section, const struct config_pos *pos)
{
    struct tsa_config *c = tp->cfg;
    const char *name = section + 4;

    if (*name == '\0' || strlen(name) >= sizeof(c->units[0].name) ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
            strlen(name))
        return config_error(tp->p, pos, "[tsu NAME]: NAME is 1..63 of A-Z a-z 0-9 . _ -");
    for (size_t i = 0; i < c->n_units; i++)
        if (strcmp(c->units[i].name, name) == 0)
            return config_error(tp->p, pos, "[tsu %s] appears twice", name);
    if (c->n_units == TSA_MAX_UNITS)
        return config_error(tp->p, pos, "too many [tsu] sections (at most %d)", TSA_MAX_UNITS);
    tp->unit = &c->units[c->n_units++];
    memset(tp->unit, 0, sizeof(*tp->unit));
    strcpy(tp->unit->name, name);
    strcpy(tp->unit->path, "/tsa");
    tp->unit->scheme = -1;
    tp->unit->hash = SIGNER_SHA256;
    tp->unit->accuracy = 1.0;
    tp->unit->tsa_name = true;
    tp->unit->line = pos->line;
    return ST_OK;
}

/* [server]'s HTTPS keys (issue 9 item 1); ST_NOTFOUND for the common [server] keys. */
static int
tsa_key_tls(struct tsa_parse *tp, const char *k, const char *v, const struct config_pos *pos)
{
    struct tsa_tls_config *t = &tp->cfg->tls;

    if (strcmp(k, "listen") == 0) {
        t->plain = true;
        return ST_NOTFOUND; /* parsed by config_server_key */
    }
    if (strcmp(k, "https_listen") == 0) {
        if (config_listen(v, t->listen_host, sizeof(t->listen_host), &t->listen_port) != ST_OK)
            return config_error(tp->p, pos,
                                "https_listen: expected address:port, e.g. 127.0.0.1:3443");
        t->on = true;
        t->line = pos->line;
        return ST_OK;
    }
    if (t->line == 0 && strncmp(k, "tls_", 4) == 0)
        t->line = pos->line; /* for messages, until https_listen names its own */
    if (strcmp(k, "tls_cert") == 0)
        return copy_str(tp, pos, k, v, t->cert, sizeof(t->cert));
    if (strcmp(k, "tls_key") == 0)
        return copy_str(tp, pos, k, v, t->key, sizeof(t->key));
    if (strcmp(k, "tls_chain") == 0)
        return copy_str(tp, pos, k, v, t->chain, sizeof(t->chain));
    return ST_NOTFOUND;
}

static int
tsa_key(void *user, const char *section, const char *key, const char *value,
        const struct config_pos *pos)
{
    struct tsa_parse *tp = user;
    struct tsa_config *c = tp->cfg;

    if (strcmp(section, tp->section) != 0) {
        snprintf(tp->section, sizeof(tp->section), "%s", section);
        tp->unit = NULL;
        if (strncmp(section, "tsu ", 4) == 0 && tsa_new_unit(tp, section, pos) != ST_OK)
            return ST_CONFIG;
    }
    if (tp->unit != NULL)
        return tsa_key_unit(tp, key, value, pos);
    if (strcmp(section, "server") == 0) {
        int st = tsa_key_tls(tp, key, value, pos);

        if (st != ST_NOTFOUND)
            return st;
    }
    if (strcmp(section, "server") == 0 || strcmp(section, "signer") == 0) {
        int st = section[1] == 'e' ? config_server_key(tp->p, &c->server, key, value, pos, 1 << 20)
                                   : config_signer_key(tp->p, &c->signer, key, value, pos);

        if (st == ST_NOTFOUND)
            return config_error(tp->p, pos, "unknown key '%s' in [%s]", key, section);
        return st;
    }
    if (strcmp(section, "clock") == 0)
        return tsa_key_clock(tp, key, value, pos);
    if (strcmp(section, "log") == 0 && strcmp(key, "level") == 0) {
        if ((c->log_level = log_level_parse(value)) < 0)
            return config_error(tp->p, pos, "level: err, warn, notice, info or debug");
        return ST_OK;
    }
    if (strcmp(section, "store") == 0) {
        int st = config_store_key(tp->p, &c->store, key, value, pos, true);

        if (st == ST_NOTFOUND)
            return config_error(tp->p, pos, "unknown key '%s' in [store]", key);
        return st;
    }
    if (strcmp(section, "audit") == 0)
        return tsa_key_audit(tp, key, value, pos);
    if (strcmp(section, "tsa") == 0 && strcmp(key, "hashes") == 0)
        return tsa_parse_hashes(tp, pos, value);
    if (strcmp(section, "limits") == 0) {
        int st = ratelimit_config_key(tp->p, &c->token_limit, "token", key, value, pos);

        if (st != ST_NOTFOUND)
            return st;
    }
    return config_error(tp->p, pos, "unknown key '%s' in [%s]", key, section);
}

static void
tsa_defaults(struct tsa_config *c)
{
    memset(c, 0, sizeof(*c));
    config_server_defaults(&c->server, 3180, 16384);
    config_signer_defaults(&c->signer);
    c->log_level = LOG_LVL_INFO;
    strcpy(c->chrony_socket, "/run/chrony/chronyd.sock");
    c->poll_interval = 1.0;
    c->max_update_age = 1100;
    c->leap_guard = 1.0;
    c->kernel_check = true;
    config_store_defaults(&c->store, "/var/lib/tsad", (size_t)16 << 30);
    c->hashes[0] = NID_sha256;
    c->hashes[1] = NID_sha384;
    c->hashes[2] = NID_sha512;
    c->n_hashes = 3;
    ratelimit_config_defaults(&c->token_limit, 0, 100); /* off unless the operator wants it */
}

/* The HTTPS keys go together; an https_only TSU needs the HTTPS listener and its path is
 * https_only for every TSU on it (one path, one transport). */
static int
tsa_validate_tls(struct tsa_config *c, struct config_parse *p)
{
    struct tsa_tls_config *t = &c->tls;
    struct config_pos pos = {c->file, t->line};

    if (!t->on) {
        t->plain = true;
        if (t->cert[0] != '\0' || t->key[0] != '\0' || t->chain[0] != '\0')
            return config_error(p, &pos,
                                "[server]: tls_cert, tls_key and tls_chain need "
                                "https_listen (the HTTPS listener's address:port)");
    } else if (t->cert[0] == '\0' || t->key[0] == '\0') {
        return config_error(p, &pos, "[server]: https_listen needs tls_cert and tls_key");
    } else if (t->plain && t->listen_port != 0 && t->listen_port == c->server.listen_port &&
               strcmp(t->listen_host, c->server.listen_host) == 0) {
        return config_error(p, &pos, "[server]: https_listen and listen are the same address");
    }
    for (size_t i = 0; i < c->n_units; i++) {
        const struct tsa_unit_config *u = &c->units[i];

        pos.line = u->line;
        if (u->https_only && !t->on)
            return config_error(p, &pos,
                                "[tsu %s]: https_only = yes needs the HTTPS listener "
                                "([server] https_listen, tls_cert, tls_key)",
                                u->name);
        for (size_t j = 0; j < c->n_units; j++)
            if (strcmp(c->units[j].path, u->path) == 0 && c->units[j].https_only != u->https_only)
                return config_error(p, &pos,
                                    "[tsu %s] and [tsu %s] share the path %s: set https_only "
                                    "the same for both",
                                    u->name, c->units[j].name, u->path);
    }
    return ST_OK;
}

/* Whole-file checks once every key is read. */
static int
tsa_validate(struct tsa_config *c, struct config_parse *p)
{
    bool need_p11 = false;

    if (c->n_units == 0) {
        struct config_pos pos = {c->file, 0};
        return config_error(p, &pos, "no [tsu NAME] section: at least one TSU is needed");
    }
    if (c->store.journal_max / c->store.journal_segment < 2 ||
        c->store.journal_max / c->store.journal_segment > JOURNAL_SEGMENTS_LIMIT) {
        struct config_pos pos = {c->file, 0};
        return config_error(p, &pos,
                            "[store]: journal_max must hold from 2 to %u "
                            "journal_segment (%zu bytes each)",
                            JOURNAL_SEGMENTS_LIMIT, c->store.journal_segment);
    }
    for (size_t i = 0; i < c->n_units; i++) {
        struct tsa_unit_config *u = &c->units[i];
        struct config_pos pos = {c->file, u->line};
        size_t on_path = 0, defaults = 0;

        if (u->policy[0] == '\0' || u->cert[0] == '\0')
            return config_error(p, &pos, "[tsu %s]: policy and certificate are required", u->name);
        if ((u->key_label[0] != '\0') == (u->key_file[0] != '\0'))
            return config_error(p, &pos,
                                "[tsu %s]: set exactly one of key_label (PKCS#11) and "
                                "key_file (software key)",
                                u->name);
        if (u->scheme < 0)
            return config_error(p, &pos,
                                "[tsu %s]: signature is required (ecdsa, rsa-pkcs1, "
                                "rsa-pss)",
                                u->name);
        need_p11 |= u->key_label[0] != '\0';
        for (size_t j = 0; j < c->n_units; j++) {
            struct tsa_unit_config *o = &c->units[j];

            if (strcmp(o->path, u->path) != 0)
                continue;
            on_path++;
            defaults += o->is_default;
            if (j != i && strcmp(o->policy, u->policy) == 0)
                return config_error(p, &pos,
                                    "[tsu %s] and [tsu %s] serve policy %s on the "
                                    "same path %s",
                                    u->name, o->name, u->policy, u->path);
        }
        if (u->qualified && on_path > 1)
            return config_error(p, &pos,
                                "[tsu %s] is qualified and must be alone on its path "
                                "%s (TSA-17)",
                                u->name, u->path);
        if (on_path == 1)
            u->is_default = true;
        else if (defaults != 1)
            return config_error(p, &pos, "path %s has %zu TSUs: mark exactly one 'default = yes'",
                                u->path, on_path);
    }
    if (need_p11 && (c->signer.p11_module[0] == '\0' || c->signer.p11_token[0] == '\0' ||
                     c->signer.p11_pin_file[0] == '\0')) {
        struct config_pos pos = {c->file, 0};
        return config_error(p, &pos,
                            "[signer]: pkcs11_module, token and pin_file are required "
                            "when a TSU uses key_label");
    }
    return tsa_validate_tls(c, p);
}

static int
tsa_config_finish(struct tsa_config *cfg, struct config_parse *p, int st, char *err, size_t errlen)
{
    if (st == ST_OK)
        st = tsa_validate(cfg, p);
    if (st == ST_OK)
        st = tsa_validate_audit(cfg, p);
    if (st != ST_OK)
        snprintf(err, errlen, "%s", p->err);
    return st;
}

int
tsa_config_load(struct tsa_config *cfg, const char *path, char *err, size_t errlen)
{
    struct config_parse p = {0};
    struct tsa_parse tp = {0};

    tsa_defaults(cfg);
    snprintf(cfg->file, sizeof(cfg->file), "%s", path);
    tp.cfg = cfg;
    tp.p = &p;
    p.fn = tsa_key;
    p.user = &tp;
    return tsa_config_finish(cfg, &p, config_parse_file(&p, path), err, errlen);
}

int
tsa_config_load_string(struct tsa_config *cfg, const char *text, char *err, size_t errlen)
{
    struct config_parse p = {0};
    struct tsa_parse tp = {0};

    tsa_defaults(cfg);
    snprintf(cfg->file, sizeof(cfg->file), "%s", "<string>");
    tp.cfg = cfg;
    tp.p = &p;
    p.fn = tsa_key;
    p.user = &tp;
    return tsa_config_finish(cfg, &p, config_parse_string(&p, "<string>", text), err, errlen);
}
