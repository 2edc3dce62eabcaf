/* sha256: FIPS 180-4 SHA-256, incremental, for output digests and scenario hashes. */
#ifndef DERLOOP_SHA256_H
#define DERLOOP_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct sha256 {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
};

void sha256_init(struct sha256 *c);
void sha256_update(struct sha256 *c, const void *data, size_t len);
void sha256_final(struct sha256 *c, uint8_t out[32]);
/* One shot, lower-case hex with a terminating NUL. */
void sha256_hex(const void *data, size_t len, char out[65]);
void sha256_to_hex(const uint8_t digest[32], char out[65]);

#endif
