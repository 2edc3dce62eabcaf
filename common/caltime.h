/* caltime: UTC calendar arithmetic on Unix milliseconds without the C library's time zone state
 * (deterministic on every machine). Used for tariffs, sun position and log stamps. It is also
 * the one parser of time stamps in records (ISO 8601 with or without an offset, Unix seconds
 * or milliseconds); only a stamp without an offset needs a zone (caltime_zone), and that reads
 * the system's zoneinfo: loaders only, never simulation or control logic. */
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
/* Formats of a time column in records. CALTIME_ISO: "2026-05-12T11:00:00+02:00", "...Z", or
 * without an offset ("2026-05-12 11:00:00", 'T' or ' ') in a given zone. CALTIME_UNIX_S and
 * CALTIME_UNIX_MS: decimal numbers since 1970-01-01T00:00:00Z ("1778576400", "1778576400000"). */
enum caltime_format { CALTIME_ISO, CALTIME_UNIX_S, CALTIME_UNIX_MS };

/* "iso", "unix_s" or "unix_ms" -> the format. Returns 0 or -EINVAL. */
int caltime_format_parse(const char *name, enum caltime_format *f);

/* An IANA zone (e.g. "Europe/Berlin") from the system's zoneinfo ($TZDIR or
 * /usr/share/zoneinfo). Open sets TZ for the process until close restores it: open, convert a
 * file's stamps, close. Returns 0, -EINVAL (not a zone name) or -ENOENT (no such zone file). */
struct caltime_zone {
    char name[64];
    char saved_tz[128];
    int had_tz, open;
};
int caltime_zone_open(struct caltime_zone *z, const char *name);
void caltime_zone_close(struct caltime_zone *z);

/* One time stamp in format f to Unix ms. An ISO stamp without an offset is wall-clock time in
 * zone z (NULL or not open: -EDOM); a wall-clock time the zone skips (spring forward) is
 * -ERANGE; a repeated one (autumn) is the earlier instant after after_ms (INT64_MIN: none), so
 * an increasing series stays increasing. Anything else that does not parse: -EINVAL. */
int caltime_parse_stamp(const char *s, enum caltime_format f, const struct caltime_zone *z,
                        int64_t after_ms, int64_t *unix_ms);
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
