/* duration: human durations ("15m", "1d", "900s", "1h30m", "250ms") to integer milliseconds,
 * and back. Shared by scenario files (sim/) and site configurations (gateway/). Pure functions. */
#ifndef DERLOOP_DURATION_H
#define DERLOOP_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Parses a duration made of one or more <integer-or-decimal><unit> terms, unit one of
 * ms, s, m, h, d (e.g. "1d7h", "1.5h", "90s"). Returns 0, or -EINVAL for anything else
 * (empty string, missing unit, negative number, overflow, sub-millisecond remainder). */
int duration_parse(const char *s, int64_t *out_ms);

/* Writes the shortest exact form ("1d7h", "250ms", "0s") into buf. Returns buf. */
char *duration_format(int64_t ms, char *buf, size_t len);

#endif
