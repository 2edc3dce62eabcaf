/* headend_loop: see headend_loop.h.
 *
 * Determinism: what reaches the digested files must not depend on delivery latency. The
 * dispatcher runs in lockstep mode (gateway/uplink/dispatch.h): the remaining lifetime of a
 * setpoint is rounded to whole seconds (the REST API's ttl_s is whole seconds, and a delivery takes
 * milliseconds) and the power to 1 mW (the REST API carries megawatts); the setpoint is applied
 * at the same cycle whichever path it took, and the one line written to events.log names
 * neither the setpoint id nor any port. Everything else goes to the undigested log. */
#define _GNU_SOURCE
#include "sim/run/headend_loop.h"
#include "common/log.h"
#include "common/rtclock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "gateway/control/confsync.h"
#include "gateway/control/estop.h"
#include "gateway/uplink/command.h"
#include "gateway/uplink/dispatch.h"
#include "gateway/uplink/uplink.h"
#include "sim/run/httpc.h"
#include "sim/run/inventory.h"

#include "sim/run/relay.h"

extern char **environ;

#define MAX_LATE 64 /* dispatches held up by one headend outage or freeze */

/* A dispatch whose event came while the headend was gone or stopped. */
struct late {
    size_t site;
    const struct event *e;
    int64_t ev_now_ms; /* the controller time of its event: its lifetime counts from there */
    int64_t wall_post; /* the wall clock when it was posted; 0 = not yet (a freeze) */
    char id[AGENTMSG_ID_LEN];
    int done;
};

struct hsite {
    char id[SCN_ID_MAX], base_id[SCN_ID_MAX];
    const struct site_cfg *cfg; /* the scenario's site (asset ids outside the simulator) */
    struct controller *ctl;
    struct confsync *cs; /* the gateway's events: configuration pushes */
    struct estop *es;    /* and the emergency stop */
    struct command *cmd; /* and the per-asset commands */
    /* "command" events given whose outcome is not known yet (a setpoint command's comes
     * after the next cycle): their seq, reported once final */
    int pending[8];
    size_t n_pending;
    uint64_t config_version; /* of the last configuration pushed */
    struct dispatch *disp;
    struct uplink *up;
    struct uplink_identity ident;
};

struct headend_loop {
    const struct scenario *sc;
    const char *tls_dir; /* $DERLOOP_HEADEND_TLS: mutual TLS between headend and gateways */
    FILE *ev, *log;
    size_t next; /* the next dispatch event */
    pid_t child;
    int grpc_port, http_port;
    char tmpdir[64];
    size_t n;
    struct hsite *s;
    /* headend_outage and headend_freeze (one span at a time) */
    struct relay *relay; /* the uplinks' path to the headend when the scenario cuts it */
    int span;            /* 0, or the EVENT_HEADEND_* under way */
    int64_t span_end_ms; /* scenario time */
    uint64_t dropped0;   /* the uplinks' telemetry_dropped when the outage began */
    uint64_t dropped;    /* over the outages that ended (KPI telemetry_dropped) */
    struct late late[MAX_LATE];
    size_t n_late;
};

/* The headend stamps expiries in Unix time: converting them needs the wall clock (rtclock.c,
 * the one place that reads it); the result is rounded so it never reaches the outputs. */
static int64_t wall_ms(void)
{
    return rtclock_wall_ms();
}

static void to_log(void *ctx, const char *line)
{
    struct headend_loop *h = ctx;
    if (h->log)
        fprintf(h->log, "%s\n", line);
}

static void ack_to_uplink(void *ctx, const struct agentmsg_ack *a)
{
    uplink_ack(ctx, a);
}

/* ---- the child ------------------------------------------------------------------------------ */

static void headend_bin(char *buf, size_t len)
{
    const char *env = getenv("DERLOOP_HEADEND_BIN");
    if (env && *env) {
        snprintf(buf, len, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        snprintf(buf, len, "der-headend");
        return;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    snprintf(buf, len, "%s/der-headend", self);
}

/* Starts the headend and reads `grpc=HOST:PORT http=HOST:PORT ready` from its stdout. */
static int start_child(struct headend_loop *h, char *err, size_t errlen)
{
    char bin[PATH_MAX + 16], inv[128], logp[128];
    headend_bin(bin, sizeof bin);
    snprintf(inv, sizeof inv, "%s/inventory.json", h->tmpdir);
    snprintf(logp, sizeof logp, "%s/headend.log", h->tmpdir);
    int rc = sim_inventory_write(h->sc, inv, err, errlen);
    if (rc)
        return rc;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "headend: pipe: %s", strerror(errno));
        return -errno;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
    snprintf(cert, sizeof cert, "%s/headend.pem", h->tls_dir ? h->tls_dir : "");
    snprintf(key, sizeof key, "%s/headend.key", h->tls_dir ? h->tls_dir : "");
    snprintf(ca, sizeof ca, "%s/ca.pem", h->tls_dir ? h->tls_dir : "");
    char *argv[] = {bin, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--db",
                    ":memory:", "--inventory", inv,
                    /* the uplink pings every second in the loop (see headend_loop_add_site) */
                    "--min-ping-interval", "1s", NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    if (h->tls_dir) {
        char **tail = &argv[11];
        *tail++ = "--tls-cert";
        *tail++ = cert;
        *tail++ = "--tls-key";
        *tail++ = key;
        *tail++ = "--tls-client-ca";
        *tail = ca;
    }
    rc = posix_spawn(&h->child, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc) {
        close(pfd[0]);
        h->child = 0;
        snprintf(err, errlen, "headend: cannot start %s: %s", bin, strerror(rc));
        return -rc;
    }
    char buf[512];
    size_t got = 0;
    int64_t end = wall_ms() + 10000;
    rc = -ETIMEDOUT;
    while (wall_ms() < end && got < sizeof buf - 1) {
        struct pollfd p = {pfd[0], POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(pfd[0], buf + got, sizeof buf - 1 - got);
        if (n <= 0) {
            rc = -EPIPE;
            break;
        }
        got += (size_t)n;
        buf[got] = '\0';
        char *ready = strstr(buf, " ready");
        if (!ready)
            continue;
        char *g = strstr(buf, "grpc="), *t = strstr(buf, "http=");
        char *gc = g ? strchr(g, ' ') : NULL;
        if (g && t && gc) {
            *gc = '\0';
            h->grpc_port = atoi(strrchr(g, ':') + 1);
            char *tc = strchr(t, ' ');
            if (tc)
                *tc = '\0';
            h->http_port = atoi(strrchr(t, ':') + 1);
            rc = h->grpc_port > 0 && h->http_port > 0 ? 0 : -EPROTO;
        }
        break;
    }
    close(pfd[0]); /* the headend's later stdout lines go nowhere: it must not block on them */
    if (rc) {
        snprintf(err, errlen, "headend: %s did not print its ready line (%s); its log: %s", bin,
                 strerror(-rc), logp);
        return rc;
    }
    if (h->log)
        fprintf(h->log, "headend event=start grpc=127.0.0.1:%d http=127.0.0.1:%d pid=%d tls=%s\n",
                h->grpc_port, h->http_port, (int)h->child, h->tls_dir ? h->tls_dir : "off");
    return 0;
}

static void stop_child(struct headend_loop *h)
{
    if (h->child <= 0)
        return;
    kill(h->child, SIGTERM);
    for (int i = 0; i < 300; i++) { /* 3 s of grace */
        if (waitpid(h->child, NULL, WNOHANG) == h->child) {
            h->child = 0;
            return;
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    kill(h->child, SIGKILL);
    waitpid(h->child, NULL, 0);
    h->child = 0;
}

/* The uplinks reach the headend through a relay only when the scenario cuts it. */
static int start_relay(struct headend_loop *h, char *err, size_t errlen)
{
    for (size_t i = 0; i < h->sc->n_dispatches; i++)
        if (h->sc->dispatches[i].type == EVENT_HEADEND_OUTAGE) {
            h->relay = relay_new(h->grpc_port, err, errlen);
            return h->relay ? 0 : -EIO;
        }
    return 0;
}

/* ---- the gateway's events: configuration pushes and the emergency stop ------------------------
 */

/* Every "config" event's configuration through the gateway's own checks (confsync_check, as
 * the headend's PUT does) before anything runs: a bad one fails the run at once, naming the
 * event and the field. */
static int check_gateway_events(const struct scenario *sc, char *err, size_t errlen)
{
    for (size_t k = 0; k < sc->n_dispatches; k++) {
        const struct event *e = &sc->dispatches[k];
        if (e->type != EVENT_CONFIG)
            continue;
        char *json = cJSON_PrintUnformatted(e->config), sub[768], field[128];
        int rc = json ? confsync_check(json, sub, sizeof sub, field, sizeof field) : -ENOMEM;
        cJSON_free(json);
        if (rc) {
            /* "config: FIELD: message" from confsync_check: the event's path instead */
            snprintf(err, errlen, "%s: events[%d].gateway.%s", sc->name, e->seq,
                     !strncmp(sub, "config: ", 8) ? sub + 8 : "out of memory");
            return rc;
        }
    }
    return 0;
}

/* The site's confsync (persisting nowhere) and emergency stop, logging to the undigested log. */
static int gateway_events_open(struct headend_loop *h, struct hsite *s, const struct siteconf *conf,
                               char *err, size_t errlen)
{
    s->cs = confsync_new_json(s->ctl, conf->root, conf->path, to_log, h);
    s->es = estop_new(s->ctl, "", to_log, h);
    s->cmd = command_new(s->ctl, s->id, to_log, h);
    if (!s->cs || !s->es || !s->cmd) {
        snprintf(err, errlen, "headend loop: out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* A "config", "estop" or "estop_release" event for site s, applied straight to its gateway
 * (with or without a headend in the loop), between two cycles as a push would be; one line
 * to events.log (digested: it names the version and the outcome, nothing that varies). */
/* A command's outcome in events.log once final (digested: the state, nothing that varies);
 * 1 when it was. */
static int command_result(struct headend_loop *h, struct hsite *s, int seq, int64_t now_ms)
{
    char id[32];
    snprintf(id, sizeof id, "scenario-%d", seq);
    int st = command_state(s->cmd, id);
    if (st == AGENTMSG_ACK_RECEIVED)
        return 0;
    fprintf(h->ev, "t=%.3f site=%s event=command_result seq=%d state=%s\n", now_ms / 1000.0, s->id,
            seq, st < 0 ? "UNKNOWN" : agentmsg_ack_name(st));
    return 1;
}

/* A "command" event: given to the site's gateway as the headend's Command would be (the
 * driver's checks, register writes, setpoints at manual priority through the command's own
 * dispatcher), on a clock that reads 0 now (its ttl counts from the event). */
static void command_event(struct headend_loop *h, struct hsite *s, const struct event *e,
                          int64_t now_ms)
{
    struct agentmsg_command m;
    memset(&m, 0, sizeof m);
    char uid[SCN_ID_MAX];
    snprintf(m.command_id, sizeof m.command_id, "scenario-%d", e->seq);
    snprintf(m.asset_id, sizeof m.asset_id, "%s", scenario_asset_uid(s->cfg, e->asset_id, uid));
    snprintf(m.command, sizeof m.command, "%s", e->command);
    m.value = e->value;
    m.expires_ms = e->ttl_ms;
    fprintf(h->ev,
            "t=%.3f site=%s event=command seq=%d asset=%s command=%s value=%.3f ttl_s=%lld\n",
            now_ms / 1000.0, s->id, e->seq, m.asset_id, m.command, isnan(e->value) ? 0 : e->value,
            (long long)(e->ttl_ms / 1000));
    command_on_headend(s->cmd, &m);
    command_apply(s->cmd, now_ms, 0);
    if (!command_result(h, s, e->seq, now_ms) && s->n_pending < 8)
        s->pending[s->n_pending++] = e->seq;
}

static int gateway_event(struct headend_loop *h, struct hsite *s, const struct event *e,
                         int64_t now_ms, char *err, size_t errlen)
{
    if (e->type == EVENT_COMMAND) {
        command_event(h, s, e, now_ms);
        return 0;
    }
    if (e->type == EVENT_ESTOP || e->type == EVENT_ESTOP_RELEASE) {
        int on = e->type == EVENT_ESTOP;
        char id[32];
        snprintf(id, sizeof id, "scenario-%d", e->seq);
        char rb[LOG_VALUE_MAX];
        estop_set(s->es, on, id, on ? e->reason : "", "scenario");
        fprintf(h->ev, "t=%.3f site=%s event=estop state=%s reason=%s\n", now_ms / 1000.0, s->id,
                on ? "engaged" : "released", log_escape(rb, sizeof rb, on ? e->reason : ""));
        return 0;
    }
    char *json = cJSON_PrintUnformatted(e->config), sub[768];
    if (!json) {
        snprintf(err, errlen, "headend loop: out of memory");
        return -ENOMEM;
    }
    uint64_t version = s->config_version + 1;
    int rc = confsync_push(s->cs, version, json, sub, sizeof sub);
    cJSON_free(json);
    if (rc) { /* checked before the run: only a site-specific reason gets here */
        snprintf(err, errlen, "%s: events[%d]: site %s refused the configuration: %s", h->sc->name,
                 e->seq, s->id, sub);
        return rc;
    }
    s->config_version = version;
    fprintf(h->ev, "t=%.3f site=%s event=config version=%llu strategy=%s result=applied\n",
            now_ms / 1000.0, s->id, (unsigned long long)version, controller_strategy(s->ctl));
    return 0;
}

/* ---- the loop ------------------------------------------------------------------------------- */

int headend_loop_new(const struct scenario *sc, FILE *ev, FILE *log, struct headend_loop **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    int grc = check_gateway_events(sc, err, errlen);
    if (grc)
        return grc;
    struct headend_loop *h = calloc(1, sizeof *h);
    if (!h || !(h->s = calloc(sc->n_sites ? sc->n_sites : 1, sizeof *h->s))) {
        free(h);
        snprintf(err, errlen, "headend loop: out of memory");
        return -ENOMEM;
    }
    h->sc = sc;
    h->ev = ev;
    h->log = log;
    /* Not a scenario key: the scenario's hash is part of the digest, and TLS must not change
     * what the run computes (tests/integration/test_tls.py compares the digests). */
    const char *tls = getenv("DERLOOP_HEADEND_TLS");
    h->tls_dir = tls && *tls ? tls : NULL;
    if (sc->headend) {
        snprintf(h->tmpdir, sizeof h->tmpdir, "/tmp/derloop-headend-XXXXXX");
        if (!mkdtemp(h->tmpdir)) {
            snprintf(err, errlen, "headend: mkdtemp: %s", strerror(errno));
            h->tmpdir[0] = '\0';
            headend_loop_free(h);
            return -EIO;
        }
        int rc = start_child(h, err, errlen);
        if (!rc)
            rc = start_relay(h, err, errlen);
        if (rc) {
            headend_loop_free(h);
            return rc;
        }
    }
    *out = h;
    return 0;
}

int headend_loop_add_site(struct headend_loop *h, const char *site_id, const char *base_id,
                          const struct siteconf *conf, struct controller *ctl, char *err,
                          size_t errlen)
{
    if (h->n >= h->sc->n_sites) {
        snprintf(err, errlen, "headend loop: more sites than the scenario has");
        return -EINVAL;
    }
    struct hsite *s = &h->s[h->n];
    snprintf(s->id, sizeof s->id, "%s", site_id);
    snprintf(s->base_id, sizeof s->base_id, "%s", base_id);
    s->cfg = &h->sc->sites[h->n]; /* the runner adds the sites in scenario order */
    s->ctl = ctl;
    uplink_identity_from_site(conf, "der-sim run", &s->ident);
    if (h->child > 0) {
        struct uplink_cfg uc;
        /* The scenario's gateway.uplink (checked by sitecfg_check) sizes what the gateway
         * keeps while the headend is gone (queue_len, telemetry_period: the spool incident's
         * fix); where to connect, the pace of reconnects and TLS are the loop's. */
        if (uplink_cfg_load(conf->uplink, "uplink", &uc, err, errlen))
            return -EINVAL;
        snprintf(uc.target, sizeof uc.target, "127.0.0.1:%d",
                 h->relay ? relay_port(h->relay) : h->grpc_port);
        uc.spool_dir[0] = '\0'; /* no disk: nothing of a run outlives it */
        memset(&uc.tls, 0, sizeof uc.tls);
        if (!conf->uplink || !cJSON_GetObjectItemCaseSensitive(conf->uplink, "telemetry_period"))
            uc.telemetry_period_ms = 60000; /* controller time: a day is 1440 samples per asset */
        uc.keepalive_time_ms = 1000;
        uc.backoff_initial_ms = 50;
        uc.backoff_max_ms = 1000;
        if (h->tls_dir) { /* each gateway's certificate names it: DIR/<gateway_id>.pem */
            uc.tls.on = 1;
            snprintf(uc.tls.ca, sizeof uc.tls.ca, "%s/ca.pem", h->tls_dir);
            snprintf(uc.tls.cert, sizeof uc.tls.cert, "%s/%s.pem", h->tls_dir, s->ident.gateway_id);
            snprintf(uc.tls.key, sizeof uc.tls.key, "%s/%s.key", h->tls_dir, s->ident.gateway_id);
        }
        struct uplink_opts uo = {.log = to_log, .log_ctx = h, .seed = h->sc->seed + h->n + 1};
        s->up = uplink_new(&uc, &s->ident, &uo, err, errlen);
        if (!s->up)
            return -EINVAL;
        if (uplink_wait_registered(s->up, HEADEND_LOOP_WAIT_MS)) {
            snprintf(err, errlen, "headend: gateway %s not registered within %d ms",
                     s->ident.gateway_id, HEADEND_LOOP_WAIT_MS);
            uplink_free(s->up);
            s->up = NULL;
            return -ETIMEDOUT;
        }
    }
    struct dispatch_opts d = {.site_id = site_id,
                              .primary_asset_id = s->ident.primary_asset_id,
                              .lockstep = 1,
                              .ack = s->up ? ack_to_uplink : NULL,
                              .ack_ctx = s->up,
                              .log = to_log,
                              .log_ctx = h};
    s->disp = dispatch_new(ctl, &d);
    if (!s->disp) {
        snprintf(err, errlen, "headend loop: out of memory");
        uplink_free(s->up);
        s->up = NULL;
        return -ENOMEM;
    }
    h->n++;
    return gateway_events_open(h, s, conf, err, errlen);
}

/* POST /dispatch for e; the setpoint id the headend gave it into want. */
static int post_dispatch(struct headend_loop *h, struct hsite *s, const struct event *e,
                         char want[AGENTMSG_ID_LEN], char *err, size_t errlen)
{
    char body[512], *reply = NULL, uid[SCN_ID_MAX];
    snprintf(body, sizeof body, "{\"%s\": \"%s\", \"mw\": %.17g, \"ttl_s\": %lld}",
             e->asset_id[0] ? "asset_id" : "site_id",
             e->asset_id[0] ? scenario_asset_uid(s->cfg, e->asset_id, uid) : s->id,
             e->power_w / 1e6, (long long)(e->ttl_ms / 1000));
    int status = httpc_request(h->http_port, "POST", "/dispatch", body, &reply);
    cJSON *j = status >= 200 && status < 300 ? cJSON_Parse(reply) : NULL;
    const cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "setpoint_id") : NULL;
    if (!cJSON_IsString(id)) {
        snprintf(err, errlen, "headend: POST /dispatch %s: status %d: %.300s", body, status,
                 reply ? reply : "");
        free(reply);
        cJSON_Delete(j);
        return -EPROTO;
    }
    free(reply);
    snprintf(want, AGENTMSG_ID_LEN, "%s", id->valuestring);
    cJSON_Delete(j);
    return 0;
}

/* ---- headend outages and freezes ------------------------------------------------------------ */

static struct late *find_late(struct headend_loop *h, const struct hsite *s, const char *id)
{
    for (size_t i = 0; i < h->n_late; i++) {
        struct late *l = &h->late[i];
        if (&h->s[l->site] == s && !l->done && l->wall_post && !strcmp(l->id, id))
            return l;
    }
    return NULL;
}

/* The wall clock to hand the dispatcher with setpoint id: now, or for a late setpoint the
 * wall clock of its POST plus the simulated time since its event, so that its TTL runs in
 * simulated time through the outage (the wall clock barely moves meanwhile). */
static int64_t late_wall(struct headend_loop *h, const struct hsite *s, const char *id,
                         int64_t now_ms)
{
    const struct late *l = find_late(h, s, id);
    return l ? l->wall_post + (now_ms - l->ev_now_ms) : wall_ms();
}

/* A late setpoint handled: one digested line with its delay and what became of it. */
static void late_result(struct headend_loop *h, const struct hsite *s, const char *id,
                        int64_t now_ms, int rc)
{
    struct late *l = find_late(h, s, id);
    if (!l)
        return;
    l->done = 1;
    fprintf(h->ev, "t=%.3f site=%s event=dispatch_late delay_s=%.3f result=%s\n", now_ms / 1000.0,
            s->id, (now_ms - l->ev_now_ms) / 1000.0,
            rc == 0                      ? "applied"
            : rc == AGENTMSG_ACK_EXPIRED ? "expired"
                                         : "rejected");
}

/* A dispatch event while the headend is gone (posted now: the headend queues it for the
 * gateway) or stopped (posted when it resumes); delivered when the span ends. */
static int late_dispatch(struct headend_loop *h, struct hsite *s, const struct event *e,
                         int64_t now_ms, char *err, size_t errlen)
{
    if (h->n_late == MAX_LATE) {
        snprintf(err, errlen, "headend: more than %d dispatches during one headend %s", MAX_LATE,
                 h->span == EVENT_HEADEND_OUTAGE ? "outage" : "freeze");
        return -ENOSPC;
    }
    struct late *l = &h->late[h->n_late++];
    *l = (struct late){.site = (size_t)(s - h->s), .e = e, .ev_now_ms = now_ms};
    if (h->span == EVENT_HEADEND_OUTAGE) {
        int rc = post_dispatch(h, s, e, l->id, err, errlen);
        if (rc)
            return rc;
        l->wall_post = wall_ms();
    }
    return 0;
}

static uint64_t telemetry_dropped(const struct headend_loop *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i < h->n; i++) {
        struct uplink_stats st;
        uplink_get_stats(h->s[i].up, &st);
        n += st.telemetry_dropped;
    }
    return n;
}

/* Waits (bounded) until every uplink is in the state `want` says: 'd' drained (nothing queued
 * or unacknowledged), 'x' disconnected, 'r' registered. The runner only goes on once the
 * gateways see what the scenario did to the headend, so the outputs never depend on how fast
 * they notice. */
static int wait_uplinks(struct headend_loop *h, char want, char *err, size_t errlen)
{
    int64_t end = wall_ms() + HEADEND_LOOP_WAIT_MS;
    for (size_t i = 0; i < h->n; i++) {
        for (;;) {
            struct uplink_stats st;
            uplink_get_stats(h->s[i].up, &st);
            int ok = want == 'd'   ? st.queue_depth == 0 && st.window == 0
                     : want == 'x' ? !st.connected
                                   : st.registered;
            if (ok)
                break;
            if (wall_ms() >= end) {
                snprintf(err, errlen, "headend: gateway %s not %s within %d ms",
                         h->s[i].ident.gateway_id,
                         want == 'd'   ? "done sending"
                         : want == 'x' ? "disconnected"
                                       : "registered again",
                         HEADEND_LOOP_WAIT_MS);
                return -ETIMEDOUT;
            }
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

static int span_begin(struct headend_loop *h, const struct event *e, int64_t now_ms, char *err,
                      size_t errlen)
{
    int rc;
    if (e->type == EVENT_HEADEND_OUTAGE) {
        if ((rc = wait_uplinks(h, 'd', err, errlen)))
            return rc;
        h->dropped0 = telemetry_dropped(h);
        if ((rc = relay_cut(h->relay))) {
            snprintf(err, errlen, "headend: cannot cut the uplinks' relay: %s", strerror(-rc));
            return rc;
        }
        if ((rc = wait_uplinks(h, 'x', err, errlen)))
            return rc;
    } else {
        int st;
        if (kill(h->child, SIGSTOP) < 0 || waitpid(h->child, &st, WUNTRACED) != h->child ||
            !WIFSTOPPED(st)) {
            snprintf(err, errlen, "headend: cannot stop pid %d: %s", (int)h->child,
                     strerror(errno));
            return -ECHILD;
        }
    }
    h->span = e->type;
    h->span_end_ms = e->at_ms + e->duration_ms;
    fprintf(h->ev, "t=%.3f event=%s duration_s=%.3f\n", now_ms / 1000.0,
            e->type == EVENT_HEADEND_OUTAGE ? "headend_outage" : "headend_freeze",
            e->duration_ms / 1000.0);
    if (h->log)
        fprintf(h->log, "headend event=%s_begin\n",
                e->type == EVENT_HEADEND_OUTAGE ? "outage" : "freeze");
    return 0;
}

/* Feeds what site s's uplink receives to the dispatcher until the setpoint `want` has been
 * handled. A setpoint held up by an outage or freeze (late_wall) is handed over with its
 * lifetime counted from its event. */
static int deliver_until(struct headend_loop *h, struct hsite *s, const char *want, int64_t now_ms,
                         char *err, size_t errlen)
{
    int64_t end = wall_ms() + HEADEND_LOOP_WAIT_MS;
    struct agentmsg_setpoint sp;
    while (wall_ms() < end) {
        if (!uplink_poll_setpoint(s->up, &sp)) {
            struct timespec ts = {0, 500000};
            nanosleep(&ts, NULL);
            continue;
        }
        int64_t wall = late_wall(h, s, sp.setpoint_id, now_ms);
        int rc = dispatch_setpoint(s->disp, &sp, now_ms, wall);
        late_result(h, s, sp.setpoint_id, now_ms, rc);
        if (!strcmp(sp.setpoint_id, want))
            return 0;
    }
    snprintf(err, errlen, "headend: setpoint %s did not reach gateway %s within %d ms", want,
             s->ident.gateway_id, HEADEND_LOOP_WAIT_MS);
    return -ETIMEDOUT;
}

/* Through the headend: POST, then wait until the gateway has handled it (or, while the headend
 * is gone or stopped, hold it for the end of the span). */
static int via_headend(struct headend_loop *h, struct hsite *s, const struct event *e,
                       int64_t now_ms, char *err, size_t errlen)
{
    if (h->span)
        return late_dispatch(h, s, e, now_ms, err, errlen);
    char want[AGENTMSG_ID_LEN];
    int rc = post_dispatch(h, s, e, want, err, errlen);
    return rc ? rc : deliver_until(h, s, want, now_ms, err, errlen);
}

/* The end of the outage or freeze: the headend back, the gateways registered again, then the
 * dispatches of the span posted (a freeze's) and handed to the gateways in event order. */
static int span_end(struct headend_loop *h, int64_t now_ms, char *err, size_t errlen)
{
    int rc, outage = h->span == EVENT_HEADEND_OUTAGE;
    if (outage) {
        if ((rc = relay_restore(h->relay))) {
            snprintf(err, errlen, "headend: cannot listen again for the uplinks: %s",
                     strerror(-rc));
            return rc;
        }
    } else {
        int st;
        if (kill(h->child, SIGCONT) < 0 || waitpid(h->child, &st, WCONTINUED) != h->child) {
            snprintf(err, errlen, "headend: cannot resume pid %d: %s", (int)h->child,
                     strerror(errno));
            return -ECHILD;
        }
    }
    h->span = 0;
    if ((rc = wait_uplinks(h, 'r', err, errlen)))
        return rc;
    if (outage) {
        uint64_t n = telemetry_dropped(h) - h->dropped0;
        h->dropped += n;
        fprintf(h->ev, "t=%.3f event=headend_outage_end telemetry_dropped=%llu\n", now_ms / 1000.0,
                (unsigned long long)n);
    } else
        fprintf(h->ev, "t=%.3f event=headend_freeze_end\n", now_ms / 1000.0);
    for (size_t i = 0; i < h->n_late; i++) {
        struct late *l = &h->late[i];
        if (!l->wall_post) {
            if ((rc = post_dispatch(h, &h->s[l->site], l->e, l->id, err, errlen)))
                return rc;
            l->wall_post = wall_ms();
        }
    }
    for (size_t i = 0; i < h->n_late; i++)
        if (!h->late[i].done &&
            (rc = deliver_until(h, &h->s[h->late[i].site], h->late[i].id, now_ms, err, errlen)))
            return rc;
    h->n_late = 0;
    return 0;
}

int headend_loop_tick(struct headend_loop *h, int64_t t, int64_t now_ms, char *err, size_t errlen)
{
    const struct scenario *sc = h->sc;
    int rc;
    if (h->span && h->span_end_ms <= t && (rc = span_end(h, now_ms, err, errlen)))
        return rc;
    for (; h->next < sc->n_dispatches && sc->dispatches[h->next].at_ms <= t; h->next++) {
        const struct event *e = &sc->dispatches[h->next];
        if (event_is_headend(e->type)) {
            /* a run without a headend in the loop (the baseline, whose scenario drops the
             * "headend" object) has no stream to cut or headend to stop */
            if (h->child <= 0)
                continue;
            if ((rc = span_begin(h, e, now_ms, err, errlen)))
                return rc;
            continue;
        }
        for (size_t i = 0; i < h->n; i++) {
            struct hsite *s = &h->s[i];
            if (strcmp(s->base_id, e->site_id))
                continue;
            if (e->type != EVENT_DISPATCH) { /* the gateway's events */
                if ((rc = gateway_event(h, s, e, now_ms, err, errlen)))
                    return rc;
                continue;
            }
            fprintf(h->ev,
                    "t=%.3f site=%s event=dispatch target=%s asset=%s power_w=%.3f "
                    "ttl_s=%lld\n",
                    now_ms / 1000.0, s->id, e->asset_id[0] ? "asset" : "site",
                    e->asset_id[0] ? e->asset_id : "-", nearbyint(e->power_w * 1000.0) / 1000.0,
                    (long long)(e->ttl_ms / 1000));
            if (s->up) {
                if ((rc = via_headend(h, s, e, now_ms, err, errlen)))
                    return rc;
                continue;
            }
            struct agentmsg_setpoint sp;
            memset(&sp, 0, sizeof sp);
            snprintf(sp.setpoint_id, sizeof sp.setpoint_id, "scenario-%d", e->seq);
            sp.target = e->asset_id[0] ? 'a' : 's';
            char uid[SCN_ID_MAX];
            snprintf(sp.target_id, sizeof sp.target_id, "%s",
                     e->asset_id[0] ? scenario_asset_uid(s->cfg, e->asset_id, uid) : s->id);
            sp.power_w = e->power_w;
            sp.expires_ms = e->ttl_ms; /* on a clock that reads 0 now */
            dispatch_setpoint(s->disp, &sp, now_ms, 0);
        }
    }
    return 0;
}

void headend_loop_after_cycle(struct headend_loop *h, size_t site, const struct decision *dm,
                              int64_t now_ms)
{
    if (site >= h->n)
        return;
    struct hsite *s = &h->s[site];
    dispatch_after_cycle(s->disp, dm);
    command_after_cycle(s->cmd, dm);
    for (size_t k = 0; k < s->n_pending;) /* in the order given */
        if (command_result(h, s, s->pending[k], now_ms)) {
            memmove(&s->pending[k], &s->pending[k + 1], (s->n_pending - k - 1) * sizeof(int));
            s->n_pending--;
        } else {
            k++;
        }
    if (s->up)
        uplink_publish(s->up, controller_image(s->ctl), dm, now_ms);
}

double headend_loop_telemetry_dropped(const struct headend_loop *h)
{
    if (!h || h->child <= 0)
        return NAN;
    uint64_t n = h->dropped;
    /* an outage under way: the uplinks are disconnected, so what they dropped so far is what
     * the scenario did, not how fast they send */
    if (h->span == EVENT_HEADEND_OUTAGE)
        n += telemetry_dropped(h) - h->dropped0;
    return (double)n;
}

void headend_loop_free(struct headend_loop *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n; i++) {
        dispatch_free(h->s[i].disp);
        uplink_free(h->s[i].up);
        confsync_free(h->s[i].cs);
        estop_free(h->s[i].es);
        command_free(h->s[i].cmd);
    }
    relay_free(h->relay);
    if (h->span == EVENT_HEADEND_FREEZE && h->child > 0)
        kill(h->child, SIGCONT); /* a stopped headend cannot act on SIGTERM */
    stop_child(h);
    if (h->tmpdir[0]) {
        char p[128];
        snprintf(p, sizeof p, "%s/inventory.json", h->tmpdir);
        unlink(p);
        snprintf(p, sizeof p, "%s/headend.log", h->tmpdir);
        unlink(p);
        rmdir(h->tmpdir);
    }
    free(h->s);
    free(h);
}
