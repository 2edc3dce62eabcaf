/* fmtnum: fixed-precision decimal formatting of doubles for the CSV outputs, several times
 * faster than printf's %.Nf (which converts the exact binary value with multi-precision
 * arithmetic). The result equals printf's except where the scaled value lies within about
 * 1e-6 of a rounding boundary: there it rounds half away from zero from the double product.
 * Deterministic either way. Pure functions; the caller owns the buffer. */
#ifndef DERLOOP_FMTNUM_H
#define DERLOOP_FMTNUM_H

#include <stddef.h>

#define FMTNUM_MAX 48 /* enough for any double at up to 9 decimals */

/* Writes v with `decimals` (0..9) digits after the point at p (NUL-terminated) and returns the
 * number of characters written. NaN gives "nan", infinities "inf"/"-inf" (as printf). Values
 * too large for an exact 64-bit integer after scaling fall back to snprintf, truncated to
 * FMTNUM_MAX - 1 characters (far beyond any power or energy this project writes). */
size_t fmt_fixed(char *p, double v, int decimals);

#endif
