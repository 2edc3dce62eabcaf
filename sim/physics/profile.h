/* profile: a named input series of a scenario, evaluated at any instant of the run as a pure
 * function of time (all randomness, e.g. cloud events, is drawn once at load time). Owned by the
 * scenario that loaded it (scenario_free frees it). Units are the consumer's: W for loads,
 * W/m^2 for irradiance, currency/kWh for prices, Hz for frequency, L/h for hot-water draw. */
#ifndef DERLOOP_PROFILE_H
#define DERLOOP_PROFILE_H

#include <stddef.h>
#include <stdint.h>

enum profile_kind {
    PROFILE_SERIES,      /* inline points or a CSV file: (t_ms, value), interpolated */
    PROFILE_CLEAR_SKY,   /* clear-sky global irradiance (Haurwitz) with cloud events, W/m^2 */
    PROFILE_TOU,         /* time-of-use tariff bands, weekday and weekend, currency/kWh */
    PROFILE_EV_SESSIONS, /* a list of EV sessions (not a number: see ev_session) */
};

enum profile_interp { INTERP_LINEAR, INTERP_STEP };

struct cloud_event {
    int64_t from_ms, to_ms; /* scenario time, [from, to) */
    double cover;           /* cloud cover N in [0, 1] (Kasten-Czeplak) */
};

struct tou_band {
    int from_min, to_min; /* minutes of the day, [from, to); to may be 1440 */
    double price;
};

struct ev_session {
    char id[32];
    int64_t arrive_ms, depart_ms; /* scenario time */
    double energy_wh;             /* energy the car wants */
    double max_power_w;           /* the car's own limit */
    int phases;                   /* 1 or 3 */
};

struct profile {
    char name[64];
    enum profile_kind kind;
    int64_t start_unix_ms; /* the scenario's start instant, for calendars and the sun */

    /* PROFILE_SERIES */
    enum profile_interp interp;
    int64_t period_ms;        /* > 0: the series repeats with this period ("repeat": "1d") */
    int64_t period_origin_ms; /* a period starts here (0, or the first point: "extend") */
    size_t n;
    int64_t *t_ms; /* strictly increasing */
    double *v;

    /* PROFILE_CLEAR_SKY */
    double latitude_deg, longitude_deg;
    size_t n_clouds;
    struct cloud_event *clouds; /* sorted by from_ms, non-overlapping */

    /* PROFILE_TOU (bands cover the whole day, sorted) */
    size_t n_weekday, n_weekend;
    struct tou_band *weekday, *weekend;

    /* PROFILE_EV_SESSIONS (sorted by arrive_ms) */
    size_t n_sessions;
    struct ev_session *sessions;
};

/* The value at scenario time t_ms. SERIES: interpolated, clamped to the first/last value
 * outside the points (or wrapped with period_ms). CLEAR_SKY: irradiance in W/m^2. TOU: price.
 * EV_SESSIONS: the number of cars present (for plots). */
double profile_value(const struct profile *p, int64_t t_ms);

/* Clear-sky irradiance without clouds at a UTC instant (W/m^2), exposed for tests. */
double profile_clear_sky_w_m2(double latitude_deg, double longitude_deg, int64_t unix_ms);

void profile_free(struct profile *p); /* frees the arrays, not p itself */

/* Builders used by the scenario loader (it validates the JSON; these take plain values). */

/* The two-state Markov cloud process of a clear_sky profile ("clouds" in the file). */
struct cloud_params {
    int64_t mean_clear_ms, mean_cloudy_ms; /* mean spell lengths (exponential), > 0 */
    double cover_min, cover_max;           /* a cloudy spell's cover, uniform in [min, max] */
};

/* Fills p->clouds: spells drawn over [0, duration_ms) from `gen` (NULL = none) on the rng
 * stream "profile/<p->name>/clouds" of `seed`, merged with `explicit_ev` (sorted and
 * non-overlapping; they win where they overlap a drawn spell). Returns 0 or -ENOMEM. */
int profile_set_clouds(struct profile *p, uint64_t seed, int64_t duration_ms,
                       const struct cloud_params *gen, const struct cloud_event *explicit_ev,
                       size_t n_explicit);

/* How a CSV series reads its columns. time_format NULL or "auto": per cell, a number is seconds
 * from the start, a duration ("15m") is from the start, an ISO instant is absolute; a time
 * column named "unix_s" or "unix_ms" holds Unix time. "iso", "unix_s", "unix_ms": every cell in
 * that format (caltime_parse_stamp). tz: the IANA zone of ISO stamps without an offset. */
struct profile_csv_opts {
    const char *time_column, *value_column; /* NULL = the first / second column */
    const char *time_format;
    const char *tz;
};

/* Reads a CSV series into p (kind SERIES; p->start_unix_ms must be set: absolute times are
 * taken relative to it). Header row required. Returns 0, -ENOENT (cannot open), -EINVAL or
 * -ENOMEM; err gets "CSV:LINE: message" (or "CSV: message"). */
int profile_read_csv(struct profile *p, const char *csv_path, const struct profile_csv_opts *o,
                     char *err, size_t errlen);

/* Splits one CSV line in place at commas into at most max cells, each trimmed of blanks, a line
 * end and one pair of double quotes (no quoted commas), as profile_read_csv reads them. Returns
 * the number of cells. Shared by the readers of record files (der-sim import). */
size_t profile_csv_split(char *line, char **cells, size_t max);

/* "extend": "repeat" for a series that covers less than the run: one period is the points plus
 * one more sample interval, starting at the first point. */
void profile_repeat_points(struct profile *p);

#endif
