/* scenario: one experiment loaded from a JSON file (docs/scenario-format.md): clock, seed,
 * profiles, sites with their assets, the gateway section, timed events and expectations.
 * scenario_load validates everything and names the file, JSON path and bad value on error.
 * The caller owns the returned scenario and frees it with scenario_free. Its parts have their
 * own headers (assetcfg.h: assets, event.h: events), included here for every user. */
#ifndef DERLOOP_SCENARIO_H
#define DERLOOP_SCENARIO_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/tariff.h"
#include "sim/physics/profile.h"
#include "sim/scenario/assetcfg.h"
#include "sim/scenario/event.h"
#include "sim/scenario/forecast.h"

struct site_cfg {
    char id[SCN_ID_MAX]; /* replicas: "<id>-<k>" with k from 1, zero-padded to the width of N */
    char base_id[SCN_ID_MAX]; /* the id in the file */
    char group[SCN_ID_MAX];   /* "group" (or drawn by "vary"); "" = none */
    int replica;              /* 0-based */
    int namespaced;           /* 1 for a replicated site: its assets are "<id>:<asset id>"
                                 outside the simulator (scenario_asset_uid) */
    int port;                 /* 0 = the server picks (port_base + site index when given) */
    uint64_t seed;            /* derived: rng_derive_seed(scenario seed, site id) */
    const struct profile *import_price, *export_price; /* optional, not owned */
    struct tariff_charges charges; /* standing and demand charges ("tariff"); zero = none */
    size_t n_assets;
    struct asset_cfg *assets; /* file order */
};

struct scenario {
    char path[512];
    char name[SCN_ID_MAX];
    char description[256];
    char sha256[65]; /* of the file as read (before overrides), hex */
    uint64_t seed;
    int64_t start_unix_ms;
    int64_t duration_ms, step_ms; /* duration a multiple of step */
    size_t n_profiles;
    struct profile *profiles;
    size_t n_sites; /* after replication */
    struct site_cfg *sites;
    size_t n_events;
    struct event *events; /* faults only, sorted by (at_ms, seq) */
    size_t n_dispatches;
    struct event *dispatches; /* EVENT_DISPATCH and headend events, by (at_ms, seq) */
    size_t n_outages;
    struct event *outages; /* EVENT_GRID_OUTAGE events, sorted by (at_ms, seq); site_id and
                              duration_ms (> 0) only; never two of one site overlapping */
    cJSON *headend;        /* the "headend" object (the real headend in the loop); NULL */
    cJSON *gateway;        /* the "gateway" object as written (validated by the gateway) */
    cJSON *expect;         /* the "expect" object as written */
    cJSON *field;          /* the "field" object (recorded series to overlay); NULL */
    char field_csv[1024];  /* its "csv", resolved against the scenario's directory; "" */
    cJSON *root;           /* the whole document after --set overrides */
    /* the "forecast" section (forecast.h); quality FORECAST_NONE: none */
    struct forecast_cfg forecast;
    char timezone[64];   /* "timezone" (IANA) for report time axes; "" = UTC */
    int32_t tz_offset_s; /* its UTC offset at start (0 without one); the run stays in UTC */
};

/* Loads and validates `path`. overrides: "json.path=value" strings applied to the document
 * before validation (value parsed as JSON, else taken as a string), e.g.
 * "sites[0].assets[1].peak_kw=8". On error returns -EINVAL (or -ENOENT, -ENOMEM) and writes
 * "FILE: JSON.PATH: message, got VALUE" into err. */
int scenario_load(const char *path, const char *const *overrides, size_t n_overrides,
                  struct scenario **out, char *err, size_t errlen);
void scenario_free(struct scenario *s);

/* An asset's id outside the simulator (gateway configuration, headend inventory, the wire):
 * "<site id>:<asset id>" for a replicated site, so that every id of a fleet is unique, else
 * the id as written. buf has SCN_ID_MAX bytes (the loader checked that the id fits). */
const char *scenario_asset_uid(const struct site_cfg *c, const char *asset_id, char *buf);
/* The reverse: the id as written of an id outside the simulator (itself when it has no
 * "<site id>:" prefix of c). */
const char *scenario_asset_local(const struct site_cfg *c, const char *uid);

const struct profile *scenario_profile(const struct scenario *s, const char *name);

#endif
