/* caltime: UTC calendar arithmetic on Unix milliseconds without the C library's time zone state
 * (deterministic on every machine). Used for tariffs, sun position and log stamps. */
#ifndef DERLOOP_CALTIME_H
#define DERLOOP_CALTIME_H

#include <stdint.h>

struct caltm {
    int year, month, day; /* month 1-12, day 1-31 */
    int yday;             /* day of the year, 1-366 */
    int wday;             /* 0 = Sunday ... 6 = Saturday */
    int hour, min, sec, ms;
};

/* "2026-06-21T00:00:00Z" (also "+00:00", fractional seconds, or a date "2026-06-21"). Only UTC
 * instants are accepted: a non-zero offset is converted. Returns 0 or -EINVAL. */
int caltime_parse(const char *s, int64_t *unix_ms);
void caltime_split(int64_t unix_ms, struct caltm *out);
/* ISO 8601 UTC with milliseconds, e.g. "2026-06-21T12:00:00.000Z"; buf needs 25 bytes. */
char *caltime_format(int64_t unix_ms, char *buf, int len);
int64_t caltime_from_civil(int year, int month, int day); /* days since 1970-01-01 */
/* A time of day "HH:MM" (tariff bands, daily departures) to its minute of the day: exactly two
 * digits, ':', two digits, "00:00" to "23:59", and "24:00" (1440, the end of the day) only when
 * end_of_day is non-zero. Nothing else is taken: no sign, space, single digit or trailing text
 * (" 7:30", "+7:30", "07:+5", "7:30" are all refused). Returns 0 or -EINVAL. */
int caltime_parse_hhmm(const char *s, int end_of_day, int *minute);

#endif
