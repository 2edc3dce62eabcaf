/* pem: see pem.h. The size bound keeps a wrong path (a log file, /dev/zero) from filling the
 * memory; the -----BEGIN test turns the most common mistake (a DER file, an empty file) into
 * an error naming the file, where gRPC would only fail the first handshake. */
#include "common/pem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *pem_read(const char *label, const char *file, char *err, size_t errlen)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read \"%s\": %s", label, file, strerror(errno));
        return NULL;
    }
    char *buf = malloc(PEM_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, PEM_MAX_BYTES + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (buf)
        buf[n <= PEM_MAX_BYTES ? n : PEM_MAX_BYTES] = '\0';
    if (!buf || bad || n == 0 || n > PEM_MAX_BYTES || !strstr(buf, "-----BEGIN ")) {
        snprintf(err, errlen, "%s: \"%s\" is %s", label, file,
                 !buf  ? "too big to hold (out of memory)"
                 : bad ? "unreadable"
                       : "not a PEM file (empty, over 1 MiB, or no -----BEGIN line)");
        free(buf);
        return NULL;
    }
    return buf;
}

void pem_free(char *pem)
{
    if (pem)
        memset(pem, 0, strlen(pem));
    free(pem);
}
