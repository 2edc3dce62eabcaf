/* sunspec-gen: the build-time generator of the register tables. It reads SunSpec's own JSON
 * model definitions (gateway/devices/sunspec/model_N.json), validates them, flattens groups
 * ("PFWInj.PF"), resolves scale-factor links to point indexes, and writes a C file of static
 * const tables (types from gateway/devices/sunspec.h) plus a small header. Models come out sorted
 * by id and points in file order, so the output is byte-identical for the same inputs.
 *
 * With --maps it reads the derloop device maps instead (gateway/devices/maps/NAME.json: the
 * EVSE and boiler maps, written in SunSpec's own format so that one parser reads both) and
 * writes the tables of gateway/devices/devmap.h: the one description of those maps that the
 * gateway's drivers, the simulator's images and docs/registers.md all read.
 *
 * Usage: sunspec-gen OUT.c OUT.h model_1.json model_701.json ...
 *        sunspec-gen --maps OUT.c OUT.h maps/evse.json maps/boiler.json ...
 * Any unexpected content fails the build with "FILE: point NAME: message". */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define MAX_POINTS   1024
#define MAX_MODELS   256
#define NAME_MAX_LEN 96

/* A SunSpec type: its JSON name, the C enumerator in gateway/devices/sunspec.h, its size in
 * registers (0 = any, for strings), and whether symbols may be attached. */
struct type_info {
    const char *json, *c_enum;
    int size;
    int symbolic;
};

static const struct type_info types[] = {
    {"int16", "SUNSPEC_INT16", 1, 0},
    {"uint16", "SUNSPEC_UINT16", 1, 0},
    {"int32", "SUNSPEC_INT32", 2, 0},
    {"uint32", "SUNSPEC_UINT32", 2, 0},
    {"int64", "SUNSPEC_INT64", 4, 0},
    {"uint64", "SUNSPEC_UINT64", 4, 0},
    {"acc16", "SUNSPEC_ACC16", 1, 0},
    {"acc32", "SUNSPEC_ACC32", 2, 0},
    {"acc64", "SUNSPEC_ACC64", 4, 0},
    {"enum16", "SUNSPEC_ENUM16", 1, 1},
    {"enum32", "SUNSPEC_ENUM32", 2, 1},
    {"bitfield16", "SUNSPEC_BITFIELD16", 1, 1},
    {"bitfield32", "SUNSPEC_BITFIELD32", 2, 1},
    {"bitfield64", "SUNSPEC_BITFIELD64", 4, 1},
    {"sunssf", "SUNSPEC_SUNSSF", 1, 0},
    {"string", "SUNSPEC_STRING", 0, 0},
    {"pad", "SUNSPEC_PAD", 1, 0},
    {"float32", "SUNSPEC_FLOAT32", 2, 0},
    {"float64", "SUNSPEC_FLOAT64", 4, 0},
    {"count", "SUNSPEC_COUNT", 1, 0},
    {"raw16", "SUNSPEC_RAW16", 1, 0},
    {"ipaddr", "SUNSPEC_IPADDR", 2, 0},
    {"ipv6addr", "SUNSPEC_IPV6ADDR", 8, 0},
    {"eui48", "SUNSPEC_EUI48", 4, 0},
};

struct symbol {
    char *name;
    long long value;
};

struct point {
    char name[NAME_MAX_LEN];
    char group[NAME_MAX_LEN]; /* "" at the top level, else "A" or "A.B" */
    char sf_name[NAME_MAX_LEN];
    int offset, size;
    const struct type_info *type;
    int writable, mandatory;
    int sf_index; /* -1 none, -2 literal */
    int sf_literal;
    const char *units;
    const char *desc; /* "" when none */
    int n_symbols;
    struct symbol *symbols;
};

struct model {
    int id;
    const char *file;
    char name[NAME_MAX_LEN];
    int length;
    /* --maps only: the map's driver name, version and its section of docs/registers.md */
    const char *driver, *title, *intro;
    int version;
    int n_points;
    struct point *points;
    cJSON *root;
};

static const char *cur_file;
/* --maps: our own device maps, which differ from SunSpec models in three ways: no ID/L header
 * (MapId and MapVersion instead), literal scale factors only, and enumerations carried in
 * uint16 points (as the devices they follow do). */
static int maps_mode;

static int fail(const char *point, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sunspec-gen: %s: ", cur_file);
    if (point)
        fprintf(stderr, "point %s: ", point);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -EINVAL;
}

static const struct type_info *find_type(const char *name)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(types[i].json, name))
            return &types[i];
    return NULL;
}

static int valid_ident(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return 0;
    return 1;
}

static int integral(const cJSON *j, long long *out)
{
    if (!cJSON_IsNumber(j) || j->valuedouble != (double)(long long)j->valuedouble)
        return 0;
    *out = (long long)j->valuedouble;
    return 1;
}

/* Parses a literal scale factor given as a number or a numeric string ("-2"). */
static int literal_sf(const cJSON *sf, int *out)
{
    long long v;
    if (cJSON_IsNumber(sf)) {
        if (!integral(sf, &v))
            return 0;
    } else {
        char *end;
        const char *s = sf->valuestring;
        if (!*s)
            return 0;
        v = strtoll(s, &end, 10);
        if (*end)
            return 0;
    }
    if (v < -10 || v > 10)
        return 0;
    *out = (int)v;
    return 1;
}

static int parse_symbols(struct point *p, const cJSON *syms)
{
    if (!cJSON_IsArray(syms))
        return fail(p->name, "\"symbols\" is not an array");
    if (!p->type->symbolic && !(maps_mode && p->type == find_type("uint16")))
        return fail(p->name, "symbols on a %s point", p->type->json);
    int n = cJSON_GetArraySize(syms);
    p->symbols = calloc(n ? (size_t)n : 1, sizeof *p->symbols);
    if (!p->symbols)
        return -ENOMEM;
    const cJSON *s;
    cJSON_ArrayForEach(s, syms)
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(s, "name");
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(s, "value");
        long long v;
        if (!cJSON_IsString(nm) || !*nm->valuestring)
            return fail(p->name, "symbol without a name");
        if (strchr(nm->valuestring, '"') || strchr(nm->valuestring, '\\'))
            return fail(p->name, "symbol %s: quote or backslash in the name", nm->valuestring);
        if (!integral(val, &v) || v < 0 || v > 0xFFFFFFFFLL)
            return fail(p->name, "symbol %s: value is not an integer in [0, 2^32)",
                        nm->valuestring);
        for (int i = 0; i < p->n_symbols; i++)
            if (p->symbols[i].value == v || !strcmp(p->symbols[i].name, nm->valuestring))
                return fail(p->name, "symbol %s: duplicate name or value %lld", nm->valuestring, v);
        p->symbols[p->n_symbols].name = nm->valuestring;
        p->symbols[p->n_symbols].value = v;
        p->n_symbols++;
    }
    return 0;
}

static int parse_point(struct model *m, const cJSON *jp, const char *group, int *offset)
{
    if (m->n_points >= MAX_POINTS)
        return fail(NULL, "more than %d points", MAX_POINTS);
    struct point *p = &m->points[m->n_points];
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(jp, "name");
    if (!cJSON_IsObject(jp) || !cJSON_IsString(nm) || !valid_ident(nm->valuestring))
        return fail(NULL, "a point in group \"%s\" has no valid name", group);
    int w = snprintf(p->name, sizeof p->name, "%s%s%s", group, *group ? "." : "", nm->valuestring);
    if (w < 0 || (size_t)w >= sizeof p->name)
        return fail(nm->valuestring, "name too long");
    snprintf(p->group, sizeof p->group, "%s", group);
    for (int i = 0; i < m->n_points; i++)
        if (!strcmp(m->points[i].name, p->name))
            return fail(p->name, "duplicate point name");

    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(jp, "type");
    if (!cJSON_IsString(ty))
        return fail(p->name, "no \"type\"");
    p->type = find_type(ty->valuestring);
    if (!p->type)
        return fail(p->name, "unknown type \"%s\"", ty->valuestring);

    long long size;
    if (!integral(cJSON_GetObjectItemCaseSensitive(jp, "size"), &size) || size < 1 || size > 1000)
        return fail(p->name, "\"size\" missing or not a positive integer");
    if (p->type->size && size != p->type->size)
        return fail(p->name, "size %lld does not match type %s (%d)", size, p->type->json,
                    p->type->size);
    p->size = (int)size;
    p->offset = *offset;
    *offset += p->size;

    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(jp, "access");
    if (acc &&
        (!cJSON_IsString(acc) || (strcmp(acc->valuestring, "R") && strcmp(acc->valuestring, "RW"))))
        return fail(p->name, "\"access\" must be \"R\" or \"RW\"");
    p->writable = acc && !strcmp(acc->valuestring, "RW");

    const cJSON *man = cJSON_GetObjectItemCaseSensitive(jp, "mandatory");
    if (man &&
        (!cJSON_IsString(man) || (strcmp(man->valuestring, "M") && strcmp(man->valuestring, "O"))))
        return fail(p->name, "\"mandatory\" must be \"M\" or \"O\"");
    p->mandatory = man && !strcmp(man->valuestring, "M");

    const cJSON *units = cJSON_GetObjectItemCaseSensitive(jp, "units");
    if (units && (!cJSON_IsString(units) || strchr(units->valuestring, '"') ||
                  strchr(units->valuestring, '\\')))
        return fail(p->name, "\"units\" is not a plain string");
    p->units = units ? units->valuestring : "";
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(jp, "desc");
    if (desc && !cJSON_IsString(desc))
        return fail(p->name, "\"desc\" is not a string");
    p->desc = desc ? desc->valuestring : "";
    if (maps_mode) {
        /* The address is the map's contract: stated in the file, checked against the sizes. */
        long long addr;
        if (!integral(cJSON_GetObjectItemCaseSensitive(jp, "address"), &addr))
            return fail(p->name, "\"address\" missing or not an integer");
        if (addr != p->offset)
            return fail(p->name, "\"address\" %lld, but the points before it end at %d", addr,
                        p->offset);
        if (!desc || !*p->desc)
            return fail(p->name, "no \"desc\" (docs/registers.md prints it)");
    }

    p->sf_index = -1;
    const cJSON *sf = cJSON_GetObjectItemCaseSensitive(jp, "sf");
    if (sf) {
        if (!cJSON_IsString(sf) && !cJSON_IsNumber(sf))
            return fail(p->name, "\"sf\" is neither a point name nor a number");
        if (literal_sf(sf, &p->sf_literal)) {
            p->sf_index = -2;
        } else if (maps_mode) {
            return fail(p->name, "\"sf\" must be a literal exponent in a device map");
        } else if (cJSON_IsString(sf) && valid_ident(sf->valuestring)) {
            snprintf(p->sf_name, sizeof p->sf_name, "%s", sf->valuestring);
        } else {
            return fail(p->name, "bad \"sf\"");
        }
        if (p->type->symbolic || p->type == find_type("string") || p->type == find_type("sunssf") ||
            p->type == find_type("pad"))
            return fail(p->name, "a %s point cannot have a scale factor", p->type->json);
    }

    const cJSON *syms = cJSON_GetObjectItemCaseSensitive(jp, "symbols");
    if (syms) {
        int rc = parse_symbols(p, syms);
        if (rc)
            return rc;
    }
    m->n_points++;
    return 0;
}

/* Points of a group come first, then its sub-groups, each flattened in file order. */
static int parse_group(struct model *m, const cJSON *g, const char *prefix, int *offset, int top)
{
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(g, "points");
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(g, "groups");
    if (pts && !cJSON_IsArray(pts))
        return fail(NULL, "group \"%s\": \"points\" is not an array", prefix);
    if (groups && !cJSON_IsArray(groups))
        return fail(NULL, "group \"%s\": \"groups\" is not an array", prefix);
    if (top && cJSON_GetArraySize(pts) < 2)
        return fail(NULL, "the model has fewer than two points (ID, L)");
    const cJSON *jp;
    cJSON_ArrayForEach(jp, pts)
    {
        int rc = parse_point(m, jp, prefix, offset);
        if (rc)
            return rc;
    }
    const cJSON *sg;
    cJSON_ArrayForEach(sg, groups)
    {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(sg, "name");
        const cJSON *count = cJSON_GetObjectItemCaseSensitive(sg, "count");
        if (!cJSON_IsObject(sg) || !cJSON_IsString(nm) || !valid_ident(nm->valuestring))
            return fail(NULL, "a group in \"%s\" has no valid name", prefix);
        long long n = 1;
        if (count && (!integral(count, &n) || n != 1))
            return fail(NULL,
                        "group %s: \"count\" other than 1 (repeating groups) is not "
                        "supported by the static tables",
                        nm->valuestring);
        char sub[NAME_MAX_LEN];
        int w = snprintf(sub, sizeof sub, "%s%s%s", prefix, *prefix ? "." : "", nm->valuestring);
        if (w < 0 || (size_t)w >= sizeof sub)
            return fail(NULL, "group %s: name too long", nm->valuestring);
        int rc = parse_group(m, sg, sub, offset, 0);
        if (rc)
            return rc;
    }
    return 0;
}

/* A scale-factor name is looked up in the point's own group, then in each enclosing group up
 * to the top level (704's group points use the top-level PF_SF). */
static int resolve_sf(struct model *m, struct point *p)
{
    char scope[NAME_MAX_LEN];
    snprintf(scope, sizeof scope, "%s", p->group);
    for (;;) {
        char full[2 * NAME_MAX_LEN + 2];
        snprintf(full, sizeof full, "%s%s%s", scope, *scope ? "." : "", p->sf_name);
        for (int i = 0; i < m->n_points; i++) {
            if (strcmp(m->points[i].name, full))
                continue;
            if (m->points[i].type != find_type("sunssf"))
                return fail(p->name, "scale factor %s is a %s, not a sunssf", full,
                            m->points[i].type->json);
            p->sf_index = i;
            return 0;
        }
        if (!*scope)
            return fail(p->name, "scale factor %s not found in the model", p->sf_name);
        char *dot = strrchr(scope, '.');
        if (dot)
            *dot = '\0';
        else
            scope[0] = '\0';
    }
}

/* Reads and parses the JSON file at path into m->root. */
static int read_json(struct model *m, const char *path)
{
    cur_file = path;
    m->file = path;
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(NULL, "cannot open: %s", strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return -ENOMEM;
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        len += r;
        if (r == 0)
            break;
    }
    int rd_err = ferror(f);
    fclose(f);
    if (rd_err) {
        free(buf);
        return fail(NULL, "read error");
    }
    buf[len] = '\0';
    m->root = cJSON_Parse(buf);
    free(buf);
    if (!m->root)
        return fail(NULL, "invalid JSON near \"%.30s\"",
                    cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() : "");
    return 0;
}

static int load_model(struct model *m, const char *path)
{
    int rc = read_json(m, path);
    if (rc)
        return rc;
    long long id;
    if (!integral(cJSON_GetObjectItemCaseSensitive(m->root, "id"), &id) || id < 1 || id >= 0xFFFF)
        return fail(NULL, "\"id\" missing or not in [1, 65534]");
    m->id = (int)id;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    int fid;
    char tail[8];
    if (sscanf(base, "model_%d.%7s", &fid, tail) == 2 && !strcmp(tail, "json") && fid != m->id)
        return fail(NULL, "id %d does not match the file name", m->id);

    const cJSON *g = cJSON_GetObjectItemCaseSensitive(m->root, "group");
    const cJSON *gname = cJSON_GetObjectItemCaseSensitive(g, "name");
    if (!cJSON_IsObject(g) || !cJSON_IsString(gname) || !valid_ident(gname->valuestring))
        return fail(NULL, "no top-level \"group\" with a valid name");
    snprintf(m->name, sizeof m->name, "%s", gname->valuestring);

    m->points = calloc(MAX_POINTS, sizeof *m->points);
    if (!m->points)
        return -ENOMEM;
    int offset = 0;
    if ((rc = parse_group(m, g, "", &offset, 1)))
        return rc;

    struct point *idp = &m->points[0], *lp = &m->points[1];
    if (strcmp(idp->name, "ID") || idp->type != find_type("uint16"))
        return fail(idp->name, "the first point must be ID (uint16)");
    if (strcmp(lp->name, "L") || lp->type != find_type("uint16"))
        return fail(lp->name, "the second point must be L (uint16)");
    const cJSON *jpts = cJSON_GetObjectItemCaseSensitive(g, "points");
    long long v;
    const cJSON *idv = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(jpts, 0), "value");
    if (idv && (!integral(idv, &v) || v != m->id))
        return fail("ID", "value does not match the model id %d", m->id);
    m->length = offset - 2;
    if (m->length > 0xFFFF - 2)
        return fail(NULL, "model too long (%d registers)", m->length);
    const cJSON *lv = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(jpts, 1), "value");
    if (lv && (!integral(lv, &v) || v != m->length))
        return fail("L", "value does not match the sum of the point sizes (%d)", m->length);

    for (int i = 0; i < m->n_points; i++) {
        struct point *p = &m->points[i];
        if (p->sf_name[0] && (rc = resolve_sf(m, p)))
            return rc;
    }
    return 0;
}

static int by_id(const void *a, const void *b)
{
    const struct model *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* A point table and its symbol tables, named points_TAG and sym_TAG_N. */
static void emit_points(FILE *c, const struct model *m, const char *tag)
{
    for (int i = 0; i < m->n_points; i++) {
        struct point *p = &m->points[i];
        if (!p->n_symbols)
            continue;
        fprintf(c, "static const struct sunspec_symbol sym_%s_%d[] = {\n", tag, i);
        for (int s = 0; s < p->n_symbols; s++)
            fprintf(c, "    {\"%s\", %lldu},\n", p->symbols[s].name, p->symbols[s].value);
        fprintf(c, "};\n");
    }
    fprintf(c, "\nstatic const struct sunspec_point points_%s[] = {\n", tag);
    for (int i = 0; i < m->n_points; i++) {
        struct point *p = &m->points[i];
        char syms[48] = "NULL";
        if (p->n_symbols)
            snprintf(syms, sizeof syms, "sym_%s_%d", tag, i);
        fprintf(c, "    {\"%s\", %d, %d, %s, %d, %d, %d, %d, \"%s\", %d, %s},\n", p->name,
                p->offset, p->size, p->type->c_enum, p->writable, p->mandatory, p->sf_index,
                p->sf_index == -2 ? p->sf_literal : 0, p->units, p->n_symbols, syms);
    }
    fprintf(c, "};\n");
}

static int close_out(FILE *f, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) || bad) {
        fprintf(stderr, "sunspec-gen: %s: write error\n", path);
        return -EIO;
    }
    return 0;
}

static FILE *open_out(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "sunspec-gen: %s: %s\n", path, strerror(errno));
    return f;
}

static int emit(const char *c_path, const char *h_path, struct model *models, int n)
{
    FILE *c = open_out(c_path);
    if (!c)
        return -EIO;
    fprintf(
        c, "/* Generated by sunspec-gen (gateway/devices/sunspec_gen.c) from SunSpec's JSON model\n"
           " * definitions (gateway/devices/sunspec/, Apache-2.0). Do not edit. */\n"
           "#include \"sunspec_models.h\"\n\n");
    for (int k = 0; k < n; k++) {
        char tag[16];
        snprintf(tag, sizeof tag, "%d", models[k].id);
        emit_points(c, &models[k], tag);
    }
    fprintf(c, "\nconst struct sunspec_model sunspec_models[SUNSPEC_N_MODELS] = {\n");
    for (int k = 0; k < n; k++)
        fprintf(c, "    {%d, \"%s\", %d, %d, points_%d},\n", models[k].id, models[k].name,
                models[k].length, models[k].n_points, models[k].id);
    fprintf(c, "};\n");
    if (close_out(c, c_path))
        return -EIO;

    FILE *h = open_out(h_path);
    if (!h)
        return -EIO;
    fprintf(
        h,
        "/* Generated by sunspec-gen from gateway/devices/sunspec/model_*.json. Do not edit.\n"
        " * The SunSpec model tables, sorted by model id; types in gateway/devices/sunspec.h. */\n"
        "#ifndef SUNSPEC_MODELS_H\n#define SUNSPEC_MODELS_H\n\n"
        "#include \"gateway/devices/sunspec.h\"\n\n"
        "#define SUNSPEC_N_MODELS %d\n"
        "extern const struct sunspec_model sunspec_models[SUNSPEC_N_MODELS];\n\n#endif\n",
        n);
    return close_out(h, h_path);
}

/* ---- --maps: our own device maps ------------------------------------------------------- */

/* A JSON string as a C string literal. */
static void put_cstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static int get_text(const cJSON *root, const char *key, const char **out)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsString(j) || !*j->valuestring)
        return fail(NULL, "\"%s\" missing or not a non-empty string", key);
    *out = j->valuestring;
    return 0;
}

/* A device map: {"id", "version", "driver", "title", "intro", "group": {"name", "points"}};
 * every point has an "address" (checked against the sizes before it) and a "desc". The map
 * starts with MapId and MapVersion, as SunSpec models start with ID and L. */
static int load_map(struct model *m, const char *path)
{
    int rc = read_json(m, path);
    if (rc)
        return rc;
    long long id = 0, version;
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(m->root, "id");
    char *end = NULL;
    if (cJSON_IsString(jid)) /* "0x4556": a map id reads best in hex */
        id = strtoll(jid->valuestring, &end, 0);
    if ((cJSON_IsString(jid) ? *end != '\0' : !integral(jid, &id)) || id < 1 || id > 0xFFFF)
        return fail(NULL, "\"id\" (the value of MapId) missing or not in [1, 0xFFFF]");
    if (!integral(cJSON_GetObjectItemCaseSensitive(m->root, "version"), &version) || version < 1 ||
        version > 0xFFFF)
        return fail(NULL, "\"version\" (the value of MapVersion) missing or not in [1, 65535]");
    m->id = (int)id;
    m->version = (int)version;
    if ((rc = get_text(m->root, "driver", &m->driver)) ||
        (rc = get_text(m->root, "title", &m->title)) ||
        (rc = get_text(m->root, "intro", &m->intro)))
        return rc;
    if (strspn(m->driver, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(m->driver))
        return fail(NULL, "\"driver\" \"%s\": lower-case letters, digits and '-' only", m->driver);
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(m->root, "group");
    const cJSON *gname = cJSON_GetObjectItemCaseSensitive(g, "name");
    if (!cJSON_IsObject(g) || !cJSON_IsString(gname) || !valid_ident(gname->valuestring))
        return fail(NULL, "no top-level \"group\" with a valid name (the C prefix of its points)");
    snprintf(m->name, sizeof m->name, "%s", gname->valuestring);
    if (cJSON_GetObjectItemCaseSensitive(g, "groups"))
        return fail(NULL, "a device map has no sub-groups");
    m->points = calloc(MAX_POINTS, sizeof *m->points);
    if (!m->points)
        return -ENOMEM;
    int offset = 0;
    if ((rc = parse_group(m, g, "", &offset, 1)))
        return rc;
    static const char *const head[] = {"MapId", "MapVersion"};
    for (int i = 0; i < 2; i++)
        if (strcmp(m->points[i].name, head[i]) || m->points[i].type != find_type("uint16") ||
            m->points[i].writable)
            return fail(m->points[i].name, "point %d must be %s (uint16, R)", i, head[i]);
    m->length = offset;
    return 0;
}

static int by_driver(const void *a, const void *b)
{
    const struct model *x = a, *y = b;
    return strcmp(x->driver, y->driver);
}

static int emit_maps(const char *c_path, const char *h_path, struct model *maps, int n)
{
    FILE *c = open_out(c_path);
    if (!c)
        return -EIO;
    fprintf(c, "/* Generated by sunspec-gen --maps (gateway/devices/sunspec_gen.c) from\n"
               " * gateway/devices/maps/NAME.json. Do not edit. */\n"
               "#include \"devmap_maps.h\"\n\n");
    for (int k = 0; k < n; k++) {
        const struct model *m = &maps[k];
        emit_points(c, m, m->name);
        fprintf(c, "\nstatic const char *const docs_%s[] = {\n", m->name);
        for (int i = 0; i < m->n_points; i++) {
            fputs("    ", c);
            put_cstr(c, m->points[i].desc);
            fputs(",\n", c);
        }
        fprintf(c, "};\n");
    }
    fprintf(c, "\nconst struct devmap devmap_maps[DEVMAP_N_MAPS] = {\n");
    for (int k = 0; k < n; k++) {
        const struct model *m = &maps[k];
        fprintf(c, "    {\"%s\", ", m->driver);
        put_cstr(c, m->title);
        fputs(", ", c);
        put_cstr(c, m->intro);
        fprintf(c, ", 0x%04X, %d, %d, %d, points_%s, docs_%s},\n", m->id, m->version, m->length,
                m->n_points, m->name, m->name);
    }
    fprintf(c, "};\n");
    if (close_out(c, c_path))
        return -EIO;

    FILE *h = open_out(h_path);
    if (!h)
        return -EIO;
    fprintf(
        h,
        "/* Generated by sunspec-gen --maps from gateway/devices/maps/NAME.json. Do not edit.\n"
        " * The derloop device maps, sorted by driver name; types in gateway/devices/devmap.h.\n"
        " * DEVMAP_<MAP> indexes devmap_maps, DM_<MAP>_<Point> a map's points. */\n"
        "#ifndef DEVMAP_MAPS_H\n#define DEVMAP_MAPS_H\n\n"
        "#include \"gateway/devices/devmap.h\"\n\n"
        "#define DEVMAP_N_MAPS %d\n"
        "extern const struct devmap devmap_maps[DEVMAP_N_MAPS];\n\n",
        n);
    fprintf(h, "enum devmap_index {\n");
    for (int k = 0; k < n; k++)
        fprintf(h, "    DEVMAP_%s,\n", maps[k].name);
    fprintf(h, "};\n");
    for (int k = 0; k < n; k++) {
        fprintf(h, "\nenum devmap_%s_point {\n", maps[k].name);
        for (int i = 0; i < maps[k].n_points; i++)
            fprintf(h, "    DM_%s_%s,\n", maps[k].name, maps[k].points[i].name);
        fprintf(h, "    DM_%s_N\n};\n", maps[k].name);
    }
    fprintf(h, "\n#endif\n");
    return close_out(h, h_path);
}

int main(int argc, char **argv)
{
    maps_mode = argc > 1 && !strcmp(argv[1], "--maps");
    char **args = argv + maps_mode;
    int nargs = argc - maps_mode;
    if (nargs < 4) {
        fprintf(stderr, "usage: sunspec-gen OUT.c OUT.h model_N.json...\n"
                        "       sunspec-gen --maps OUT.c OUT.h maps/NAME.json...\n");
        return 2;
    }
    int n = nargs - 3;
    if (n > MAX_MODELS) {
        fprintf(stderr, "sunspec-gen: more than %d models\n", MAX_MODELS);
        return 1;
    }
    struct model *models = calloc((size_t)n, sizeof *models);
    if (!models)
        return 1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        rc = maps_mode ? load_map(&models[i], args[3 + i]) : load_model(&models[i], args[3 + i]);
    if (!rc) {
        qsort(models, (size_t)n, sizeof *models, maps_mode ? by_driver : by_id);
        for (int i = 1; i < n && !rc; i++) {
            cur_file = models[i].file;
            if (!maps_mode && models[i].id == models[i - 1].id)
                rc = fail(NULL, "model %d also defined in %s", models[i].id, models[i - 1].file);
            for (int k = 0; maps_mode && k < i && !rc; k++)
                if (models[i].id == models[k].id || !strcmp(models[i].name, models[k].name) ||
                    !strcmp(models[i].driver, models[k].driver))
                    rc = fail(NULL, "id, group name or driver also used by %s", models[k].file);
        }
    }
    if (!rc)
        rc = maps_mode ? emit_maps(args[1], args[2], models, n) : emit(args[1], args[2], models, n);
    if (rc) {
        /* Leave no half-written output behind for make to trust. */
        remove(args[1]);
        remove(args[2]);
    }
    for (int i = 0; i < n; i++) {
        if (models[i].points)
            for (int k = 0; k < models[i].n_points; k++)
                free(models[i].points[k].symbols);
        free(models[i].points);
        cJSON_Delete(models[i].root);
    }
    free(models);
    return rc ? 1 : 0;
}
