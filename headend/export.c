/* export: see export.h. Telemetry rows are bucketed by the gateway's time stamp cut to whole
 * seconds (one gateway cycle stamps every asset alike, so a bucket is one cycle); a sample of
 * an asset that reported itself offline is a missing cell, and its offline span goes to
 * site.json instead. Sums over several assets of one kind (two PV inverters) are missing
 * when any term is. Output is in store order (time, then insertion), so the same store gives
 * the same files. */
#include "headend/export.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/caltime.h"
#include "headend/inventory.h"
#include "headend/store.h"

/* The telemetry rows of one asset an export holds in memory (58 days at 1 s); --max-rows. A
 * range with more is refused, naming the asset: it used to be cut there without a word. */
#define EXPORT_MAX_ROWS 5000000

/* der.v1.AssetType numbers */
enum { T_BATTERY = 1, T_PV = 2, T_METER = 3, T_EVSE = 4, T_BOILER = 5 };

struct sample {
    int64_t sec; /* ts_ms / 1000 */
    double power_w, soc;
    int online;
};

struct series {
    const struct inv_asset *a;
    struct sample *s;
    size_t n, cap;
    cJSON *offline;   /* spans, appended as found */
    int64_t off_from; /* start of the open offline span, -1 = none */
    int64_t last_ms;
    long long rows; /* read from the store */
};

static int add_sample(const struct store_telemetry *t, void *ctx)
{
    struct series *se = ctx;
    se->rows++;
    if (se->n == se->cap) {
        size_t nc = se->cap ? se->cap * 2 : 1024;
        struct sample *ns = realloc(se->s, nc * sizeof *ns);
        if (!ns)
            return -ENOMEM;
        se->s = ns;
        se->cap = nc;
    }
    int64_t sec = t->ts_ms / 1000 - (t->ts_ms % 1000 < 0);
    struct sample *last = se->n ? &se->s[se->n - 1] : NULL;
    struct sample *x = last && last->sec == sec ? last : &se->s[se->n++];
    x->sec = sec;
    x->power_w = t->power_w;
    x->soc = t->soc;
    x->online = t->online;
    if (!t->online && se->off_from < 0)
        se->off_from = t->ts_ms;
    if (t->online && se->off_from >= 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "asset_id", se->a->id);
        cJSON_AddNumberToObject(o, "from_ms", (double)se->off_from);
        cJSON_AddNumberToObject(o, "to_ms", (double)t->ts_ms);
        cJSON_AddItemToArray(se->offline, o);
        se->off_from = -1;
    }
    se->last_ms = t->ts_ms;
    return 0;
}

/* The value of asset i at second sec (NAN: no sample, or offline). */
static double value_at(const struct series *se, size_t *cursor, int64_t sec, int soc)
{
    while (*cursor < se->n && se->s[*cursor].sec < sec)
        (*cursor)++;
    if (*cursor >= se->n || se->s[*cursor].sec != sec || !se->s[*cursor].online)
        return NAN;
    return soc ? se->s[*cursor].soc : se->s[*cursor].power_w;
}

/* details.jsonl: one line per sample that carried type-specific details, in store order. */
static int put_details(const struct store_telemetry *t, void *ctx)
{
    if (t->details[0])
        fprintf((FILE *)ctx, "{\"ts_ms\":%lld,\"asset_id\":\"%s\",\"details\":%s}\n",
                (long long)t->ts_ms, t->asset_id, t->details);
    return 0;
}

/* decisions.jsonl: the gateway's decision records (docs/protocol.md, "Decisions"), one per
 * line, oldest first: the stored object with who sent it. */
static int put_decision(const struct store_decision *d, void *ctx)
{
    fprintf((FILE *)ctx, "{\"gateway_id\":\"%s\",\"received_ms\":%lld,\"decision\":%s}\n",
            d->gateway_id, (long long)d->received_ms, d->json);
    return 0;
}

static int write_decisions(struct store *st, const char *site, int64_t from_ms, int64_t to_ms,
                           const char *path, FILE *err)
{
    FILE *f = fopen(path, "w");
    int e = f ? st->ops->decision_range(st, site, from_ms, to_ms, -1, put_decision, f) : -1;
    if (!f || fclose(f) != 0 || e < 0) {
        fprintf(err, "der-headend export: %s: write failed\n", path);
        return 1;
    }
    return 0;
}

static int add_dispatch(const struct store_dispatch *d, void *ctx)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", d->id);
    cJSON_AddStringToObject(o, "asset_id", d->asset_id);
    cJSON_AddNumberToObject(o, "power_w", d->power_w);
    cJSON_AddNumberToObject(o, "created_ms", (double)d->created_ms);
    cJSON_AddNumberToObject(o, "expires_ms", (double)d->expires_ms);
    cJSON_AddStringToObject(o, "state", dispatch_state_name(d->state));
    /* the gateway acknowledged it (RECEIVED and after): it reached the site */
    cJSON_AddBoolToObject(o, "reached", d->state >= DISPATCH_RECEIVED);
    cJSON_AddItemToArray((cJSON *)ctx, o);
    return 0;
}

static int add_session(const struct store_session *s, void *ctx)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "gateway_id", s->gateway_id);
    cJSON_AddNumberToObject(o, "started_ms", (double)s->started_ms);
    cJSON_AddNumberToObject(o, "ended_ms", (double)s->ended_ms);
    cJSON_AddStringToObject(o, "reason", s->reason);
    cJSON_AddItemToArray((cJSON *)ctx, o);
    return 0;
}

/* The column of each asset: the grid meter ("grid" in its id, else the first meter), PV summed
 * into pv_w, batteries by id, EVSE and boiler summed. Other meters are not exported. */
static int grid_meter(const struct series *se, size_t n)
{
    int first = -1;
    for (size_t i = 0; i < n; i++)
        if (se[i].a->type == T_METER) {
            if (strstr(se[i].a->id, "grid"))
                return (int)i;
            if (first < 0)
                first = (int)i;
        }
    return first;
}

static void put_cell(FILE *f, double v, int decimals)
{
    if (isnan(v))
        fputc(',', f);
    else
        fprintf(f, ",%.*f", decimals, v);
}

static int write_records(const char *path, const struct series *se, size_t n, int64_t from_ms,
                         int64_t to_ms, FILE *err)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(err, "der-headend export: %s: %s\n", path, strerror(errno));
        return 1;
    }
    int grid = grid_meter(se, n);
    static const struct {
        int type;
        const char *col;
    } sums[] = {{T_PV, "pv_w"}, {T_EVSE, "evse_w"}, {T_BOILER, "boiler_w"}};
    fputs("unix_ms,grid_w", f);
    for (size_t k = 0; k < 3; k++)
        for (size_t i = 0; i < n; i++)
            if (se[i].a->type == sums[k].type) {
                fprintf(f, ",%s", sums[k].col);
                break;
            }
    for (size_t i = 0; i < n; i++)
        if (se[i].a->type == T_BATTERY)
            fprintf(f, ",%s_w,%s_soc", se[i].a->id, se[i].a->id);
    fputc('\n', f);
    size_t *cur = calloc(n ? n : 1, sizeof *cur);
    if (!cur) {
        fclose(f);
        return 1;
    }
    /* every second any asset reported, in order: a merge over the sorted series */
    int64_t sec = INT64_MIN;
    for (;;) {
        int64_t next = INT64_MAX;
        for (size_t i = 0; i < n; i++) {
            while (cur[i] < se[i].n && se[i].s[cur[i]].sec <= sec)
                cur[i]++;
            if (cur[i] < se[i].n && se[i].s[cur[i]].sec < next)
                next = se[i].s[cur[i]].sec;
        }
        if (next == INT64_MAX)
            break;
        sec = next;
        if (sec * 1000 < from_ms || sec * 1000 > to_ms)
            continue;
        fprintf(f, "%lld", (long long)(sec * 1000));
        if (grid >= 0) {
            size_t c = cur[grid];
            put_cell(f, value_at(&se[grid], &c, sec, 0), 3);
        } else {
            put_cell(f, NAN, 3);
        }
        for (size_t k = 0; k < 3; k++) {
            double sum = 0;
            int any = 0;
            for (size_t i = 0; i < n; i++)
                if (se[i].a->type == sums[k].type) {
                    size_t c = cur[i];
                    sum += value_at(&se[i], &c, sec, 0);
                    any = 1;
                }
            if (any)
                put_cell(f, sum, 3);
        }
        for (size_t i = 0; i < n; i++)
            if (se[i].a->type == T_BATTERY) {
                size_t c = cur[i];
                put_cell(f, value_at(&se[i], &c, sec, 0), 3);
                c = cur[i];
                put_cell(f, value_at(&se[i], &c, sec, 1), 4);
            }
        fputc('\n', f);
    }
    free(cur);
    if (fclose(f) != 0) {
        fprintf(err, "der-headend export: %s: write failed\n", path);
        return 1;
    }
    return 0;
}

/* commands.jsonl: the site's commands created in the range, as GET /commands/:id shows them
 * (the store's session_id left out), oldest first. */
static int put_command(const char *json, void *ctx)
{
    cJSON *o = cJSON_Parse(json);
    if (o) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "session_id");
        char *t = cJSON_PrintUnformatted(o);
        if (t)
            fprintf(ctx, "%s\n", t);
        cJSON_free(t);
        cJSON_Delete(o);
    }
    return 0;
}

static int write_commands(struct store *st, const char *site, int64_t from_ms, int64_t to_ms,
                          const char *path, FILE *err)
{
    FILE *f = fopen(path, "w");
    int e = f ? st->ops->command_range(st, site, from_ms, to_ms, put_command, f) : 0;
    if (!f || fclose(f) != 0 || e < 0) {
        fprintf(err, "der-headend export: %s: %s\n", path,
                e < 0 ? "store read failed" : "write failed");
        return 1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fputs("usage: der-headend export --site ID --from TIME --to TIME --inventory FILE --out DIR\n"
          "                          [--db FILE] [--max-rows N]\n"
          "Writes a site's history from the store as DIR/records.csv (telemetry by second) and\n"
          "DIR/site.json (assets and limits, dispatches with their TTLs, offline spans,\n"
          "sessions), for `der-sim import --site-json`, with DIR/details.jsonl and\n"
          "DIR/decisions.jsonl (the gateway's decision records) and DIR/commands.jsonl (the\n"
          "per-asset commands and their acks). TIME: ISO 8601 "
          "(2026-05-12T09:00:00Z).\n"
          "The store is DATABASE_URL when set, else --db, else the server's default.\n"
          "--max-rows: telemetry rows of one asset held at most (default 5000000); a range\n"
          "with more is refused (exit 1, naming the asset): export it in parts.\n",
          f);
}

int exportcmd_run(int argc, char **argv, const char *database_url, tokencmd_default_db default_db,
                  FILE *out, FILE *err)
{
    static const struct option opts[] = {{"site", required_argument, NULL, 's'},
                                         {"from", required_argument, NULL, 'f'},
                                         {"to", required_argument, NULL, 't'},
                                         {"inventory", required_argument, NULL, 'i'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"db", required_argument, NULL, 'd'},
                                         {"max-rows", required_argument, NULL, 'm'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    long long max_rows = EXPORT_MAX_ROWS;
    const char *site = NULL, *from = NULL, *to = NULL, *invp = NULL, *dir = NULL, *db = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            site = optarg;
            break;
        case 'f':
            from = optarg;
            break;
        case 't':
            to = optarg;
            break;
        case 'i':
            invp = optarg;
            break;
        case 'o':
            dir = optarg;
            break;
        case 'd':
            db = optarg;
            break;
        case 'm': {
            char *end = NULL;
            errno = 0;
            max_rows = strtoll(optarg, &end, 10);
            if (errno || !end || *end || end == optarg || max_rows < 1 || max_rows > 1000000000) {
                fprintf(err, "der-headend export: --max-rows: 1..1000000000, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        }
        case 'h':
            usage(out);
            return 0;
        default:
            usage(err);
            return 2;
        }
    }
    int64_t from_ms, to_ms;
    if (optind != argc || !site || !from || !to || !invp || !dir) {
        usage(err);
        return 2;
    }
    if (caltime_parse(from, &from_ms) || caltime_parse(to, &to_ms) || to_ms < from_ms) {
        fprintf(err,
                "der-headend export: --from and --to must be ISO 8601 instants, from <= to "
                "(got \"%s\", \"%s\")\n",
                from, to);
        return 2;
    }
    char def[512], msg[512], path[1200];
    const char *loc = database_url && database_url[0] ? database_url
                      : db                            ? db
                      : default_db                    ? default_db(def, sizeof(def))
                                                      : NULL;
    struct inventory *inv = NULL;
    struct store *st = NULL;
    if (!loc) {
        fprintf(err, "der-headend export: no store: pass --db FILE (or set DATABASE_URL)\n");
        return 2;
    }
    if (inventory_load(invp, &inv, msg, sizeof msg) < 0) {
        fprintf(err, "der-headend export: inventory: %s\n", msg);
        return 1;
    }
    const struct inv_site *is = inventory_site(inv, site);
    if (!is) {
        fprintf(err, "der-headend export: --site: no site \"%s\" in %s\n", site, invp);
        inventory_free(inv);
        return 1;
    }
    /* an export reads: a mistyped --db path used to create an empty SQLite file there and
     * export an empty history with success */
    struct stat dbst;
    if (strncmp(loc, "postgres", 8) != 0 && strcmp(loc, ":memory:") != 0 && stat(loc, &dbst) != 0) {
        fprintf(err, "der-headend export: store: %s: %s\n", loc, strerror(errno));
        inventory_free(inv);
        return 1;
    }
    if (store_open(loc, &st, msg, sizeof msg) < 0) {
        fprintf(err, "der-headend export: store: %s\n", msg);
        inventory_free(inv);
        return 1;
    }
    int rc = 0;
    struct series *se = calloc(is->n_assets ? is->n_assets : 1, sizeof *se);
    cJSON *doc = cJSON_CreateObject(), *assets = cJSON_AddArrayToObject(doc, "assets");
    cJSON *offline = cJSON_CreateArray();
    char tb[40];
    cJSON_AddStringToObject(doc, "site_id", site);
    cJSON_AddStringToObject(doc, "from", caltime_format(from_ms, tb, sizeof tb));
    cJSON_AddStringToObject(doc, "to", caltime_format(to_ms, tb, sizeof tb));
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        fprintf(err, "der-headend export: %s: %s\n", dir, strerror(errno));
        rc = 1;
        goto out;
    }
    for (size_t i = 0; se && i < is->n_assets; i++)
        se[i].a = inventory_asset_at(inv, is->assets[i]);
    int grid = grid_meter(se, is->n_assets);
    for (size_t i = 0; se && i < is->n_assets; i++) {
        const struct inv_asset *a = se[i].a;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", a->id);
        cJSON_AddStringToObject(o, "type", inventory_type_name(a->type));
        cJSON_AddNumberToObject(o, "capacity_wh", a->capacity_wh);
        cJSON_AddNumberToObject(o, "min_power_w", a->min_power_w);
        cJSON_AddNumberToObject(o, "max_power_w", a->max_power_w);
        /* the records.csv column the asset's power went to (null: not exported) */
        char col[80];
        snprintf(col, sizeof col, "%s_w", a->id);
        const char *cn = (int)i == grid         ? "grid_w"
                         : a->type == T_PV      ? "pv_w"
                         : a->type == T_EVSE    ? "evse_w"
                         : a->type == T_BOILER  ? "boiler_w"
                         : a->type == T_BATTERY ? col
                                                : NULL;
        if (cn)
            cJSON_AddStringToObject(o, "column", cn);
        else
            cJSON_AddNullToObject(o, "column");
        cJSON_AddItemToArray(assets, o);
        se[i].offline = offline;
        se[i].off_from = -1;
        /* one row more than the cap: a range that holds more is refused, never cut */
        int e = st->ops->telemetry_range(st, a->id, from_ms, to_ms, (int)(max_rows + 1), add_sample,
                                         &se[i]);
        if (e) {
            fprintf(err, "der-headend export: telemetry of %s could not be read (%d)\n", a->id, e);
            rc = 1;
            goto out;
        }
        if (se[i].rows > max_rows) {
            fprintf(err,
                    "der-headend export: the range holds more than %lld telemetry rows of %s "
                    "(--max-rows): export a shorter range, in parts\n",
                    max_rows, a->id);
            rc = 1;
            goto out;
        }
        if (se[i].off_from >= 0) { /* offline until the end of the range */
            cJSON *sp = cJSON_CreateObject();
            cJSON_AddStringToObject(sp, "asset_id", a->id);
            cJSON_AddNumberToObject(sp, "from_ms", (double)se[i].off_from);
            cJSON_AddNumberToObject(sp, "to_ms", (double)to_ms);
            cJSON_AddItemToArray(offline, sp);
        }
    }
    cJSON *disp = cJSON_AddArrayToObject(doc, "dispatches");
    cJSON_AddItemToObject(doc, "offline", offline);
    offline = NULL;
    cJSON *sess = cJSON_AddArrayToObject(doc, "sessions");
    if (st->ops->dispatch_range(st, site, from_ms, to_ms, add_dispatch, disp) < 0 ||
        st->ops->sessions_recent(st, site, 1000, add_session, sess) < 0) {
        fprintf(err, "der-headend export: dispatches or sessions could not be read\n");
        rc = 1;
        goto out;
    }
    snprintf(path, sizeof path, "%s/records.csv", dir);
    if ((rc = write_records(path, se, is->n_assets, from_ms, to_ms, err)))
        goto out;
    snprintf(path, sizeof path, "%s/details.jsonl", dir);
    FILE *df = fopen(path, "w");
    for (size_t i = 0; df && i < is->n_assets; i++)
        if (st->ops->telemetry_range(st, se[i].a->id, from_ms, to_ms, (int)max_rows, put_details,
                                     df))
            break;
    if (!df || fclose(df) != 0) {
        fprintf(err, "der-headend export: %s: write failed\n", path);
        rc = 1;
        goto out;
    }
    snprintf(path, sizeof path, "%s/commands.jsonl", dir);
    if ((rc = write_commands(st, site, from_ms, to_ms, path, err)))
        goto out;
    snprintf(path, sizeof path, "%s/decisions.jsonl", dir);
    if ((rc = write_decisions(st, site, from_ms, to_ms, path, err)))
        goto out;
    snprintf(path, sizeof path, "%s/site.json", dir);
    char *txt = cJSON_Print(doc);
    FILE *f = txt ? fopen(path, "w") : NULL;
    if (!f || fputs(txt, f) < 0 || fputc('\n', f) < 0 || fclose(f) != 0) {
        fprintf(err, "der-headend export: %s: write failed\n", path);
        rc = 1;
    }
    free(txt);
    if (!rc)
        fprintf(out, "export: site %s from %s: %s/records.csv, %s/site.json\n", site, from, dir,
                dir);
out:
    for (size_t i = 0; se && i < is->n_assets; i++)
        free(se[i].s);
    free(se);
    cJSON_Delete(offline);
    cJSON_Delete(doc);
    store_close(st);
    inventory_free(inv);
    return rc;
}
