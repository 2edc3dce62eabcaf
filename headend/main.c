/* der-headend: the headend control plane. Parses the option table (headend/config.c), loads
 * the inventory, opens the store, starts the gRPC server and the REST API, prints
 * `grpc=HOST:PORT http=HOST:PORT ready` on stdout, and stops gracefully on SIGINT/SIGTERM. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "headend/cluster.h"
#include "headend/config.h"
#include "headend/export.h"
#include "headend/grpcsrv.h"
#include "headend/hub.h"
#include "headend/inventory.h"
#include "common/log.h"
#include "headend/rest.h"
#include "headend/store.h"
#include "headend/tokencmd.h"
#include "version.h"

static void usage(FILE *out)
{
    fputs("usage: der-headend [OPTION...]\n"
          "The derloop headend: gRPC server for site gateways, REST API, store.\n\n"
          "  --help                         this text\n"
          "  --version                      print the version and exit\n"
          "  --config-doc                   print the option table as Markdown and exit\n"
          "  token add|list|revoke ...      manage REST tokens (der-headend token --help)\n"
          "  export --site ID --from T ...  a site's history as files for der-sim import\n"
          "                                 (der-headend export --help)\n",
          out);
    config_print_help(out);
    fputs("\nDURATION: numbers with units ms, s, m, h, d (500ms, 10s, 1h30m). The old spellings\n"
          "--NAME-ms N and --NAME-s N still work, deprecated (a warning is logged).\n"
          "Environment: DATABASE_URL=postgres://... selects the PostgreSQL store.\n"
          "On stdout, once listening: grpc=HOST:PORT http=HOST:PORT ready\n",
          out);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void host_of(const char *listen, char *host, size_t len)
{
    const char *colon = strrchr(listen, ':');
    size_t n = colon ? (size_t)(colon - listen) : strlen(listen);
    if (n >= len)
        n = len - 1;
    memcpy(host, listen, n);
    host[n] = 0;
}

/* Where the store goes without --db: a state directory, never the working directory (a
 * quick start from the repository would leave headend.db in the checkout). systemd's
 * StateDirectory= sets STATE_DIRECTORY (/var/lib/derloop); a user gets the XDG state home. */
static const char *state_db_path(char *buf, size_t n)
{
    const char *sd = getenv("STATE_DIRECTORY"), *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    char dir[CONFIG_STR_MAX + 16];
    if (sd && sd[0])
        snprintf(dir, sizeof(dir), "%s", sd);
    else if (xdg && xdg[0])
        snprintf(dir, sizeof(dir), "%s/derloop", xdg);
    else if (home && home[0])
        snprintf(dir, sizeof(dir), "%s/.local/state/derloop", home);
    else
        return NULL;
    /* mkdir -p: each component in turn, existing ones are fine */
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(dir, 0700);
            *p = '/';
        }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return NULL;
    snprintf(buf, n, "%s/headend.db", dir);
    return buf;
}

/* --node-id's default: hostname:port of --grpc-listen, or hostname:pid<N> when that port is
 * 0 (picked at start, so not known yet and not the same after a restart). */
static void default_node_id(struct headend_config *cfg)
{
    if (cfg->node_id[0])
        return;
    char host[128] = "headend";
    if (gethostname(host, sizeof(host)) < 0 || !host[0])
        snprintf(host, sizeof(host), "headend");
    host[sizeof(host) - 1] = 0;
    const char *port = strrchr(cfg->grpc_listen, ':');
    port = port ? port + 1 : "0";
    if (!strcmp(port, "0"))
        snprintf(cfg->node_id, sizeof(cfg->node_id), "%.40s:pid%ld", host, (long)getpid());
    else
        snprintf(cfg->node_id, sizeof(cfg->node_id), "%.40s:%.16s", host, port);
}

/* `der-headend token add|list|revoke ...` (headend/tokencmd.c): on the store the server would
 * open (DATABASE_URL, else --db, else the state directory), without starting any server. */
static int token_main(int argc, char **argv)
{
    return tokencmd_run(argc, argv, getenv("DATABASE_URL"), state_db_path, stdout, stderr);
}

/* The option table (headend/config.c) on the command line: -1 to go on, else the exit status
 * (--help, --version, --config-doc: 0; a bad option: 2). */
static int parse_options(int argc, char **argv, struct headend_config *cfg)
{
    config_defaults(cfg);
    size_t nopt = config_count();
    /* each row, a duration row's old spelling too, then --help, --version, --config-doc */
    struct option *opts = calloc(2 * nopt + 4, sizeof(*opts));
    char(*old)[64] = calloc(nopt, sizeof(*old));
    int rc = -1;
    if (!opts || !old) {
        rc = 1;
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < nopt; i++) {
        int arg = config_is_flag(i) ? no_argument : required_argument;
        opts[n++] = (struct option){config_name(i), arg, NULL, 1000 + (int)i};
        if (config_old_name(i, old[i], sizeof(old[i])))
            opts[n++] = (struct option){old[i], arg, NULL, 1000 + (int)i};
    }
    opts[n] = (struct option){"help", no_argument, NULL, 'h'};
    opts[n + 1] = (struct option){"version", no_argument, NULL, 'V'};
    opts[n + 2] = (struct option){"config-doc", no_argument, NULL, 'D'};
    char err[512];
    int c, idx = -1;
    while (rc < 0 && (c = getopt_long(argc, argv, "hV", opts, &idx)) != -1) {
        if (c == 'h') {
            usage(stdout);
            rc = 0;
        } else if (c == 'V') {
            printf("der-headend %s (commit %s)\n", DERLOOP_VERSION, DERLOOP_COMMIT);
            rc = 0;
        } else if (c == 'D') {
            config_print_markdown(stdout);
            rc = 0;
        } else if (c < 1000 || idx < 0) {
            usage(stderr);
            rc = 2;
        } else if (config_set(cfg, opts[idx].name, optarg ? optarg : "1", err, sizeof(err)) < 0) {
            /* the name as given: an old spelling takes its old value syntax (and warns) */
            fprintf(stderr, "der-headend: %s\n", err);
            rc = 2;
        }
        idx = -1;
    }
out:
    free(opts);
    free(old);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "token"))
        return token_main(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "export"))
        return exportcmd_run(argc - 1, argv + 1, getenv("DATABASE_URL"), state_db_path, stdout,
                             stderr);
    struct headend_config cfg;
    char err[512];
    int rc0 = parse_options(argc, argv, &cfg);
    if (rc0 >= 0)
        return rc0;
    if (optind < argc) {
        fprintf(stderr, "der-headend: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (config_check(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "der-headend: %s\n", err);
        return 2;
    }
    log_set_level(cfg.log_debug ? LOG_DEBUG : LOG_INFO);
    default_node_id(&cfg);

    struct inventory *inv;
    if (inventory_load(cfg.inventory, &inv, err, sizeof(err)) < 0) {
        fprintf(stderr, "der-headend: inventory %s\n", err);
        return 1;
    }
    const char *db = getenv("DATABASE_URL");
    char state_db[CONFIG_STR_MAX + 32];
    if (!db || !db[0])
        db = cfg.db[0] ? cfg.db : state_db_path(state_db, sizeof(state_db));
    if (!db) {
        fprintf(stderr, "der-headend: --db: no state directory (set STATE_DIRECTORY, "
                        "XDG_STATE_HOME or HOME, or pass --db FILE)\n");
        inventory_free(inv);
        return 2;
    }
    struct store *st;
    if (store_open(db, &st, err, sizeof(err)) < 0) {
        fprintf(stderr, "der-headend: store: %s\n", err);
        inventory_free(inv);
        return 1;
    }
    if (strncmp(db, "postgres", 8) != 0) /* a URL may hold a password: not logged */
        log_event(LOG_INFO, "event=store_open path=%s", db);
    size_t n_sites = inventory_site_count(inv), n_assets = inventory_asset_count(inv);
    /* several headends on one PostgreSQL: no two with one name (headend/cluster.h) */
    if (!strncmp(db, "postgres", 8) && cluster_check_node(db, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "der-headend: %s\n", err);
        store_close(st);
        inventory_free(inv);
        return 1;
    }
    struct hub *hub;
    if (hub_new(&cfg, inv, st, wall_ms(), &hub) < 0) {
        fprintf(stderr, "der-headend: out of memory\n");
        return 1;
    }

    /* Signals are taken synchronously by this thread; the server threads never see them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    grpc_init();
    int grpc_port = 0, http_port = 0, rc = 1;
    struct grpcsrv *gs = NULL;
    struct rest *rs = NULL;
    struct cluster *cl = NULL;
    /* Several headends on one PostgreSQL route dispatches and share presence through it
     * (headend/cluster.h); with one headend the thread costs a heartbeat a second. */
    if (!strncmp(db, "postgres", 8) && cluster_start(hub, db, &cl, err, sizeof(err)) < 0) {
        fprintf(stderr, "der-headend: %s\n", err);
        goto out;
    }
    if (grpcsrv_start(hub, &cfg, &gs, &grpc_port, err, sizeof(err)) < 0) {
        fprintf(stderr, "der-headend: %s\n", err);
        goto out;
    }
    if (rest_start(hub, cfg.http_listen, &rs, &http_port, err, sizeof(err)) < 0) {
        fprintf(stderr, "der-headend: %s\n", err);
        goto out;
    }
    char ghost[128], hhost[128];
    host_of(cfg.grpc_listen, ghost, sizeof(ghost));
    host_of(cfg.http_listen, hhost, sizeof(hhost));
    log_event(LOG_INFO,
              "event=start version=%s commit=%s grpc=%s:%d http=%s:%d store=%s sites=%zu "
              "assets=%zu keepalive_time_ms=%d keepalive_timeout_ms=%d tls=%s insecure=%s node=%s",
              DERLOOP_VERSION, DERLOOP_COMMIT, ghost, grpc_port, hhost, http_port, st->ops->name,
              n_sites, n_assets, cfg.keepalive_time_ms, cfg.keepalive_timeout_ms,
              config_grpc_tls_mode(&cfg), cfg.insecure ? "yes" : "no", cfg.node_id);
    if (strcmp(config_grpc_tls_mode(&cfg), "mutual") != 0 && !config_is_loopback(cfg.grpc_listen))
        log_event(LOG_WARN,
                  "event=insecure_listen grpc=%s:%d tls=%s reason=\"--insecure: gateways are not "
                  "authenticated, any client that reaches this address can register as any "
                  "gateway\"",
                  ghost, grpc_port, config_grpc_tls_mode(&cfg));
    printf("grpc=%s:%d http=%s:%d ready\n", ghost, grpc_port, hhost, http_port);
    fflush(stdout);

    int sig = 0;
    sigwait(&sigs, &sig);
    log_event(LOG_INFO, "event=signal signal=%s reason=\"stopping\"",
              sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = 0;
out:
    rest_stop(rs);
    grpcsrv_stop(gs);
    cluster_stop(cl);
    hub_free(hub);
    grpc_shutdown();
    log_event(LOG_INFO, "event=stopped status=%d", rc);
    return rc;
}
