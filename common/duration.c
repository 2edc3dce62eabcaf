/* duration: see duration.h. The grammar is deliberately small: terms of a non-negative decimal
 * number followed by a unit; the total must land on a whole millisecond. */
#include "common/duration.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int unit_ms(const char **p, int64_t *mul)
{
    const char *s = *p;
    if (s[0] == 'm' && s[1] == 's') {
        *mul = 1;
        *p = s + 2;
    } else if (s[0] == 's') {
        *mul = 1000;
        *p = s + 1;
    } else if (s[0] == 'm') {
        *mul = 60000;
        *p = s + 1;
    } else if (s[0] == 'h') {
        *mul = 3600000;
        *p = s + 1;
    } else if (s[0] == 'd') {
        *mul = 86400000;
        *p = s + 1;
    } else {
        return -EINVAL;
    }
    return 0;
}

int duration_parse(const char *s, int64_t *out_ms)
{
    if (!s || !*s || !out_ms)
        return -EINVAL;
    int64_t total = 0;
    int too_long = 0; /* keep checking the syntax: garbage is -EINVAL however long it is */
    const char *p = s;
    while (*p) {
        /* integer part and an optional fraction of up to 6 digits, kept exact as integers;
         * the integer part saturates above DURATION_MAX_MS (any unit makes that too long) */
        int64_t ipart = 0, frac = 0, frac_div = 1;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            ipart = ipart * 10 + (*p - '0');
            if (ipart > DURATION_MAX_MS)
                ipart = DURATION_MAX_MS + 1;
            p++;
            digits++;
        }
        if (*p == '.') {
            p++;
            while (*p >= '0' && *p <= '9') {
                if (frac_div >= 1000000)
                    return -EINVAL;
                frac = frac * 10 + (*p - '0');
                frac_div *= 10;
                p++;
                digits++;
            }
        }
        if (digits == 0)
            return -EINVAL;
        int64_t mul;
        if (unit_ms(&p, &mul) != 0)
            return -EINVAL;
        if ((frac * mul) % frac_div != 0)
            return -EINVAL; /* finer than a millisecond */
        /* ipart <= DURATION_MAX_MS + 1 and frac * mul < 1e6 * 86400000: no overflow below */
        if (too_long || ipart > DURATION_MAX_MS / mul) {
            too_long = 1;
            continue;
        }
        total += ipart * mul + frac * mul / frac_div;
        if (total > DURATION_MAX_MS)
            too_long = 1;
    }
    if (too_long)
        return -ERANGE;
    *out_ms = total;
    return 0;
}

char *duration_format(int64_t ms, char *buf, size_t len)
{
    static const struct {
        const char *name;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    size_t off = 0;
    if (len == 0)
        return buf;
    buf[0] = '\0';
    if (ms <= 0) {
        snprintf(buf, len, ms == 0 ? "0s" : "-%lldms", (long long)-ms);
        return buf;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0] && ms > 0; i++) {
        if (ms >= units[i].ms) {
            int n = snprintf(buf + off, off < len ? len - off : 0, "%lld%s",
                             (long long)(ms / units[i].ms), units[i].name);
            if (n < 0 || (size_t)n >= len - off)
                return buf;
            off += (size_t)n;
            ms %= units[i].ms;
        }
    }
    return buf;
}
