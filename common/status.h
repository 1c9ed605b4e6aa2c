/*
 * status: the one status type of the project. 0 is success, failures are negative
 * codes with names; foreign codes (OpenSSL, LMDB, PKCS#11, libmicrohttpd) are translated
 * into these at each module's boundary.
 */
#ifndef COMMON_STATUS_H
#define COMMON_STATUS_H

enum {
    ST_OK = 0,
    ST_ERR = -1,       /* unspecified failure */
    ST_NOMEM = -2,     /* allocation failed */
    ST_INVALID = -3,   /* bad argument or bad input data */
    ST_IO = -4,        /* system call / file failure */
    ST_NOTFOUND = -5,  /* key, object or entry absent */
    ST_EXISTS = -6,    /* entry already present (e.g. serial collision) */
    ST_BUSY = -7,      /* queue full: back-pressure */
    ST_CRYPTO = -8,    /* OpenSSL failure */
    ST_CLOCK = -9,     /* time source unusable */
    ST_CONFIG = -10,   /* configuration error */
    ST_HSM = -11,      /* PKCS#11 failure */
    ST_STORE = -12,    /* LMDB failure */
    ST_TIMEOUT = -13,  /* no answer in time */
    ST_SHUTDOWN = -14, /* service is stopping */
    ST_FULL = -15      /* store full: its map size reached, or a background write above the
                          fill level kept for writes that must never fail */
};

/* Name of a status code, for logs. Never NULL. */
const char *status_str(int st);

#endif
