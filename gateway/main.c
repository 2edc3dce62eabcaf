/* der-gateway: the site controller as a daemon. Loads a site configuration, then runs one
 * control cycle every poll period against the real devices (or `der-sim serve`) until SIGINT
 * or SIGTERM (SIGHUP reloads the configuration file's policy and the uplink's TLS files). With a
 * headend (--headend or the configuration's "uplink.target") the uplink thread streams telemetry
 * and brings setpoints, which dispatch.c applies between cycles. All control logic is in
 * libgateway; this file owns the clock, signals and logs. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "gateway/bus/tcp_pool.h"
#include "gateway/control/confsync.h"
#include "gateway/control/controller.h"
#include "gateway/uplink/command.h"
#include "gateway/uplink/dispatch.h"
#include "gateway/uplink/remote.h"
#include "common/duration.h"
#include "gateway/control/siteconf.h"
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

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The level of a library's event (docs/operations.md, "Logs"): info unless listed here,
 * by event name and, when set, a field the line must hold (the first row that matches). The
 * controller, the bus, the dispatcher and the uplink name events; what counts as a failure is
 * decided here, once. */
static const struct {
    const char *event, *field;
    enum log_level level;
} event_levels[] = {
    {"offline", NULL, LOG_WARN},                /* controller: a device stopped answering */
    {"write_failed", NULL, LOG_WARN},           /* controller: a setpoint write failed */
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
          "\n"
          "The derloop site controller: polls the site's devices over Modbus TCP, runs the\n"
          "configured strategy, applies the safety interlocks and writes setpoints, once per\n"
          "poll period (docs/gateway-config.md). Stops cleanly on SIGINT or SIGTERM; SIGHUP\n"
          "reloads the file's strategy, params, constraints, safety and split, and the\n"
          "uplink's TLS certificate files.\n"
          "  -c, --config FILE      the site configuration (required)\n"
          "  -d, --duration D       stop after D (e.g. 30s, 2h); default: run until signalled\n"
          "  -v, --verbose          one line per cycle with the decision (CSV fields)\n"
          "      --headend HOST:PORT  connect to a headend (overrides uplink.target)\n"
          "      --legacy           single-asset agent towards the headend (uplink.legacy)\n"
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

/* The transport: each device's bus from the site's pool of Modbus TCP connections. */
static struct bus *open_tcp(void *ctx, const struct device_cfg *d, char *err, size_t errlen)
{
    return tcp_pool_bus(ctx, d->host, d->port, (int)d->timeout_ms, err, errlen);
}

/* The dispatcher's acks go to the headend through the uplink. */
static void ack_to_uplink(void *ctx, const char *id, int state, const char *detail,
                          const struct agentmsg_alloc *a, size_t n)
{
    uplink_ack(ctx, id, state, detail, a, n);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"check", no_argument, NULL, 1000},
                                         {"headend", required_argument, NULL, 1002},
                                         {"legacy", no_argument, NULL, 1003},
                                         {"help", no_argument, NULL, 'h'},
                                         {"version", no_argument, NULL, 1001},
                                         {NULL, 0, NULL, 0}};
    const char *config = NULL, *headend = NULL;
    int64_t duration_ms = -1;
    int verbose = 0, check_only = 0, legacy = 0, c;
    while ((c = getopt_long(argc, argv, "c:d:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
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
        case 'v':
            verbose = 1;
            break;
        case 1000:
            check_only = 1;
            break;
        case 1002:
            headend = optarg;
            break;
        case 1003:
            legacy = 1;
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
    if (!config || optind != argc) {
        usage(stderr);
        return 2;
    }
    char err[1024];
    struct siteconf *cfg;
    if (siteconf_load_file(config, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "der-gateway: %s\n", err);
        return 1;
    }
    struct bus_config bc;
    bus_config_default(&bc);
    bc.name = cfg->site_id;
    bc.log = log_line;
    struct tcp_pool pool;
    tcp_pool_init(&pool, &bc);
    struct controller_opts co = {.open_bus = open_tcp, .bus_ctx = &pool, .log = log_line};
    struct controller *ctl = controller_new(cfg, &co, err, sizeof err);
    if (!ctl) {
        fprintf(stderr, "der-gateway: %s\n", err);
        tcp_pool_release(&pool);
        siteconf_free(cfg);
        return 1;
    }
    struct uplink_cfg ucfg;
    if (uplink_cfg_load(cfg->uplink, "uplink", &ucfg, err, sizeof err) != 0) {
        fprintf(stderr, "der-gateway: %s: %s\n", config, err);
        controller_free(ctl);
        tcp_pool_release(&pool);
        siteconf_free(cfg);
        return 1;
    }
    if (headend)
        snprintf(ucfg.target, sizeof ucfg.target, "%s", headend);
    if (legacy)
        ucfg.legacy = 1;
    if (check_only) {
        printf("ok %s: site=%s devices=%zu strategy=%s uplink=%s\n", config, cfg->site_id,
               cfg->n_devices, controller_strategy(ctl), ucfg.target[0] ? ucfg.target : "-");
        controller_free(ctl);
        tcp_pool_release(&pool);
        siteconf_free(cfg);
        return 0;
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

    /* confsync hook: the pushed configuration persisted next to the spool wins over the
     * file's policy from the first cycle (gateway/control/confsync.h) */
    struct confsync *cs = confsync_new(ctl, config, ucfg.spool_dir, log_line, NULL);
    struct remote *rem = ucfg.target[0] ? remote_new(log_line, NULL) : NULL;
    /* command hook: per-asset commands, applied between two cycles (gateway/uplink/command.h) */
    struct command *cmds = ucfg.target[0] ? command_new(ctl, cfg->site_id, log_line, NULL) : NULL;
    if (!cs || (ucfg.target[0] && (!rem || !cmds))) {
        fprintf(stderr, "der-gateway: %s: out of memory\n", config);
        return 1;
    }
    remote_set_version(rem, confsync_start(cs));

    log_event(LOG_INFO,
              "event=start site=%s gateway=%s devices=%zu strategy=%s poll_ms=%lld build=%s",
              cfg->site_id, cfg->gateway_id, cfg->n_devices, controller_strategy(ctl),
              (long long)cfg->poll_period_ms, DERLOOP_COMMIT);

    /* The uplink starts after the signal handlers (its thread inherits their mask). */
    struct uplink *up = NULL;
    struct dispatch *disp = NULL;
    if (ucfg.target[0]) {
        static struct uplink_identity id;
        char software[96];
        snprintf(software, sizeof software, "der-gateway %s (commit %s)", DERLOOP_VERSION,
                 DERLOOP_COMMIT);
        uplink_identity_from_site(cfg, software, &id);
        struct uplink_opts uo = {
            .log = log_line, .seed = (uint64_t)wall_ms(), .remote = rem, .commands = cmds};
        up = uplink_new(&ucfg, &id, &uo, err, sizeof err);
        struct dispatch_opts dopt = {.site_id = cfg->site_id,
                                     .primary_asset_id = id.primary_asset_id,
                                     .ack = ack_to_uplink,
                                     .ack_ctx = up,
                                     .log = log_line};
        disp = up ? dispatch_new(ctl, &dopt) : NULL;
        if (!disp) {
            fprintf(stderr, "der-gateway: %s: %s\n", config, up ? "out of memory" : err);
            uplink_free(up);
            remote_free(rem);
            command_free(cmds);
            confsync_free(cs);
            controller_free(ctl);
            tcp_pool_release(&pool);
            siteconf_free(cfg);
            return 1;
        }
    }

    int64_t t0 = mono_ms(), next = t0;
    if (!cfg->ctx.has_start) { /* the calendar of now_ms (tariffs, departures): the wall clock */
        cfg->ctx.start_unix_ms = wall_ms();
        cfg->ctx.has_start = 1;
    }
    uint64_t cycles = 0;
    static struct decision dm;
    char row[4096];
    while (!g_stop) {
        if (g_hup) {
            g_hup = 0;
            log_event(LOG_INFO, "event=sighup reason=\"%s\"",
                      up ? "reloading the configuration file and the uplink's TLS files"
                         : "reloading the configuration file");
            confsync_reload(cs, err, sizeof err); /* confsync hook: logs what it did */
            if (up)
                uplink_reload(up);
        }
        int64_t now = mono_ms();
        if (duration_ms >= 0 && now - t0 >= duration_ms)
            break;
        if (now < next) {
            struct timespec ts = {(next - now) / 1000, ((next - now) % 1000) * 1000000};
            nanosleep(&ts, NULL); /* EINTR on a signal: the loop checks g_stop */
            continue;
        }
        uint64_t cver; /* confsync hook: a pushed configuration, between two cycles */
        char *cjson;
        while (remote_take_push(rem, &cver, &cjson)) {
            int crc = confsync_push(cs, cver, cjson, err, sizeof err);
            remote_report(rem, cver, crc == 0, crc ? err : "");
            free(cjson);
        }
        struct agentmsg_setpoint sp;
        while (up && uplink_poll_setpoint(up, &sp))
            dispatch_setpoint(disp, &sp, now - t0, wall_ms());
        command_apply(cmds, now - t0, wall_ms()); /* command hook: between two cycles */
        controller_cycle(ctl, now - t0, &dm);
        cycles++;
        if (up) {
            dispatch_after_cycle(disp, &dm);
            command_after_cycle(cmds, &dm);
            uplink_publish(up, controller_image(ctl), &dm, now - t0);
        }
        if (verbose && decision_csv_row(&dm, row, sizeof row) > 0)
            fputs(row, stdout), fflush(stdout);
        next += cfg->poll_period_ms;
        if (next < now) /* a slow cycle: skip the missed periods instead of bursting */
            next = now + cfg->poll_period_ms;
    }
    log_event(LOG_INFO, "event=stop site=%s cycles=%llu writes=%llu reason=%s", cfg->site_id,
              (unsigned long long)cycles, (unsigned long long)controller_writes(ctl),
              g_stop ? "signal" : "duration");
    dispatch_free(disp);
    uplink_free(up);
    remote_free(rem); /* after the uplink, whose thread used it */
    command_free(cmds);
    confsync_free(cs);
    controller_free(ctl);
    tcp_pool_release(&pool);
    siteconf_free(cfg);
    return 0;
}
