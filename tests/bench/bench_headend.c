/* bench_headend: load on der-headend with the gRPC core API. Starts the real binary with a
 * generated inventory (N sites x M assets, SQLite store in a temp dir), opens N gateway
 * streams (one TCP connection each: GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL), sends M telemetry
 * messages per gateway per second for the load phase while another thread posts dispatches
 * through REST; every Setpoint is acked APPLIED at once. Prints telemetry ingested per second
 * (from the headend's own counters), dispatch-to-APPLIED latency p50/p99 and headend RSS per
 * stream. Usage: bench_headend [N [M [SECONDS [DISPATCHES]]]]  (default 1000 10 20 200).
 * Targets (issue 5): the offered N x M messages/s (10,000 by default) ingested and stored
 * (at least 99 % of it over the window: messages in flight at its edges), dispatch p99 under
 * 50 ms, under 100 KB of headend RSS per stream after the load. A missed target prints a MISS
 * line and makes the exit status 3 (bench.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "proto/der/v1/agent.pb-c.h"
#include "tests/bench/bench.h"

#define MAX_ACKS 32

enum kind { K_META, K_RMETA, K_STATUS, K_RECV, K_SEND };

struct gw;
struct tag {
    enum kind kind;
    struct gw *g;
};

struct gw {
    int idx;
    grpc_channel *ch;
    grpc_call *call;
    struct tag t[5];
    grpc_byte_buffer *recv_buf, *inflight;
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status;
    grpc_slice details;
    int registered, done, pending;
    int pending_tel, next_asset;
    uint64_t seq, tseq;
    int64_t next_due_ms;
    char acks[MAX_ACKS][64];
    int ack_asset[MAX_ACKS];
    int n_acks;
};

static int N = 1000, M = 10, SECONDS = 20, DISPATCHES = 200;
static int http_port, grpc_port;
static pid_t headend_pid;
static struct gw *gws;
static grpc_completion_queue *cq;
static atomic_int load_on, stop_all;
static int64_t *post_t0_us; /* per dispatched asset, when its POST started */
static int64_t *apply_us;   /* per dispatched asset, POST start -> APPLIED on the wire */
static atomic_int registered_count, applied_count;
static char dispatched_ids[4096][32];

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* A tiny HTTP/1.0 client: one request per connection; returns the malloc'd body. */
static char *http(const char *method, const char *path, const char *body, int *status)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %zu"
                     "\r\n\r\n%s",
                     method, path, body ? strlen(body) : 0, body ? body : "");
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf && (r = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)r;
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    close(fd);
    if (!buf)
        return NULL;
    buf[len] = 0;
    *status = atoi(buf + 9);
    char *b = strstr(buf, "\r\n\r\n");
    char *out = strdup(b ? b + 4 : "");
    free(buf);
    return out;
}

static double metric(const char *name)
{
    int st = 0;
    char *m = http("GET", "/metrics", NULL, &st);
    double v = -1;
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    char *p = m ? strstr(m, key) : NULL;
    if (p)
        v = strtod(p + strlen(key), NULL);
    free(m);
    return v;
}

static void start_batch(struct gw *g, grpc_op *ops, size_t n, enum kind k)
{
    if (grpc_call_start_batch(g->call, ops, n, &g->t[k], NULL) == GRPC_CALL_OK)
        g->pending++;
}

static grpc_byte_buffer *pack(const Der__V1__AgentMessage *m)
{
    size_t n = der__v1__agent_message__get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(n);
    der__v1__agent_message__pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

static void send_bb(struct gw *g, grpc_byte_buffer *bb)
{
    g->inflight = bb;
    grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
    op.data.send_message.send_message = bb;
    start_batch(g, &op, 1, K_SEND);
}

/* Acks first, then telemetry: one send in flight per stream. */
static void kick(struct gw *g)
{
    if (g->inflight || g->done || !g->registered)
        return;
    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    m.seq = ++g->seq;
    m.sent_ms = wall_ms();
    if (g->n_acks) {
        Der__V1__SetpointAck a = DER__V1__SETPOINT_ACK__INIT;
        Der__V1__Allocation al = DER__V1__ALLOCATION__INIT, *alp = &al;
        char aid[32];
        snprintf(aid, sizeof(aid), "b%04d-%02d", g->idx, g->ack_asset[0]);
        al.asset_id = aid;
        al.power_w = 1000;
        a.setpoint_id = g->acks[0];
        a.state = DER__V1__SETPOINT_ACK__STATE__APPLIED;
        a.n_allocations = 1;
        a.allocations = &alp;
        m.body_case = DER__V1__AGENT_MESSAGE__BODY_SETPOINT_ACK;
        m.setpoint_ack = &a;
        send_bb(g, pack(&m));
        int k = g->ack_asset[0] + g->idx * M;
        if (post_t0_us[k])
            apply_us[k] = mono_us() - post_t0_us[k];
        atomic_fetch_add(&applied_count, 1);
        g->n_acks--;
        memmove(g->acks[0], g->acks[1], sizeof(g->acks[0]) * (size_t)g->n_acks);
        memmove(&g->ack_asset[0], &g->ack_asset[1], sizeof(int) * (size_t)g->n_acks);
        return;
    }
    if (g->pending_tel > 0) {
        Der__V1__Telemetry t = DER__V1__TELEMETRY__INIT;
        char aid[32];
        snprintf(aid, sizeof(aid), "b%04d-%02d", g->idx, g->next_asset);
        g->next_asset = (g->next_asset + 1) % M;
        t.asset_id = aid;
        t.ts_ms = m.sent_ms;
        t.telemetry_seq = ++g->tseq;
        t.power_w = 1234.5;
        t.setpoint_w = 0;
        t.online = 1;
        t.status = "ok";
        m.body_case = DER__V1__AGENT_MESSAGE__BODY_TELEMETRY;
        m.telemetry = &t;
        g->pending_tel--;
        send_bb(g, pack(&m));
    }
}

static void gw_start(struct gw *g)
{
    grpc_arg args[1] = {{.type = GRPC_ARG_INTEGER,
                         .key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
                         .value.integer = 1}};
    grpc_channel_args ca = {1, args};
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%d", grpc_port);
    grpc_channel_credentials *cr = grpc_insecure_credentials_create();
    g->ch = grpc_channel_create(target, cr, &ca);
    grpc_channel_credentials_release(cr);
    grpc_slice method = grpc_slice_from_static_string("/der.v1.Headend/Connect");
    g->call = grpc_channel_create_call(g->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    for (int k = 0; k < 5; k++)
        g->t[k] = (struct tag){(enum kind)k, g};
    grpc_metadata_array_init(&g->md_init);
    grpc_metadata_array_init(&g->md_trail);
    g->details = grpc_empty_slice();
    grpc_op op = {.op = GRPC_OP_SEND_INITIAL_METADATA};
    op.flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
    start_batch(g, &op, 1, K_META);
    grpc_op rm = {.op = GRPC_OP_RECV_INITIAL_METADATA};
    rm.data.recv_initial_metadata.recv_initial_metadata = &g->md_init;
    start_batch(g, &rm, 1, K_RMETA);
    grpc_op st = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    st.data.recv_status_on_client.trailing_metadata = &g->md_trail;
    st.data.recv_status_on_client.status = &g->status;
    st.data.recv_status_on_client.status_details = &g->details;
    start_batch(g, &st, 1, K_STATUS);
    grpc_op rv = {.op = GRPC_OP_RECV_MESSAGE};
    rv.data.recv_message.recv_message = &g->recv_buf;
    start_batch(g, &rv, 1, K_RECV);

    Der__V1__AgentMessage m = DER__V1__AGENT_MESSAGE__INIT;
    Der__V1__Register r = DER__V1__REGISTER__INIT;
    char gid[32], sid[32], aids[64][32];
    Der__V1__AssetInfo infos[64], *ip[64];
    snprintf(gid, sizeof(gid), "g%04d", g->idx);
    snprintf(sid, sizeof(sid), "s%04d", g->idx);
    for (int a = 0; a < M && a < 64; a++) {
        der__v1__asset_info__init(&infos[a]);
        snprintf(aids[a], sizeof(aids[a]), "b%04d-%02d", g->idx, a);
        infos[a].asset_id = aids[a];
        ip[a] = &infos[a];
    }
    r.gateway_id = gid;
    r.site_id = sid;
    r.n_assets = (size_t)(M < 64 ? M : 64);
    r.assets = ip;
    r.software = "bench_headend";
    m.seq = ++g->seq;
    m.sent_ms = wall_ms();
    m.body_case = DER__V1__AGENT_MESSAGE__BODY_REGISTER;
    m.register_ = &r;
    send_bb(g, pack(&m));
}

static void on_message(struct gw *g, grpc_byte_buffer *bb)
{
    grpc_byte_buffer_reader rd;
    grpc_byte_buffer_reader_init(&rd, bb);
    grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
    grpc_byte_buffer_reader_destroy(&rd);
    Der__V1__HeadendMessage *m =
        der__v1__headend_message__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    if (!m)
        return;
    if (m->body_case == DER__V1__HEADEND_MESSAGE__BODY_REGISTER_RESULT && !g->registered) {
        g->registered = 1;
        atomic_fetch_add(&registered_count, 1);
    } else if (m->body_case == DER__V1__HEADEND_MESSAGE__BODY_SETPOINT && g->n_acks < MAX_ACKS) {
        const char *aid = m->setpoint->target_case == DER__V1__SETPOINT__TARGET_ASSET_ID
                              ? m->setpoint->asset_id
                              : "";
        snprintf(g->acks[g->n_acks], sizeof(g->acks[0]), "%s", m->setpoint->setpoint_id);
        g->ack_asset[g->n_acks++] = strlen(aid) > 6 ? atoi(aid + 6) : 0;
    }
    der__v1__headend_message__free_unpacked(m, NULL);
}

static void handle(struct tag *t, int ok)
{
    struct gw *g = t->g;
    g->pending--;
    switch (t->kind) {
    case K_RECV:
        if (ok && g->recv_buf) {
            on_message(g, g->recv_buf);
            grpc_byte_buffer_destroy(g->recv_buf);
            g->recv_buf = NULL;
            grpc_op rv = {.op = GRPC_OP_RECV_MESSAGE};
            rv.data.recv_message.recv_message = &g->recv_buf;
            start_batch(g, &rv, 1, K_RECV);
        }
        break;
    case K_SEND:
        grpc_byte_buffer_destroy(g->inflight);
        g->inflight = NULL;
        if (!ok)
            g->done = 1;
        break;
    case K_STATUS:
        g->done = 1;
        break;
    default:
        break;
    }
    kick(g);
}

static void *dispatcher(void *arg)
{
    /* DISPATCHES posts spread over the load phase, each to a different asset. */
    int64_t gap_us = (int64_t)SECONDS * 800000 / (DISPATCHES ? DISPATCHES : 1);
    for (int i = 0; i < DISPATCHES && !atomic_load(&stop_all); i++) {
        int gw = (int)((long)i * 7919 % N), a = i % M, k = gw * M + a;
        char body[128];
        snprintf(body, sizeof(body), "{\"asset_id\":\"b%04d-%02d\",\"mw\":0.001,\"ttl_s\":60}", gw,
                 a);
        int st = 0;
        post_t0_us[k] = mono_us();
        char *r = http("POST", "/dispatch", body, &st);
        char *p = r ? strstr(r, "\"setpoint_id\":\"") : NULL;
        if (p)
            sscanf(p + 15, "%31[^\"]", dispatched_ids[i]);
        free(r);
        usleep((useconds_t)gap_us);
    }
    return NULL;
}

static void pump(int64_t until_us)
{
    while (mono_us() < until_us) {
        grpc_event ev = grpc_completion_queue_next(
            cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(2, GPR_TIMESPAN)),
            NULL);
        while (ev.type == GRPC_OP_COMPLETE) {
            handle(ev.tag, ev.success);
            ev = grpc_completion_queue_next(cq, gpr_inf_past(GPR_CLOCK_MONOTONIC), NULL);
        }
        if (atomic_load(&load_on)) {
            int64_t now = wall_ms();
            for (int i = 0; i < N; i++) {
                struct gw *g = &gws[i];
                if (g->registered && now >= g->next_due_ms) {
                    g->pending_tel += M;
                    g->next_due_ms += 1000;
                    kick(g);
                }
            }
        }
    }
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int start_headend(const char *bin, const char *dir)
{
    char inv[512], db[512];
    snprintf(inv, sizeof(inv), "%s/inventory.json", dir);
    snprintf(db, sizeof(db), "%s/bench.db", dir);
    FILE *f = fopen(inv, "w");
    if (!f)
        return -errno;
    fputs("{\"sites\":[", f);
    for (int i = 0; i < N; i++) {
        fprintf(f, "%s{\"site_id\":\"s%04d\",\"gateways\":[\"g%04d\"],\"assets\":[", i ? "," : "",
                i, i);
        for (int a = 0; a < M; a++)
            fprintf(f,
                    "%s{\"asset_id\":\"b%04d-%02d\",\"type\":\"battery\",\"min_power_w\":"
                    "-5000,\"max_power_w\":5000}",
                    a ? "," : "", i, a);
        fputs("]}", f);
    }
    fputs("]}\n", f);
    fclose(f);
    int pfd[2];
    if (pipe(pfd) < 0)
        return -errno;
    headend_pid = fork();
    if (headend_pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        char logp[512];
        snprintf(logp, sizeof(logp), "%s/headend.log", dir);
        FILE *lf = freopen(logp, "w", stderr);
        (void)lf;
        execl(bin, bin, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
              "--inventory", inv, "--db", db, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char line[256] = "";
    FILE *pf = fdopen(pfd[0], "r");
    if (!pf || !fgets(line, sizeof(line), pf))
        return -EIO;
    char *g = strstr(line, "grpc="), *h = strstr(line, "http=");
    if (!g || !h || !strstr(line, "ready"))
        return -EIO;
    grpc_port = atoi(strchr(g, ':') + 1);
    http_port = atoi(strchr(h, ':') + 1);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        N = atoi(argv[1]);
    if (argc > 2)
        M = atoi(argv[2]);
    if (argc > 3)
        SECONDS = atoi(argv[3]);
    if (argc > 4)
        DISPATCHES = atoi(argv[4]);
    if (N < 1 || N > 9999 || M < 1 || M > 64 || SECONDS < 1 || DISPATCHES < 0 ||
        DISPATCHES > 4096 || DISPATCHES > N * M) {
        fprintf(stderr, "usage: bench_headend [N<=9999 [M<=64 [SECONDS [DISPATCHES<=4096]]]]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char bin[512], dir[] = "/tmp/bench-headend-XXXXXX";
    snprintf(bin, sizeof(bin), "%s/bin/der-headend", build);
    if (!mkdtemp(dir))
        return 1;
    /* fork before grpc_init (docs/protocol.md). */
    if (start_headend(bin, dir) < 0) {
        fprintf(stderr, "bench_headend: could not start %s (log in %s)\n", bin, dir);
        return 1;
    }
    printf("headend: %d gateways x %d assets, SQLite store in %s, load %d s\n", N, M, dir, SECONDS);
    usleep(300000);
    long rss0 = rss_kb(headend_pid);
    gws = calloc((size_t)N, sizeof(*gws));
    post_t0_us = calloc((size_t)(N * M), sizeof(int64_t));
    apply_us = calloc((size_t)(N * M), sizeof(int64_t));
    grpc_init();
    cq = grpc_completion_queue_create_for_next(NULL);
    int64_t t0 = mono_us();
    for (int i = 0; i < N; i++) {
        gws[i].idx = i;
        gw_start(&gws[i]);
        if (i % 50 == 49)
            pump(mono_us() + 1000);
    }
    while (atomic_load(&registered_count) < N && mono_us() - t0 < 30000000)
        pump(mono_us() + 50000);
    printf("connect: %d/%d gateways registered in %.2f s\n", atomic_load(&registered_count), N,
           (mono_us() - t0) / 1e6);
    pump(mono_us() + 500000);
    long rss1 = rss_kb(headend_pid);
    printf("memory: headend RSS %ld KB idle, %ld KB with %d streams: %.1f KB per stream\n", rss0,
           rss1, N, (double)(rss1 - rss0) / N);

    int64_t now = wall_ms();
    for (int i = 0; i < N; i++)
        gws[i].next_due_ms = now + (int64_t)i * 1000 / N;
    atomic_store(&load_on, 1);
    pthread_t th;
    pthread_create(&th, NULL, dispatcher, NULL);
    pump(mono_us() + 3000000); /* warm-up */
    double tel0 = metric("der_headend_telemetry_messages_total");
    double rows0 = metric("der_headend_store_rows_total");
    int64_t w0 = mono_us();
    pump(w0 + (int64_t)(SECONDS - 3 > 1 ? SECONDS - 3 : 1) * 1000000);
    double tel1 = metric("der_headend_telemetry_messages_total");
    double rows1 = metric("der_headend_store_rows_total");
    double secs = (mono_us() - w0) / 1e6;
    long rss2 = rss_kb(headend_pid);
    atomic_store(&load_on, 0);
    pthread_join(th, NULL);
    pump(mono_us() + 1000000);
    printf("telemetry: %.0f messages/s ingested, %.0f rows/s stored (offered %d/s) over %.1f s\n",
           (tel1 - tel0) / secs, (rows1 - rows0) / secs, N * M, secs);
    printf("memory: headend RSS %ld KB after load: %.1f KB per stream\n", rss2,
           (double)(rss2 - rss0) / N);
    bench_target("bench_headend", "telemetry messages/s ingested", (tel1 - tel0) / secs, "/s",
                 ">=", 0.99 * N * M);
    bench_target("bench_headend", "telemetry rows/s stored", (rows1 - rows0) / secs, "/s",
                 ">=", 0.99 * N * M);
    bench_target("bench_headend", "headend RSS per stream after load", (double)(rss2 - rss0) / N,
                 "KB", "<", 100.0);

    int64_t *lat = calloc((size_t)DISPATCHES + 1, sizeof(int64_t));
    int nl = 0;
    for (int k = 0; k < N * M; k++)
        if (apply_us[k] > 0)
            lat[nl++] = apply_us[k];
    qsort(lat, (size_t)nl, sizeof(int64_t), cmp64);
    if (nl) {
        printf("dispatch: %d/%d APPLIED; POST -> Setpoint at gateway -> APPLIED sent: p50 %.2f ms "
               "p99 %.2f ms max %.2f ms\n",
               nl, DISPATCHES, lat[nl / 2] / 1000.0, lat[(nl * 99) / 100 - (nl >= 100)] / 1000.0,
               lat[nl - 1] / 1000.0);
        bench_target("bench_headend", "dispatch POST -> APPLIED p99",
                     lat[(nl * 99) / 100 - (nl >= 100)] / 1000.0, "ms", "<", 50.0);
    } else if (DISPATCHES) {
        bench_no_figure("bench_headend", "dispatch POST -> APPLIED p99", "no dispatch APPLIED");
    }
    /* The headend's own view: created_ms -> APPLIED ack recorded (ms resolution). */
    int n2 = 0;
    for (int i = 0; i < DISPATCHES; i++) {
        if (!dispatched_ids[i][0])
            continue;
        char path[64];
        snprintf(path, sizeof(path), "/dispatch/%.31s", dispatched_ids[i]);
        int st = 0;
        char *r = http("GET", path, NULL, &st);
        char *c = r ? strstr(r, "\"created_ms\":") : NULL;
        char *ap = r ? strstr(r, "{\"state\":\"APPLIED\"") : NULL;
        char *at = ap ? strstr(ap, "\"at_ms\":") : NULL;
        if (c && at)
            lat[n2++] = (int64_t)(strtod(at + 8, NULL) - strtod(c + 13, NULL));
        free(r);
    }
    qsort(lat, (size_t)n2, sizeof(int64_t), cmp64);
    if (n2)
        printf("dispatch (headend clock): created -> APPLIED recorded: p50 %lld ms p99 %lld ms "
               "(n=%d)\n",
               (long long)lat[n2 / 2], (long long)lat[(n2 * 99) / 100 - (n2 >= 100)], n2);
    free(lat);
    int live = 0;
    for (int i = 0; i < N; i++)
        live += !gws[i].done;
    printf("streams: %d/%d still up at the end\n", live, N);

    int64_t ts = mono_us();
    kill(headend_pid, SIGTERM);
    for (int i = 0; i < N; i++)
        if (!gws[i].done)
            grpc_call_cancel(gws[i].call, NULL);
    atomic_store(&stop_all, 1);
    pump(mono_us() + 500000);
    int wst = 0;
    waitpid(headend_pid, &wst, 0);
    printf("shutdown: headend exited with status %d in %.2f s\n",
           WIFEXITED(wst) ? WEXITSTATUS(wst) : -1, (mono_us() - ts) / 1e6);
    for (int i = 0; i < N; i++) {
        struct gw *g = &gws[i];
        if (g->pending == 0) {
            grpc_call_unref(g->call);
            grpc_channel_destroy(g->ch);
            grpc_metadata_array_destroy(&g->md_init);
            grpc_metadata_array_destroy(&g->md_trail);
            grpc_slice_unref(g->details);
        }
    }
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(
               cq,
               gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(2000, GPR_TIMESPAN)),
               NULL)
               .type == GRPC_OP_COMPLETE)
        ;
    grpc_completion_queue_destroy(cq);
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return bench_exit(0);
}
