/*
 * storeprobe: the store's part of a request not kept ready (issue 10: the uniform load over
 * 10 M certificates). It opens an ocspd store read-only and reads, for serials taken at random
 * from a list (picked before the timed reads), what ocspd reads for such a request:
 * ocsp_store_response_get as ocspd calls it (one lookup: the answer's stamp stands for the status
 * record it is backed by, schema 4), the answer assembled with its issuer's shared certificates and
 * freed, one thread. The store's pages are mapped first as ocspd maps them at start
 * (store_prefault_start: 2 MiB pages where the kernel can), so a read costs what it costs a running
 * ocspd. It reports the CPU time per read, so the report can set it beside the uniform load's cost
 * per answer.
 *
 *   storeprobe --store DIR --serials FILE --issuer NAME [--count N] [--form sha1|sha256]
 *              [--seed S]
 *
 * FILE: one hexadecimal serial at the start of each line (bench-serials.txt), all of issuer
 * NAME. Prints one JSON object: reads, found, cpu_us_per_read, wall_us_per_read; exits 1 unless
 * every read found its answer (a probe of misses would not be the cost of a hit).
 */
#include "common/log.h"
#include "common/status.h"
#include "common/store.h"
#include "ocsp/ocsp_response.h"
#include "ocsp/ocsp_store.h"

#include <getopt.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SP_MAX_SERIALS (16u * 1024u * 1024u)

struct sp_issuer {
    const char *name;
    bool found;
    uint8_t id[OCSP_ISSUER_ID_LEN];
    uint8_t *certs;
    size_t certs_len;
};

static bool
sp_issuer_named(void *ctx, const struct ocsp_issuer_rec *rec)
{
    struct sp_issuer *iss = ctx;
    const unsigned char *p = rec->signer_cert;
    X509 *x;

    if (strcmp(rec->name, iss->name) != 0)
        return true; /* the next one */
    memcpy(iss->id, rec->id, OCSP_ISSUER_ID_LEN);
    iss->found = true;
    if (rec->signer_cert != NULL && rec->signer_cert_len > 0 &&
        (x = d2i_X509(NULL, &p, (long)rec->signer_cert_len)) != NULL) {
        if (ocsp_certs_field(x, &iss->certs, &iss->certs_len) != ST_OK) {
            iss->certs = NULL;
            iss->certs_len = 0;
        }
        X509_free(x);
    }
    return false; /* found: stop */
}

static int
sp_hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;

    while (s[0] != '\0' && s[1] != '\0' && s[0] != ' ' && s[0] != '\t' && s[0] != '\n') {
        unsigned v;

        if (n == cap || sscanf(s, "%2x", &v) != 1)
            return -1;
        out[n++] = (uint8_t)v;
        s += 2;
    }
    return (int)n;
}

static double
sp_clock(clockid_t id)
{
    struct timespec t;

    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* xorshift64*: the serials' order, reproducible by the seed */
static uint64_t
sp_next(uint64_t *x)
{
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 2685821657736338717ULL;
}

int
main(int argc, char **argv)
{
    static const struct option lo[] = {{"store", 1, NULL, 'd'}, {"serials", 1, NULL, 's'},
                                       {"count", 1, NULL, 'n'}, {"form", 1, NULL, 'f'},
                                       {"seed", 1, NULL, 'r'},  {"issuer", 1, NULL, 'i'},
                                       {NULL, 0, NULL, 0}};
    const char *dir = NULL, *list = NULL;
    unsigned long count = 1000000, found = 0;
    uint64_t seed = 42;
    uint8_t form = OCSP_HASH_SHA1, (*serials)[OCSP_SERIAL_MAX] = NULL, *lens = NULL;
    size_t nserials = 0;
    struct sp_pick {
        uint8_t serial[OCSP_SERIAL_MAX];
        uint8_t len;
    } *picked = NULL;
    struct sp_issuer iss = {0};
    struct ocsp_store *st = NULL;
    char line[256];
    FILE *f;
    double c0, w0, c1, w1;
    int c, rc = 1;

    log_init("storeprobe", LOG_LVL_WARN);
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'd':
            dir = optarg;
            break;
        case 's':
            list = optarg;
            break;
        case 'n':
            count = strtoul(optarg, NULL, 10);
            break;
        case 'f':
            form = strcmp(optarg, "sha256") == 0 ? OCSP_HASH_SHA256 : OCSP_HASH_SHA1;
            break;
        case 'r':
            seed = strtoull(optarg, NULL, 10) | 1;
            break;
        case 'i':
            iss.name = optarg;
            break;
        default:
            dir = NULL;
            break;
        }
    }
    if (dir == NULL || list == NULL || iss.name == NULL || count == 0 || optind != argc) {
        fprintf(stderr, "usage: storeprobe --store DIR --serials FILE --issuer NAME [--count N] "
                        "[--form sha1|sha256] [--seed S]\n");
        return 2;
    }
    if ((f = fopen(list, "r")) == NULL) {
        log_err("cannot read %s", list);
        return 1;
    }
    serials = malloc((size_t)SP_MAX_SERIALS * sizeof(*serials));
    lens = malloc(SP_MAX_SERIALS);
    while (serials != NULL && lens != NULL && nserials < SP_MAX_SERIALS &&
           fgets(line, sizeof(line), f) != NULL) {
        int n = sp_hex(line, serials[nserials], OCSP_SERIAL_MAX);

        if (n > 0)
            lens[nserials++] = (uint8_t)n;
    }
    fclose(f);
    if (nserials == 0) {
        log_err("no serials in %s", list);
        goto out;
    }
    if ((st = ocsp_store_open(dir, 0, true)) == NULL ||
        ocsp_store_issuer_walk(st, sp_issuer_named, &iss) != ST_OK || !iss.found) {
        log_err("cannot read the store in %s, or it has no issuer %s", dir, iss.name);
        goto out;
    }
    if (store_prefault_start(ocsp_store_raw(st), false) == ST_OK) {
        struct store_prefault_report rep;

        while (!store_prefault_report(ocsp_store_raw(st), &rep))
            usleep(50000);
        fprintf(stderr, "storeprobe: %.0f MiB mapped ahead in %.1f s, %.0f MiB in 2 MiB pages\n",
                (double)rep.mapped / (1 << 20), rep.seconds, (double)rep.huge / (1 << 20));
    }
    /* the serials to read, picked at random before the clock starts and read in order: a
     * pick from the whole list in the timed loop would add a cache and TLB miss of the list
     * (210 MB for 10 M serials) to every read, which ocspd, given the serial by the request,
     * does not pay */
    if ((picked = malloc(count * sizeof(*picked))) == NULL) {
        log_err("out of memory for %lu serials", count);
        goto out;
    }
    for (unsigned long i = 0; i < count; i++) {
        size_t k = (size_t)(sp_next(&seed) % nserials);

        memcpy(picked[i].serial, serials[k], lens[k]);
        picked[i].len = lens[k];
    }
    c0 = sp_clock(CLOCK_PROCESS_CPUTIME_ID);
    w0 = sp_clock(CLOCK_MONOTONIC);
    for (unsigned long i = 0; i < count; i++) {
        struct ocsp_response_found fd;

        if (ocsp_store_response_get(st,
                                    &(struct ocsp_response_query){.issuer_id = iss.id,
                                                                  .serial = picked[i].serial,
                                                                  .serial_len = picked[i].len,
                                                                  .form = form,
                                                                  .status = true,
                                                                  .stamp_only = true,
                                                                  .certs = iss.certs,
                                                                  .certs_len = iss.certs_len},
                                    &fd) == ST_OK) {
            found++;
            free(fd.resp.der);
        }
    }
    c1 = sp_clock(CLOCK_PROCESS_CPUTIME_ID);
    w1 = sp_clock(CLOCK_MONOTONIC);
    printf("{\"reads\": %lu, \"found\": %lu, \"serials\": %zu, \"cpu_us_per_read\": %.3f, "
           "\"wall_us_per_read\": %.3f}\n",
           count, found, nserials, (c1 - c0) * 1e6 / (double)count,
           (w1 - w0) * 1e6 / (double)count);
    rc = found == count ? 0 : 1;
    if (rc != 0)
        log_err("%lu of %lu reads found no answer: not serials of issuer %s", count - found, count,
                iss.name);
out:
    ocsp_store_close(st);
    free(iss.certs);
    free(serials);
    free(lens);
    free(picked);
    return rc;
}
