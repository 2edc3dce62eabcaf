/* fmtnum: see fmtnum.h. */
#include "common/fmtnum.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>

static const double pow10_tab[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
static const uint64_t pow10_int[] = {1,      10,      100,      1000,      10000,
                                     100000, 1000000, 10000000, 100000000, 1000000000};

size_t fmt_fixed(char *p, double v, int decimals)
{
    if (decimals < 0)
        decimals = 0;
    if (decimals > 9)
        decimals = 9;
    if (isnan(v))
        return (size_t)snprintf(p, FMTNUM_MAX, "nan");
    if (isinf(v))
        return (size_t)snprintf(p, FMTNUM_MAX, v < 0 ? "-inf" : "inf");
    double scaled = fabs(v) * pow10_tab[decimals];
    if (!(scaled < 9.0e15)) { /* beyond exact integers in a double: printf does it right */
        int n = snprintf(p, FMTNUM_MAX, "%.*f", decimals, v);
        return n < FMTNUM_MAX ? (size_t)n : FMTNUM_MAX - 1; /* truncated past 47 digits */
    }
    uint64_t n = (uint64_t)(scaled + 0.5); /* half away from zero (scaled >= 0) */
    char tmp[FMTNUM_MAX];
    size_t len = 0;
    uint64_t ip = n / pow10_int[decimals], fp = n % pow10_int[decimals];
    /* digits backwards: fraction, point, integer part */
    for (int i = 0; i < decimals; i++) {
        tmp[len++] = (char)('0' + fp % 10);
        fp /= 10;
    }
    if (decimals > 0)
        tmp[len++] = '.';
    do {
        tmp[len++] = (char)('0' + ip % 10);
        ip /= 10;
    } while (ip);
    /* printf keeps the sign of a negative value that rounds to zero ("-0.000") */
    if (signbit(v))
        tmp[len++] = '-';
    for (size_t i = 0; i < len; i++)
        p[i] = tmp[len - 1 - i];
    p[len] = '\0';
    return len;
}
