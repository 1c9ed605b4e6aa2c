/*
 * libFuzzer target: the config loaders (DESIGN D8) of both daemons on arbitrary text:
 * tsa_config_load_string / ocsp_config_load_string, and the same text through a file with
 * tsa_config_load / ocsp_config_load (libinih reads a file and a string through different
 * readers in common/config.c). The first byte picks the daemon (bit 0) and whether the file
 * path is also taken (bit 1); the rest, up to a NUL, is the config text.
 * Properties checked beyond "no crash": a refusal has a message starting "name:line: "; an
 * accepted config has counts within their arrays and terminated strings; the file and the
 * string give the same verdict and, file name aside, the same message.
 */
#include "common/config.h"
#include "common/status.h"
#include "ocsp/ocsp_config.h"
#include "ocsp/ocsp_request.h"
#include "tsa/tsa_config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define STR_OK(s) (strnlen((s), sizeof(s)) < sizeof(s))

static char tmp_path[] = "/tmp/fuzzcfg.XXXXXX";

/* "name:line: message" with a decimal line. */
static void
check_message(const char *err, const char *name)
{
    size_t n = strlen(name);
    const char *p = err + n;

    if (strncmp(err, name, n) != 0 || *p++ != ':' || !isdigit((unsigned char)*p))
        abort();
    while (isdigit((unsigned char)*p))
        p++;
    if (*p != ':')
        abort();
}

static void
check_tsa(const struct tsa_config *c)
{
    if (c->n_units > TSA_MAX_UNITS || c->n_hashes > TSA_MAX_HASHES || !STR_OK(c->file) ||
        !STR_OK(c->chrony_socket) || !STR_OK(c->server.listen_host) || !STR_OK(c->store.path) ||
        !STR_OK(c->signer.p11_module) || !STR_OK(c->signer.p11_token) ||
        !STR_OK(c->signer.p11_pin_file))
        abort();
    for (size_t i = 0; i < c->n_units; i++) {
        const struct tsa_unit_config *u = &c->units[i];
        if (!STR_OK(u->name) || !STR_OK(u->policy) || !STR_OK(u->path) || !STR_OK(u->cert) ||
            !STR_OK(u->chain) || !STR_OK(u->key_label) || !STR_OK(u->key_file))
            abort();
    }
}

static void
check_ocsp(const struct ocsp_config *c)
{
    if (c->max_certids < 1 || c->max_certids > OCSP_MAX_CERTIDS || c->refresh_margin < 0 ||
        c->refresh_margin > 1 || !STR_OK(c->file) || !STR_OK(c->base_path) ||
        !STR_OK(c->server.listen_host) || !STR_OK(c->store.path))
        abort();
}

/* Load text as a string and (file) as a file; returns the status, err holds the message
 * with the file's name written as "<string>". */
static int
load(bool tsa, const char *text, bool file, char *err, size_t errlen)
{
    static struct tsa_config tc;
    static struct ocsp_config oc;
    const char *name = file ? tmp_path : "<string>";
    int st;

    err[0] = '\0';
    if (tsa)
        st = file ? tsa_config_load(&tc, tmp_path, err, errlen)
                  : tsa_config_load_string(&tc, text, err, errlen);
    else
        st = file ? ocsp_config_load(&oc, tmp_path, err, errlen)
                  : ocsp_config_load_string(&oc, text, err, errlen);
    if (st == ST_OK) {
        if (tsa)
            check_tsa(&tc);
        else
            check_ocsp(&oc);
        return st;
    }
    if (st != ST_CONFIG || err[0] == '\0')
        abort();
    check_message(err, name);
    if (file) { /* name the file as the string form does (the message starts with it) */
        char tmp[CONFIG_ERR_MAX];
        snprintf(tmp, sizeof(tmp), "<string>%s", err + strlen(tmp_path));
        memcpy(err, tmp, strlen(tmp) + 1 < errlen ? strlen(tmp) + 1 : errlen);
        err[errlen - 1] = '\0';
    }
    return st;
}

static void
remove_tmp(void)
{
    unlink(tmp_path);
}

static bool
write_tmp(const char *text)
{
    static int fd = -1;
    size_t n = strlen(text);

    if (fd < 0) {
        if ((fd = mkstemp(tmp_path)) < 0)
            return false;
        atexit(remove_tmp);
    }
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, n, 0) != (ssize_t)n)
        return false;
    return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err_s[CONFIG_ERR_MAX], err_f[CONFIG_ERR_MAX];
    char *text;
    bool tsa, file;
    int st_s, st_f;

    if (size == 0)
        return 0;
    tsa = (data[0] & 1) != 0;
    file = (data[0] & 2) != 0;
    if ((text = malloc(size)) == NULL)
        abort();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    st_s = load(tsa, text, false, err_s, sizeof(err_s));
    if (file && write_tmp(text)) {
        st_f = load(tsa, text, true, err_f, sizeof(err_f));
        /* messages long enough to be cut where the names differ in length are not compared */
        if (st_f != st_s || (strlen(err_s) < sizeof(err_s) - 64 &&
                             strlen(err_f) < sizeof(err_f) - 64 && strcmp(err_s, err_f) != 0)) {
            fprintf(stderr, "string: %s\nfile:   %s\n", err_s, err_f);
            abort();
        }
    }
    free(text);
    return 0;
}
