/* duration: human durations ("15m", "1d", "900s", "1h30m", "250ms") to integer milliseconds,
 * and back. Shared by scenario files (sim/) and site configurations (gateway/). Pure functions. */
#ifndef DERLOOP_DURATION_H
#define DERLOOP_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* The longest duration there is: 100 years of 365 days ("36500d"), longer than any scenario,
 * tariff or expiry needs. Every parsed duration is within [0, DURATION_MAX_MS], so sums and
 * small multiples of durations (3 poll periods, an instant plus a duration) cannot overflow an
 * int64_t (INT64_MAX is about 2.9 million times DURATION_MAX_MS), nor can one duration in
 * nanoseconds. */
#define DURATION_MAX_MS (36500LL * 86400000LL)

/* Parses a duration made of one or more <integer-or-decimal><unit> terms, unit one of
 * ms, s, m, h, d (e.g. "1d7h", "1.5h", "90s"). Returns 0 with *out_ms in
 * [0, DURATION_MAX_MS]; -ERANGE when the total is above DURATION_MAX_MS (however many digits);
 * -EINVAL for anything else (empty string, missing unit, negative number, sub-millisecond
 * remainder). *out_ms is written only on success. */
int duration_parse(const char *s, int64_t *out_ms);

/* Writes the shortest exact form ("1d7h", "250ms", "0s") into buf. Returns buf. */
char *duration_format(int64_t ms, char *buf, size_t len);

#endif
