/* pem: a whole PEM file (a certificate chain, a private key, CA certificates) read into memory
 * for TLS credentials (the gateway's uplink.tls, the headend's --tls-* options). At most
 * PEM_MAX_BYTES and at least one -----BEGIN line; the contents are checked by whoever parses
 * them (gRPC, OpenSSL). */
#ifndef DERLOOP_PEM_H
#define DERLOOP_PEM_H

#include <stddef.h>

#define PEM_MAX_BYTES (1 << 20)

/* The text of file, NUL-terminated, for the caller to free (pem_free for a private key).
 * NULL with err naming the setting and the file: `LABEL: cannot read "FILE": REASON` or
 * `LABEL: "FILE" is not a PEM file (...)`, label being e.g. "uplink.tls.key" or "--tls-cert". */
char *pem_read(const char *label, const char *file, char *err, size_t errlen);

/* Wipes a key's text before freeing it (NULL is fine). */
void pem_free(char *pem);

#endif
