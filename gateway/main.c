/* der-gateway: the site controller as a daemon. Loads a site configuration (or, with
 * --config-dir, one per file of a directory), then runs one control cycle every poll period
 * against the real devices (or `der-sim serve`) until SIGINT or SIGTERM (SIGHUP reloads the
 * configuration file's policy and the uplink's TLS files). With a headend (--headend or the
 * configuration's "uplink.target") each site's uplink streams telemetry and brings setpoints,
 * which dispatch.c applies between cycles. All control logic and the loop over the sites are
 * in libgateway (gateway/uplink/sitehost.h); this file parses options and owns the signals,
 * the log format and the Modbus transport. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/duration.h"
#include "gateway/bus/tcp_pool.h"
#include "gateway/control/siteconf.h"
#include "gateway/uplink/gwmetrics.h"
#include "gateway/uplink/sitehost.h"
#include "gateway/uplink/uplink.h"
#include "version.h"

static volatile sig_atomic_t g_stop, g_hup;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        g_hup = 1;
    else
        g_stop = 1;
}

/* The level of a library's event (docs/operations.md, "Logs"): info unless listed here,
 * by event name and, when set, a field the line must hold (the first row that matches). The
 * controller, the bus, the dispatcher and the uplink name events; what counts as a failure is
 * decided here, once. */
static const struct {
    const char *event, *field;
    enum log_level level;
} event_levels[] = {
    {"offline", NULL, LOG_WARN},      /* controller: a device stopped answering */
    {"write_failed", NULL, LOG_WARN}, /* controller: a setpoint write failed */
    {"estop", NULL, LOG_WARN},        /* an emergency stop engaged or released */
    {"estop_refused", NULL, LOG_WARN},
    {"connect_failed", NULL, LOG_WARN},         /* bus, uplink */
    {"disconnect", " reason=closed", LOG_INFO}, /* bus: closed at the gateway's stop */
    {"disconnect", NULL, LOG_WARN},             /* bus: a Modbus connection lost */
    {"bad_reply", NULL, LOG_WARN},              /* bus */
    {"breaker_open", NULL, LOG_WARN},           /* bus */
    {"setpoint_rejected", NULL, LOG_WARN},      /* dispatcher */
    {"setpoint_failed", NULL, LOG_WARN},
    {"setpoint_expired", NULL, LOG_WARN},
    {"setpoint_ignored", NULL, LOG_WARN}, /* uplink */
    {"command_rejected", NULL, LOG_WARN}, /* commands (gateway/uplink/command.c) */
    {"command_failed", NULL, LOG_WARN},
    {"command_expired", NULL, LOG_WARN},
    {"command_ignored", NULL, LOG_WARN},
    {"disconnected", NULL, LOG_WARN},
    {"connect_waiting", NULL, LOG_WARN},
    {"asset_rejected", NULL, LOG_WARN},
    {"bad_message", NULL, LOG_WARN},
    {"ack_timeout", NULL, LOG_WARN},
    {"spool_corrupt", NULL, LOG_WARN},
    {"tls_cert", " status=warning", LOG_WARN},
    {"tls_reload", " status=failed", LOG_ERROR},
    {"telemetry_dropped", NULL, LOG_ERROR}, /* samples lost */
    {"spool_error", NULL, LOG_ERROR},
    {"error", NULL, LOG_ERROR},
};

static enum log_level level_of(const char *name, size_t len, const char *line)
{
    for (size_t i = 0; i < sizeof event_levels / sizeof event_levels[0]; i++)
        if (strlen(event_levels[i].event) == len && !strncmp(event_levels[i].event, name, len) &&
            (!event_levels[i].field || strstr(line, event_levels[i].field)))
            return event_levels[i].level;
    return LOG_INFO;
}

/* The libraries' log callback: their lines ("site=S asset=A event=NAME k=v ...") in the one
 * format of every binary (common/log.h), the event and its fields first, then the fields that
 * came before it (who: site, asset, bus endpoint). */
static void log_line(void *ctx, const char *line)
{
    (void)ctx;
    const char *ev = !strncmp(line, "event=", 6) ? line : strstr(line, " event=");
    if (!ev) {
        log_event(LOG_INFO, "%s", line);
        return;
    }
    if (ev != line)
        ev++;
    const char *name = ev + 6;
    enum log_level level = level_of(name, strcspn(name, " "), ev);
    if (ev == line)
        log_event(level, "%s", ev);
    else
        log_event(level, "%s %.*s", ev, (int)(ev - line - 1), line);
}

static void usage(FILE *out)
{
    fputs("usage: der-gateway --config SITE.json [OPTIONS]\n"
          "       der-gateway --config-dir DIR [OPTIONS]\n"
          "\n"
          "The derloop site controller: polls the site's devices over Modbus TCP, runs the\n"
          "configured strategy, applies the safety interlocks and writes setpoints, once per\n"
          "poll period (docs/gateway-config.md). Stops cleanly on SIGINT or SIGTERM; SIGHUP\n"
          "reloads the file's strategy, params, constraints, safety and split, and the\n"
          "uplink's TLS certificate files.\n"
          "  -c, --config FILE      the site configuration\n"
          "  -C, --config-dir DIR   every *.json in DIR: one site each, one process, one uplink\n"
          "                         per site, cycles on a pool of threads (docs/operations.md)\n"
          "      --workers N        threads running the sites' cycles (default: min(sites, 8))\n"
          "      --speed X          controller time runs X times the wall clock: poll periods\n"
          "                         are divided by X (for `der-sim serve --speed X`; default 1)\n"
          "  -d, --duration D       stop after D (e.g. 30s, 2h); default: run until signalled\n"
          "  -v, --verbose          one line per cycle with the decision (CSV fields)\n"
          "      --headend HOST:PORT  connect to a headend (overrides uplink.target)\n"
          "      --legacy           single-asset agent towards the headend (uplink.legacy)\n"
          "      --metrics-listen HOST:PORT  serve Prometheus GET /metrics there (port 0: any\n"
          "                         free one, logged as event=metrics_listen); default: off\n"
          "      --check            validate the configuration and exit\n"
          "  -h, --help             this text\n"
          "      --version          the build's version and commit\n"
          "\n"
          "The configuration's \"uplink\" object (docs/gateway-config.md):\n"
          "  uplink.target          HOST:PORT of the headend's gRPC listener (\"\" = none)\n"
          "  uplink.spool_dir       directory of the telemetry spool (\"\" = memory only)\n"
          "  uplink.tls             {\"ca\", \"cert\", \"key\", \"server_name\"}: TLS to the "
          "headend\n",
          out);
    param_print_help(uplink_fields, uplink_n_fields, "uplink.", out);
}

/* The transport of a site: its devices' buses from one pool of Modbus TCP connections. */
struct transport {
    struct tcp_pool pool;
    char name[SITECONF_ID_MAX]; /* the pool's bus name: the site id */
};

static void *transport_open(const struct siteconf *cfg, void (*log)(void *, const char *),
                            void *log_ctx)
{
    struct transport *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    snprintf(t->name, sizeof t->name, "%s", cfg->site_id);
    struct bus_config bc;
    bus_config_default(&bc);
    bc.name = t->name;
    bc.log = log;
    bc.log_ctx = log_ctx;
    tcp_pool_init(&t->pool, &bc);
    return t;
}

static struct bus *transport_bus(void *ctx, const struct device_cfg *d, char *err, size_t errlen)
{
    struct transport *t = ctx;
    return tcp_pool_bus(&t->pool, d->host, d->port, (int)d->timeout_ms, err, errlen);
}

/* The metrics' view of a device (gateway/uplink/gwmetrics.h): its endpoint's counters and its
 * unit's breaker. tcp_pool_bus gives the bus the device already has. */
static int transport_modbus(void *ctx, const struct device_cfg *d, struct gwmetrics_modbus *out)
{
    char err[128];
    struct bus *b = transport_bus(ctx, d, err, sizeof err);
    if (!b)
        return -ENOENT;
    struct bus_stats st;
    bus_get_stats(b, &st);
    out->requests = st.requests;
    out->ok = st.ok;
    out->timeouts = st.timeouts;
    out->exceptions = st.exceptions;
    out->conn_errors = st.conn_errors;
    out->proto_errors = st.proto_errors;
    out->retries = st.retries;
    out->breaker_opens = st.breaker_opens;
    out->breaker_state = bus_breaker_state(b, d->unit_id);
    return 0;
}

static void transport_close(void *ctx)
{
    struct transport *t = ctx;
    tcp_pool_release(&t->pool);
    free(t);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"config-dir", required_argument, NULL, 'C'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"speed", required_argument, NULL, 1004},
                                         {"workers", required_argument, NULL, 1005},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"check", no_argument, NULL, 1000},
                                         {"headend", required_argument, NULL, 1002},
                                         {"legacy", no_argument, NULL, 1003},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 1001},
                                         {"metrics-listen", required_argument, NULL, 1006},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *config_dir = NULL, *metrics_listen = NULL;
    int64_t duration_ms = -1;
    int check_only = 0, c;
    char software[96], *end;
    snprintf(software, sizeof software, "der-gateway %s (commit %s)", DERLOOP_VERSION,
             DERLOOP_COMMIT);
    struct sitehost_opts ho = {
        .transport = {transport_open, transport_bus, transport_close, transport_modbus},
        .log = log_line,
        .software = software,
        .speed = 1.0,
    };
    while ((c = getopt_long(argc, argv, "c:C:d:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'C':
            config_dir = optarg;
            break;
        case 'd':
            if (duration_parse(optarg, &duration_ms) != 0) {
                char max[32];
                fprintf(stderr,
                        "der-gateway: --duration wants a duration such as 30s, at most %s, got "
                        "\"%s\"\n",
                        duration_format(DURATION_MAX_MS, max, sizeof max), optarg);
                return 2;
            }
            break;
        case 1004:
            ho.speed = strtod(optarg, &end);
            if (end == optarg || *end || !(ho.speed > 0) || ho.speed > 1e6) {
                fprintf(stderr, "der-gateway: --speed wants a number > 0, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 1005:
            ho.workers = (int)strtol(optarg, &end, 10);
            if (end == optarg || *end || ho.workers < 1 || ho.workers > 1024) {
                fprintf(stderr, "der-gateway: --workers wants 1..1024, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'v':
            ho.rows = stdout;
            break;
        case 1000:
            check_only = 1;
            break;
        case 1002:
            ho.headend = optarg;
            break;
        case 1003:
            ho.legacy = 1;
            break;
        case 1006:
            metrics_listen = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 1001:
            printf("der-gateway %s (commit %s)\n", DERLOOP_VERSION, DERLOOP_COMMIT);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!config == !config_dir || optind != argc) {
        if (config && config_dir)
            fprintf(stderr, "der-gateway: give --config or --config-dir, not both\n");
        usage(stderr);
        return 2;
    }
    char err[1024];
    if (metrics_listen && !check_only &&
        !(ho.metrics = gwmetrics_new(DERLOOP_VERSION, DERLOOP_COMMIT))) {
        fprintf(stderr, "der-gateway: out of memory\n");
        return 1;
    }
    struct sitehost *h = sitehost_new(&ho);
    if (!h) {
        gwmetrics_free(ho.metrics);
        fprintf(stderr, "der-gateway: out of memory\n");
        return 1;
    }
    int rc = config ? sitehost_add(h, config, err, sizeof err)
                    : sitehost_add_dir(h, config_dir, err, sizeof err);
    if (rc) {
        fprintf(stderr, "der-gateway: %s\n", err);
        gwmetrics_free(ho.metrics);
        sitehost_free(h);
        return 1;
    }
    if (check_only) {
        for (size_t i = 0; i < sitehost_count(h); i++)
            sitehost_describe(h, i, stdout);
        sitehost_free(h);
        return 0;
    }

    if (ho.metrics) { /* before the sites start: a taken port stops the gateway at once */
        int mport = 0;
        if (gwmetrics_listen(ho.metrics, metrics_listen, &mport, err, sizeof err) != 0) {
            fprintf(stderr, "der-gateway: %s\n", err);
            gwmetrics_free(ho.metrics);
            sitehost_free(h);
            return 1;
        }
        log_event(LOG_INFO, "event=metrics_listen addr=%.*s:%d",
                  (int)(strrchr(metrics_listen, ':') - metrics_listen), metrics_listen, mport);
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* SIGHUP reloads what can change under a running gateway: the configuration file's policy
     * (strategy, params, constraints, safety: gateway/control/confsync.h) and the uplink's TLS
     * files (a certificate rotation); it used to end the process (the default action). */
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    log_event(LOG_INFO, "event=host_start sites=%zu speed=%g build=%s", sitehost_count(h), ho.speed,
              DERLOOP_COMMIT);
    /* The uplinks and workers start after the signal handlers (their threads inherit them). */
    rc = sitehost_run(h, duration_ms, &g_stop, &g_hup, err, sizeof err);
    if (rc)
        fprintf(stderr, "der-gateway: %s\n", err);
    gwmetrics_free(ho.metrics); /* the sites' cycles have stopped; it reads their configs */
    sitehost_free(h);
    return rc ? 1 : 0;
}
