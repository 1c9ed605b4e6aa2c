/*
 * unitutil: small helpers the unit suites share (header only: each suite is one program).
 */
#ifndef TESTS_UNIT_UNITUTIL_H
#define TESTS_UNIT_UNITUTIL_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Remove a test's temporary directory and everything below it. */
static inline void
remove_tree(const char *d)
{
    DIR *dh = opendir(d);
    struct dirent *e;
    char p[1024];
    struct stat sb;

    if (dh == NULL)
        return;
    while ((e = readdir(dh)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if ((size_t)snprintf(p, sizeof(p), "%.500s/%.255s", d, e->d_name) >= sizeof(p))
            continue;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(p);
        else
            unlink(p);
    }
    closedir(dh);
    rmdir(d);
}

#endif
