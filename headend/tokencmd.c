/* tokencmd: `der-headend token add|list|revoke`. It opens the same store as the server (so a
 * running headend sees a new token within a second, headend/auth.c) and writes each change to
 * the audit trail as the REST API does, with who = "cli" and peer = "local": a token made or
 * revoked at the console leaves the same trace as one made over HTTPS. The new token goes to
 * `out` alone on its line (easy to capture in a script); everything else to `err`. */
#include "headend/tokencmd.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "headend/auth.h"
#include "headend/store.h"

static void usage(FILE *f)
{
    fputs("usage: der-headend token add --name NAME --role viewer|operator|admin [--db PATH]\n"
          "       der-headend token list [--db PATH]\n"
          "       der-headend token revoke NAME [--db PATH]\n"
          "The store is DATABASE_URL when set, else --db, else the server's default.\n",
          f);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* UTC, to the second; "-" for 0 (never). */
static const char *when(int64_t ms, char *buf, size_t len)
{
    if (!ms)
        return "-";
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static int print_token(const struct store_token *t, void *ctx)
{
    char c[32], u[32], r[32];
    fprintf(ctx, "%-24s %-9s %-21s %-21s %s\n", t->name, t->role, when(t->created_ms, c, sizeof(c)),
            when(t->last_used_ms, u, sizeof(u)), when(t->revoked_ms, r, sizeof(r)));
    return 0;
}

static void audit_cli(struct store *st, const char *what, const char *name, int status,
                      const char *detail, int64_t now_ms)
{
    struct store_audit a = {.at_ms = now_ms, .status = status};
    snprintf(a.who, sizeof(a.who), "cli");
    snprintf(a.peer, sizeof(a.peer), "local");
    snprintf(a.method, sizeof(a.method), "CLI");
    snprintf(a.path, sizeof(a.path), "token %s %s", what, name);
    snprintf(a.summary, sizeof(a.summary), "(command line)");
    snprintf(a.detail, sizeof(a.detail), "%s", detail);
    st->ops->audit_add(st, &a); /* the change is made; a trail that fails is not fatal here */
}

static int cmd_add(struct store *st, const char *name, const char *role_name, FILE *out, FILE *err)
{
    int role = auth_role_parse(role_name);
    if (!name || role < 0) {
        fprintf(err, "der-headend token add: %s\n",
                !name ? "--name NAME is required" : "--role must be viewer, operator or admin");
        return 2;
    }
    struct store_token rec;
    char token[AUTH_TOKEN_MAX];
    int64_t now = wall_ms();
    int e = auth_token_new(name, role, now, &rec, token);
    if (e == -EINVAL) {
        fprintf(err, "der-headend token add: --name must be 1..63 bytes of UTF-8 without control "
                     "characters\n");
        return 2;
    }
    if (!e)
        e = st->ops->token_add(st, &rec);
    if (e < 0) {
        fprintf(err, "der-headend token add: %s\n",
                e == -EEXIST ? "a token of that name exists (token revoke NAME first)"
                             : strerror(-e));
        explicit_bzero(token, sizeof(token));
        return 1;
    }
    audit_cli(st, "add", name, 201, rec.role, now);
    fprintf(out, "%s\n", token);
    fflush(out);
    explicit_bzero(token, sizeof(token));
    fprintf(err,
            "der-headend: token '%s' (role %s) made; it is shown only this once: keep it "
            "now (the store holds only a salted hash of it)\n",
            rec.name, rec.role);
    return 0;
}

int tokencmd_run(int argc, char **argv, const char *database_url, tokencmd_default_db default_db,
                 FILE *out, FILE *err)
{
    static const struct option opts[] = {{"name", required_argument, NULL, 'n'},
                                         {"role", required_argument, NULL, 'r'},
                                         {"db", required_argument, NULL, 'd'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *name = NULL, *role = NULL, *db = NULL;
    int c;
    optind = 1;
    /* argv[1] is the action: getopt starts after it. */
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? err : out);
        return argc < 2 ? 2 : 0;
    }
    const char *action = argv[1];
    while ((c = getopt_long(argc - 1, argv + 1, "h", opts, NULL)) != -1) {
        if (c == 'n')
            name = optarg;
        else if (c == 'r')
            role = optarg;
        else if (c == 'd')
            db = optarg;
        else {
            usage(c == 'h' ? out : err);
            return c == 'h' ? 0 : 2;
        }
    }
    const char *arg = optind < argc - 1 ? argv[1 + optind] : NULL;
    int nargs = argc - 1 - optind;
    int is_add = !strcmp(action, "add"), is_list = !strcmp(action, "list");
    int is_revoke = !strcmp(action, "revoke");
    if ((!is_add && !is_list && !is_revoke) || (is_revoke ? nargs != 1 : nargs != 0) ||
        (!is_add && (name || role))) {
        usage(err);
        return 2;
    }
    char def[512];
    const char *loc = database_url && database_url[0] ? database_url
                      : db                            ? db
                      : default_db                    ? default_db(def, sizeof(def))
                                                      : NULL;
    if (!loc) {
        fprintf(err, "der-headend token: no store: pass --db FILE (or set DATABASE_URL, "
                     "STATE_DIRECTORY, XDG_STATE_HOME or HOME)\n");
        return 2;
    }
    struct store *st;
    char msg[512];
    if (store_open(loc, &st, msg, sizeof(msg)) < 0) {
        fprintf(err, "der-headend token: store: %s\n", msg);
        return 1;
    }
    int rc = 0;
    if (is_add) {
        rc = cmd_add(st, name, role, out, err);
    } else if (is_list) {
        fprintf(out, "%-24s %-9s %-21s %-21s %s\n", "NAME", "ROLE", "CREATED", "LAST USED",
                "REVOKED");
        if (st->ops->token_list(st, print_token, out) < 0) {
            fprintf(err, "der-headend token list: the store could not be read\n");
            rc = 1;
        }
    } else {
        int64_t now = wall_ms();
        int e = st->ops->token_revoke(st, arg, now);
        if (e == 0) {
            audit_cli(st, "revoke", arg, 200, "revoked", now);
            fprintf(err, "der-headend: token '%s' revoked\n", arg);
        } else {
            fprintf(err, "der-headend token revoke: %s\n",
                    e == -ENOENT ? "no token of that name that is not revoked already"
                                 : strerror(-e));
            rc = 1;
        }
    }
    store_close(st);
    return rc;
}
