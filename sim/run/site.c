/* site: one simulated site at run time (see site.h).
 *
 * A site owns its assets (models, register images, fault state) in file order and the
 * scenario's events for its base id. A step runs in a fixed order, so two runs of one scenario
 * are bit-identical:
 *   1. events whose start or end is due begin or end, in (at, seq) order;
 *   2. control points written into the images become model commands;
 *   3. every model steps, in file order;
 *   4. the balance grid = load + evse + boiler - pv - battery is formed and the meters see it;
 *   5. the images are refreshed with the new measurements (a frozen image is not).
 * While a grid outage is active (island_step) step 3 differs: every model but the batteries
 * steps, then the batteries form the grid and take the balance in place of their setpoints,
 * PV is curtailed by a surplus they cannot absorb, and a shortfall is unserved load; grid is 0.
 *
 * Fault effects are levels, not toggles: when an event ends, the field it set goes back to its
 * default and every other event still active on that asset is applied again, so overlapping
 * faults on one asset end in the right state whatever order they end in. */
#include "sim/run/site.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/wire/regmap.h"

/* The balance must close to this (W): the sum is formed from the same doubles the meters get,
 * so anything above rounding means a model and the meter saw different powers. */
#define BALANCE_TOL_W 1e-6

enum ev_phase { EV_PENDING, EV_ACTIVE, EV_DONE };

struct site_event {
    const struct event *ev; /* not owned: in the scenario */
    struct sim_asset *asset;
    enum ev_phase phase;
};

struct site {
    const struct scenario *sc;
    const struct site_cfg *cfg;
    size_t n_assets;
    struct sim_asset *assets;
    size_t n_events;
    struct site_event *events;
    size_t next_event; /* events before this index have ended (or begun and never end) */
    size_t n_outages;
    const struct event **outages; /* the site's grid outages: sorted, never overlapping */
    size_t next_outage;           /* outages before this index have ended */
    struct site_balance bal;
    int no_images; /* site_set_images(s, 0): physics alone, for the benchmark */
};

const struct site_cfg *site_cfg(const struct site *s)
{
    return s->cfg;
}

size_t site_n_assets(const struct site *s)
{
    return s->n_assets;
}

struct sim_asset *site_asset(struct site *s, size_t i)
{
    return i < s->n_assets ? &s->assets[i] : NULL;
}

struct sim_asset *site_find_asset(struct site *s, const char *asset_id)
{
    asset_id = scenario_asset_local(s->cfg, asset_id); /* the gateway's id of a replica's asset */
    for (size_t i = 0; i < s->n_assets; i++)
        if (strcmp(s->assets[i].cfg->id, asset_id) == 0)
            return &s->assets[i];
    return NULL;
}

struct site_balance site_balance(const struct site *s)
{
    return s->bal;
}

static void init_model(struct sim_asset *a, const struct site_cfg *sc)
{
    const struct asset_cfg *c = a->cfg;
    char stream[3 * SCN_ID_MAX];
    switch (c->type) {
    case ASSET_BATTERY:
        battery_init(&a->m.battery, &c->u.battery);
        break;
    case ASSET_PV:
        pv_init(&a->m.pv, &c->u.pv);
        break;
    case ASSET_METER:
        meter_init(&a->m.meter, &c->u.meter);
        break;
    case ASSET_LOAD:
        /* rng.h: one stream per "<site>/<asset>/<purpose>", so adding an asset shifts nothing. */
        snprintf(stream, sizeof stream, "%s/%s/noise", sc->id, c->id);
        load_init(&a->m.load, &c->u.load, sc->seed, stream);
        break;
    case ASSET_EVSE:
        evse_init(&a->m.evse, &c->u.evse);
        break;
    case ASSET_BOILER:
        boiler_init(&a->m.boiler, &c->u.boiler);
        break;
    }
}

struct site *site_new(const struct scenario *sc, size_t site_index, char *err, size_t errlen)
{
    if (site_index >= sc->n_sites) {
        snprintf(err, errlen, "site index %zu out of range (%zu sites)", site_index, sc->n_sites);
        return NULL;
    }
    struct site *s = calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    s->sc = sc;
    s->cfg = &sc->sites[site_index];
    s->assets = calloc(s->cfg->n_assets ? s->cfg->n_assets : 1, sizeof *s->assets);
    if (!s->assets)
        goto nomem;

    for (size_t i = 0; i < s->cfg->n_assets; i++) {
        struct sim_asset *a = &s->assets[i];
        a->cfg = &s->cfg->assets[i];
        a->type = a->cfg->type;
        init_model(a, s->cfg);
    }
    for (size_t i = 0; i < s->cfg->n_assets; i++) {
        char why[256] = "";
        int rc = regmap_attach(&s->assets[i], why, sizeof why);
        if (rc != 0) { /* a failed attach cleans up after itself; the ones before are detached */
            snprintf(err, errlen, "site %s: asset %s: register map: %s", s->cfg->id,
                     s->assets[i].cfg->id, why[0] ? why : strerror(-rc));
            goto fail;
        }
        s->n_assets = i + 1;
    }

    size_t n = 0;
    for (size_t i = 0; i < sc->n_events; i++)
        n += strcmp(sc->events[i].site_id, s->cfg->base_id) == 0;
    s->events = calloc(n ? n : 1, sizeof *s->events);
    if (!s->events)
        goto nomem;
    for (size_t i = 0; i < sc->n_events; i++) {
        const struct event *ev = &sc->events[i];
        if (strcmp(ev->site_id, s->cfg->base_id) != 0)
            continue;
        struct sim_asset *a = site_find_asset(s, ev->asset_id);
        if (!a) {
            snprintf(err, errlen, "site %s: event %d: no asset \"%s\"", s->cfg->id, ev->seq,
                     ev->asset_id);
            goto fail;
        }
        s->events[s->n_events++] = (struct site_event){ev, a, EV_PENDING};
    }

    n = 0;
    for (size_t i = 0; i < sc->n_outages; i++)
        n += strcmp(sc->outages[i].site_id, s->cfg->base_id) == 0;
    s->outages = calloc(n ? n : 1, sizeof *s->outages);
    if (!s->outages)
        goto nomem;
    for (size_t i = 0; i < sc->n_outages; i++)
        if (strcmp(sc->outages[i].site_id, s->cfg->base_id) == 0)
            s->outages[s->n_outages++] = &sc->outages[i];
    return s;

nomem:
    snprintf(err, errlen, "site: out of memory");
fail:
    site_free(s);
    return NULL;
}

void site_free(struct site *s)
{
    if (!s)
        return;
    free(s->events);
    free(s->outages);
    for (size_t i = s->n_assets; i-- > 0;)
        regmap_detach(&s->assets[i]);
    free(s->assets);
    free(s);
}

/* ---- fault events --------------------------------------------------------------------------- */

static int is_wire(enum fault_kind k)
{
    return k == FAULT_TIMEOUT || k == FAULT_EXCEPTION || k == FAULT_SLOW || k == FAULT_OFFLINE;
}

static void set_device_fault(struct sim_asset *a, int on, int64_t now_ms)
{
    switch (a->type) {
    case ASSET_BATTERY:
        a->m.battery.fault = on;
        break;
    case ASSET_PV:
        a->m.pv.fault = on;
        break;
    case ASSET_EVSE:
        a->m.evse.fault = on;
        break;
    case ASSET_BOILER:
        if (on) {
            a->m.boiler.fault = 2;
        } else if (a->m.boiler.fault == 2) {
            /* The injected trip is over: the operator's reset, which also checks that the
             * tank has cooled enough (boiler.c). */
            boiler_command(&a->m.boiler, now_ms, BOILER_CMD_RESET);
        }
        break;
    case ASSET_METER:
    case ASSET_LOAD:
        break; /* the scenario loader rejects device faults on these */
    }
}

/* The level effect of an active event (no edge actions such as a reboot). */
static void apply_effect(struct sim_asset *a, const struct event *ev, int64_t now_ms)
{
    switch (ev->fault) {
    case FAULT_TIMEOUT:
        a->wire = (struct wirefault){.mode = WIRE_TIMEOUT};
        break;
    case FAULT_EXCEPTION:
        a->wire = (struct wirefault){.mode = WIRE_EXCEPTION, .code = ev->code};
        break;
    case FAULT_SLOW:
        a->wire = (struct wirefault){.mode = WIRE_SLOW, .delay_ms = ev->delay_ms};
        break;
    case FAULT_OFFLINE:
        a->wire = (struct wirefault){.mode = WIRE_OFFLINE};
        break;
    case FAULT_FROZEN:
        a->frozen = 1;
        break;
    case FAULT_SPIKE:
        a->spike = 1;
        snprintf(a->spike_point, sizeof a->spike_point, "%s", ev->point);
        a->spike_value = ev->value;
        break;
    case FAULT_DEVICE:
        set_device_fault(a, 1, now_ms);
        break;
    }
}

static int same_group(enum fault_kind x, enum fault_kind y)
{
    return x == y || (is_wire(x) && is_wire(y));
}

/* A device reboot at the end of an offline spell: controls back to their defaults. Meters and
 * loads have no controls and keep their state. */
static void reboot(struct sim_asset *a, int64_t now_ms)
{
    struct boiler *b = &a->m.boiler;
    switch (a->type) {
    case ASSET_BATTERY:
        battery_reset(&a->m.battery);
        break;
    case ASSET_PV:
        pv_reset(&a->m.pv);
        break;
    case ASSET_EVSE:
        evse_reset(&a->m.evse);
        break;
    case ASSET_BOILER:
        boiler_reboot(b, now_ms);
        break;
    case ASSET_METER:
    case ASSET_LOAD:
        break;
    }
    if (a->img)
        regmap_reset(a, now_ms);
}

static void end_event(struct site *s, size_t k, int64_t now_ms)
{
    struct site_event *se = &s->events[k];
    struct sim_asset *a = se->asset;
    enum fault_kind f = se->ev->fault;
    se->phase = EV_DONE;

    if (is_wire(f)) {
        a->wire = (struct wirefault){.mode = WIRE_OK};
    } else if (f == FAULT_FROZEN) {
        a->frozen = 0;
    } else if (f == FAULT_SPIKE) {
        a->spike = 0;
        a->spike_point[0] = '\0';
        a->spike_value = 0.0;
    } else {
        set_device_fault(a, 0, now_ms);
    }
    if (f == FAULT_OFFLINE)
        reboot(a, now_ms);

    /* Another fault of the same kind still active on this asset keeps (or takes) its place. */
    for (size_t i = 0; i < s->n_events; i++) {
        const struct site_event *o = &s->events[i];
        if (o->phase == EV_ACTIVE && o->asset == a && same_group(o->ev->fault, f))
            apply_effect(a, o->ev, now_ms);
    }
}

static void run_events(struct site *s, int64_t now_ms)
{
    for (size_t k = s->next_event; k < s->n_events; k++) {
        struct site_event *se = &s->events[k];
        const struct event *ev = se->ev;
        if (se->phase == EV_PENDING) {
            if (now_ms < ev->at_ms)
                break; /* sorted by at: nothing later has begun either */
            se->phase = EV_ACTIVE;
            apply_effect(se->asset, ev, now_ms);
        }
        if (se->phase == EV_ACTIVE && ev->duration_ms > 0 && now_ms >= ev->at_ms + ev->duration_ms)
            end_event(s, k, now_ms);
    }
    while (s->next_event < s->n_events && s->events[s->next_event].phase == EV_DONE)
        s->next_event++;
}

/* ---- grid outages (islanding) --------------------------------------------------------------- */

/* Whether the step starting at now is islanded: an outage begins at the first step with
 * now >= at and ends at the first step with now >= at + duration, like a fault event. The
 * site's outages are sorted and disjoint, so only the one at the cursor can be active. */
static int outage_active(struct site *s, int64_t now_ms)
{
    while (s->next_outage < s->n_outages) {
        const struct event *o = s->outages[s->next_outage];
        if (now_ms < o->at_ms + o->duration_ms)
            return now_ms >= o->at_ms;
        s->next_outage++;
    }
    return 0;
}

/* Takes x_w off a PV inverter's output for this step and books it as curtailed: the island
 * cannot take it (pv.c has already stepped with its own limit). */
static void pv_island_curtail(struct pv *v, double x_w, int64_t dt_ms)
{
    double dt_h = (double)dt_ms / 3600000.0;
    if (x_w > v->power_w)
        x_w = v->power_w;
    if (!(x_w > 0.0))
        return;
    v->power_w -= x_w;
    v->energy_wh -= x_w * dt_h;
    v->curtailed_wh += x_w * dt_h;
}

/* The islanded step (docs/physics.md, "Grid outages"). Every model but the batteries steps
 * first, in file order; then the batteries that are RUNNING (not in FAULT, not stopped) form the
 * grid and share the net load (load + evse + boiler - pv) in proportion to what each can deliver
 * (or absorb) this step. The simplifications, all deterministic:
 *   - no frequency or voltage dynamics: the inverter follows the balance within the step;
 *   - a shortfall is shed exactly (an ideal load-shedding panel): the consuming models are not
 *     told, so a car still charges and a tank still heats; unserved_w books the difference;
 *   - a surplus the batteries cannot absorb is curtailed from the PV inverters in proportion
 *     to their output (frequency-watt curtailment of a real island, instantaneous here);
 *   - without a working battery there is no grid to follow: PV trips (anti-islanding, booked
 *     as curtailed) and the whole demand is unserved. */
static void island_step(struct site *s, int64_t now_ms, int64_t dt_ms, struct site_balance *b)
{
    double dis_total = 0.0, chg_total = 0.0;
    int formers = 0;
    for (size_t i = 0; i < s->n_assets; i++) {
        struct sim_asset *a = &s->assets[i];
        double dis, chg;
        switch (a->type) {
        case ASSET_BATTERY:
            if (!battery_available(&a->m.battery, now_ms))
                break; /* in FAULT, or stopped */
            formers++;
            battery_step_limits(&a->m.battery, dt_ms, &dis, &chg);
            dis_total += dis;
            chg_total += chg;
            break;
        case ASSET_PV:
            pv_step(&a->m.pv, now_ms, dt_ms);
            b->pv_w += a->m.pv.power_w;
            break;
        case ASSET_LOAD:
            load_step(&a->m.load, now_ms, dt_ms);
            b->load_w += a->m.load.power_w;
            break;
        case ASSET_EVSE:
            evse_step(&a->m.evse, now_ms, dt_ms);
            b->evse_w += a->m.evse.power_w;
            break;
        case ASSET_BOILER:
            boiler_step(&a->m.boiler, now_ms, dt_ms);
            b->boiler_w += a->m.boiler.power_w;
            break;
        case ASSET_METER:
            break;
        }
    }
    double demand = b->load_w + b->evse_w + b->boiler_w;
    double net = demand - b->pv_w;
    /* The share of the batteries' capability that the balance asks for (+ discharge, - charge),
     * and the PV surplus that nothing can absorb. */
    double share = 0.0, curtail = 0.0;
    if (!formers)
        curtail = b->pv_w;
    else if (net > 0.0 && dis_total > 0.0)
        share = net < dis_total ? net / dis_total : 1.0;
    else if (net < 0.0 && chg_total > 0.0)
        share = -net < chg_total ? net / chg_total : -1.0;
    if (formers && net < 0.0 && -net > chg_total)
        curtail = -net - chg_total;

    if (curtail > 0.0 && b->pv_w > 0.0) {
        double pv_before = b->pv_w, f = curtail / pv_before;
        b->pv_w = 0.0;
        for (size_t i = 0; i < s->n_assets; i++) {
            struct sim_asset *a = &s->assets[i];
            if (a->type != ASSET_PV)
                continue;
            pv_island_curtail(&a->m.pv, !formers ? a->m.pv.power_w : a->m.pv.power_w * f, dt_ms);
            b->pv_w += a->m.pv.power_w;
        }
    }
    for (size_t i = 0; i < s->n_assets; i++) {
        struct sim_asset *a = &s->assets[i];
        if (a->type != ASSET_BATTERY)
            continue;
        double p = 0.0, dis, chg;
        if (share != 0.0 && battery_available(&a->m.battery, now_ms)) {
            battery_step_limits(&a->m.battery, dt_ms, &dis, &chg);
            p = share > 0.0 ? share * dis : share * chg;
        }
        battery_step_island(&a->m.battery, now_ms, dt_ms, p);
        b->battery_w += a->m.battery.power_w;
    }
    /* What the batteries did not cover, when they could not (else exactly 0: the rounding of
     * the shares is far inside the balance check's tolerance and must not book as load shed). */
    double unserved = demand - b->pv_w - b->battery_w;
    int short_of = !formers || net > dis_total;
    b->unserved_w = short_of && unserved > 0.0 ? unserved : 0.0;
    b->grid_w = 0.0;
}

/* ---- the step ------------------------------------------------------------------------------- */

void site_step(struct site *s, int64_t now_ms, int64_t dt_ms)
{
    if (s->next_event < s->n_events)
        run_events(s, now_ms);
    int islanded = s->next_outage < s->n_outages && outage_active(s, now_ms);

    for (size_t i = 0; i < s->n_assets && !s->no_images; i++)
        if (s->assets[i].img)
            regmap_read_controls(&s->assets[i], now_ms);

    struct site_balance b = {0};
    for (size_t i = 0; i < s->n_assets && !islanded; i++) {
        struct sim_asset *a = &s->assets[i];
        switch (a->type) {
        case ASSET_BATTERY:
            battery_step(&a->m.battery, now_ms, dt_ms);
            b.battery_w += a->m.battery.power_w;
            break;
        case ASSET_PV:
            pv_step(&a->m.pv, now_ms, dt_ms);
            b.pv_w += a->m.pv.power_w;
            break;
        case ASSET_LOAD:
            load_step(&a->m.load, now_ms, dt_ms);
            b.load_w += a->m.load.power_w;
            break;
        case ASSET_EVSE:
            evse_step(&a->m.evse, now_ms, dt_ms);
            b.evse_w += a->m.evse.power_w;
            break;
        case ASSET_BOILER:
            boiler_step(&a->m.boiler, now_ms, dt_ms);
            b.boiler_w += a->m.boiler.power_w;
            break;
        case ASSET_METER:
            break; /* after the balance */
        }
    }
    if (islanded)
        island_step(s, now_ms, dt_ms, &b);
    else
        b.grid_w = b.load_w + b.evse_w + b.boiler_w - b.pv_w - b.battery_w;
    b.islanded = islanded;
    s->bal = b;

    for (size_t i = 0; i < s->n_assets; i++) {
        struct sim_asset *a = &s->assets[i];
        if (a->type != ASSET_METER)
            continue;
        a->m.meter.islanded = islanded;
        meter_step(&a->m.meter, now_ms, dt_ms,
                   a->m.meter.p.role == METER_GRID ? b.grid_w : b.load_w);
    }

    for (size_t i = 0; i < s->n_assets && !s->no_images; i++) {
        struct sim_asset *a = &s->assets[i];
        if (a->img && !a->frozen)
            regmap_publish(a, now_ms + dt_ms);
    }
}

void site_set_images(struct site *s, int on)
{
    s->no_images = !on;
}

/* ---- invariants ------------------------------------------------------------------------------ */

int site_check(const struct site *s, char *err, size_t errlen)
{
    struct site_balance sum = {0};
    for (size_t i = 0; i < s->n_assets; i++) {
        const struct sim_asset *a = &s->assets[i];
        const char *id = a->cfg->id;
        switch (a->type) {
        case ASSET_BATTERY: {
            const struct battery *bt = &a->m.battery;
            sum.battery_w += bt->power_w;
            if (!(bt->soc >= 0.0 && bt->soc <= 1.0)) {
                snprintf(err, errlen, "site %s: asset %s: soc %.17g outside [0, 1]", s->cfg->id, id,
                         bt->soc);
                return -1;
            }
            if (!isfinite(bt->temp_c)) {
                snprintf(err, errlen, "site %s: asset %s: temperature %g not finite", s->cfg->id,
                         id, bt->temp_c);
                return -1;
            }
            break;
        }
        case ASSET_PV:
            sum.pv_w += a->m.pv.power_w;
            if (!isfinite(a->m.pv.cell_temp_c)) {
                snprintf(err, errlen, "site %s: asset %s: cell temperature %g not finite",
                         s->cfg->id, id, a->m.pv.cell_temp_c);
                return -1;
            }
            break;
        case ASSET_LOAD:
            sum.load_w += a->m.load.power_w;
            break;
        case ASSET_EVSE:
            sum.evse_w += a->m.evse.power_w;
            break;
        case ASSET_BOILER:
            sum.boiler_w += a->m.boiler.power_w;
            if (!isfinite(a->m.boiler.temp_c)) {
                snprintf(err, errlen, "site %s: asset %s: tank temperature %g not finite",
                         s->cfg->id, id, a->m.boiler.temp_c);
                return -1;
            }
            break;
        case ASSET_METER:
            break;
        }
    }
    double grid =
        sum.load_w + sum.evse_w + sum.boiler_w - sum.pv_w - sum.battery_w - s->bal.unserved_w;
    if (!(fabs(grid - s->bal.grid_w) <= BALANCE_TOL_W)) {
        snprintf(err, errlen,
                 "site %s: balance does not close: grid %.6f W, load %.6f + evse %.6f + boiler "
                 "%.6f - pv %.6f - battery %.6f - unserved %.6f = %.6f W",
                 s->cfg->id, s->bal.grid_w, sum.load_w, sum.evse_w, sum.boiler_w, sum.pv_w,
                 sum.battery_w, s->bal.unserved_w, grid);
        return -1;
    }
    if (s->bal.islanded ? s->bal.grid_w != 0.0 || !(s->bal.unserved_w >= 0.0)
                        : s->bal.unserved_w != 0.0) {
        snprintf(err, errlen, "site %s: %s with grid %.6f W and unserved %.6f W", s->cfg->id,
                 s->bal.islanded ? "islanded" : "connected", s->bal.grid_w, s->bal.unserved_w);
        return -1;
    }
    for (size_t i = 0; i < s->n_assets; i++) {
        const struct sim_asset *a = &s->assets[i];
        if (a->type != ASSET_METER)
            continue;
        double want = a->m.meter.p.role == METER_GRID ? grid : sum.load_w;
        if (!(fabs(a->m.meter.true_w - want) <= BALANCE_TOL_W)) {
            snprintf(err, errlen, "site %s: asset %s: meter measures %.6f W, balance says %.6f W",
                     s->cfg->id, a->cfg->id, a->m.meter.true_w, want);
            return -1;
        }
    }
    return 0;
}
