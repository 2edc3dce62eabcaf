/* ident: id validation, byte by byte so that the offset of the first bad byte can be named.
 * The UTF-8 check is the strict one of RFC 3629 (no overlong forms, no surrogates, nothing
 * past U+10FFFF): an id is compared byte for byte with the inventory, so two spellings of one
 * character must not both pass. */
#include "headend/ident.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "headend/inventory.h"

/* Length of the UTF-8 sequence at s (at most left bytes) and its code point, or 0 when the
 * bytes are no valid UTF-8. */
static size_t utf8_seq(const unsigned char *s, size_t left, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

int ident_valid(const char *s, size_t len, char *why, size_t n)
{
    char dummy[1];
    if (!why || !n) {
        why = dummy;
        n = sizeof(dummy);
    }
    if (!s || len == 0) {
        snprintf(why, n, "is empty");
        return -EINVAL;
    }
    if (len >= INV_ID_MAX) {
        snprintf(why, n, "is longer than %d bytes", INV_ID_MAX - 1);
        return -EINVAL;
    }
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_seq(u + i, len - i, &cp);
        if (!k) {
            snprintf(why, n, "is not valid UTF-8 (byte 0x%02x at byte %zu)", u[i], i);
            return -EINVAL;
        }
        if (cp < 0x20 || cp == 0x7F) {
            snprintf(why, n, "contains a control character (0x%02x) at byte %zu", (unsigned)cp, i);
            return -EINVAL;
        }
        if (cp >= 0x80 && cp <= 0x9F) {
            snprintf(why, n, "contains a control character (U+%04X) at byte %zu", (unsigned)cp, i);
            return -EINVAL;
        }
        i += k;
    }
    return 0;
}
