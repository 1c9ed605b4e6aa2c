/*
 * crc32c: CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected; RFC 3720 §B.4), the check
 * the journal puts on each group it writes so that a write torn by a crash or a power cut
 * is recognised at recovery. A torn-write detector, not an integrity seal: tampering is
 * what the audit log's digest chain is for.
 */
#ifndef COMMON_CRC32C_H
#define COMMON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continue a CRC over p[0..n): start with crc = 0; crc32c(crc32c(0, a), b) == crc of a||b. */
uint32_t crc32c(uint32_t crc, const void *p, size_t n);

#endif
