/* bench_serve: what the simulator's Modbus server costs. The figures are printed; a missed
 * target prints a MISS line and makes the exit status 3 (bench.h).
 *
 * 1. Transactions per second on loopback, 10-register reads, with 1 and 8 libmodbus client
 *    threads: mbserver against a bare libmodbus server (the classic poll + modbus_receive +
 *    modbus_reply loop, single-threaded), both measured in this run. Target: mbserver at
 *    >= 80% of the bare loop.
 * 2. Scale: 1,000 sites x 6 devices (1,000 endpoints, 6 units each), every device read once a
 *    second (125 registers) by client threads holding one connection per site, like gateways.
 *    Reported: the server thread's CPU share of one core over the window. Target: < 25% with
 *    the default backend (epoll); the poll fallback is measured too, without a target.
 *    Clients here are raw sockets: libmodbus 3.1.6's client waits with select(), which breaks
 *    on descriptors >= 1024 (docs/bus.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sim/wire/mbserver.h"
#include "common/rtclock.h"
#include "tests/bench/bench.h"

#define TPS_WINDOW_MS        1500
#define SCALE_SITES          1000
#define SCALE_UNITS          6
#define SCALE_CLIENT_THREADS 8
#define SCALE_WARMUP_MS      1200
#define SCALE_WINDOW_MS      5000

/* Servers run until g_server_stop, clients until g_client_stop (part 1 runs several client
 * rounds against servers that stay up). */
static volatile int g_server_stop, g_client_stop;

static int flag(volatile int *f)
{
    return __atomic_load_n(f, __ATOMIC_ACQUIRE);
}

static void set_flag(volatile int *f, int v)
{
    __atomic_store_n(f, v, __ATOMIC_RELEASE);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- part 1: servers ------------------------------------------------------------------------ */

struct server_arg {
    struct mbserver *mb; /* NULL: the bare libmodbus loop */
    int port;            /* bare: filled by the thread */
    volatile int ready;
    modbus_mapping_t *map;
};

static void *mbserver_thread(void *p)
{
    struct server_arg *a = p;
    while (!flag(&g_server_stop))
        if (mbserver_poll(a->mb, 20) < 0)
            break;
    return NULL;
}

/* The classic libmodbus server over poll(2): one context, modbus_receive then modbus_reply. */
static void *bare_thread(void *p)
{
    struct server_arg *a = p;
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", 0);
    int lfd = modbus_tcp_listen(ctx, 256);
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    getsockname(lfd, (struct sockaddr *)&sa, &sl);
    a->port = ntohs(sa.sin_port);
    __atomic_store_n(&a->ready, 1, __ATOMIC_RELEASE);
    struct pollfd pfd[64];
    int n = 1;
    pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
    uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
    while (!flag(&g_server_stop)) {
        if (poll(pfd, (nfds_t)n, 20) <= 0)
            continue;
        for (int i = n - 1; i >= 0; i--) {
            if (!pfd[i].revents)
                continue;
            if (i == 0) {
                int fd = modbus_tcp_accept(ctx, &lfd);
                if (fd >= 0 && n < 64)
                    pfd[n++] = (struct pollfd){.fd = fd, .events = POLLIN};
                else if (fd >= 0)
                    close(fd);
                continue;
            }
            modbus_set_socket(ctx, pfd[i].fd);
            int rc = modbus_receive(ctx, q);
            if (rc > 0) {
                modbus_reply(ctx, q, rc, a->map);
            } else if (rc == -1) {
                close(pfd[i].fd);
                pfd[i] = pfd[--n];
            }
        }
    }
    for (int i = 0; i < n; i++)
        close(pfd[i].fd);
    modbus_set_socket(ctx, -1);
    modbus_free(ctx);
    return NULL;
}

struct client_arg {
    int port;
    pthread_t th;
    volatile int connected;
    uint64_t ok, errors;
};

static volatile int g_go;

static void *tps_client(void *p)
{
    struct client_arg *c = p;
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", c->port);
    modbus_set_slave(ctx, 1);
    modbus_set_response_timeout(ctx, 1, 0);
    if (modbus_connect(ctx) < 0) {
        c->errors++;
        modbus_free(ctx);
        __atomic_store_n(&c->connected, -1, __ATOMIC_RELEASE);
        return NULL;
    }
    __atomic_store_n(&c->connected, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&g_go, __ATOMIC_ACQUIRE))
        sleep_ms(1);
    uint16_t r[10];
    while (!flag(&g_client_stop)) {
        if (modbus_read_registers(ctx, 40000, 10, r) == 10)
            c->ok++;
        else
            c->errors++;
    }
    modbus_close(ctx);
    modbus_free(ctx);
    return NULL;
}

/* Runs n clients against port for the window; returns transactions per second. */
static double run_clients(int port, int n, uint64_t *errors)
{
    struct client_arg c[8];
    memset(c, 0, sizeof(c));
    __atomic_store_n(&g_go, 0, __ATOMIC_RELEASE);
    for (int i = 0; i < n; i++) {
        c[i].port = port;
        pthread_create(&c[i].th, NULL, tps_client, &c[i]);
    }
    for (int i = 0; i < n; i++)
        while (!__atomic_load_n(&c[i].connected, __ATOMIC_ACQUIRE))
            sleep_ms(1);
    int64_t t0 = rtclock_monotonic_us();
    __atomic_store_n(&g_go, 1, __ATOMIC_RELEASE);
    sleep_ms(TPS_WINDOW_MS);
    set_flag(&g_client_stop, 1);
    for (int i = 0; i < n; i++)
        pthread_join(c[i].th, NULL);
    int64_t t1 = rtclock_monotonic_us();
    set_flag(&g_client_stop, 0);
    uint64_t ok = 0;
    *errors = 0;
    for (int i = 0; i < n; i++) {
        ok += c[i].ok;
        *errors += c[i].errors;
    }
    return (double)ok * 1e6 / (double)(t1 - t0);
}

static int bench_tps(void)
{
    struct regimage *img = regimage_new(40000, 200);
    if (!img)
        return -1;
    for (int i = 0; i < 200; i++)
        regimage_regs(img)[i] = (uint16_t)i;

    struct mbserver *mb = mbserver_new(NULL);
    mbserver_set_log(mb, NULL, MBSERVER_LOG_QUIET);
    int mport = 0, ep = mbserver_listen(mb, "127.0.0.1", 0, &mport);
    if (ep < 0 || mbserver_add_unit(mb, ep, 1, img, NULL) < 0)
        return -1;
    struct server_arg ma = {.mb = mb}, ba = {.map = img->map};
    pthread_t mt, bt;
    pthread_create(&mt, NULL, mbserver_thread, &ma);
    pthread_create(&bt, NULL, bare_thread, &ba);
    while (!__atomic_load_n(&ba.ready, __ATOMIC_ACQUIRE))
        sleep_ms(1);

    printf("part 1: transactions/s on loopback, FC03 10 registers, %d ms per run\n", TPS_WINDOW_MS);
    printf("  %-8s %14s %14s %8s %s\n", "clients", "bare libmodbus", "mbserver", "ratio",
           "errors (bare/mbserver)");
    const int counts[] = {1, 8};
    for (int k = 0; k < 2; k++) {
        uint64_t eb, em;
        /* Alternate the order so neither server always runs on a warmer machine. */
        double bare, mbs;
        if (k == 0) {
            bare = run_clients(ba.port, counts[k], &eb);
            mbs = run_clients(mport, counts[k], &em);
        } else {
            mbs = run_clients(mport, counts[k], &em);
            bare = run_clients(ba.port, counts[k], &eb);
        }
        printf("  %-8d %14.0f %14.0f %7.0f%% %llu/%llu\n", counts[k], bare, mbs,
               bare > 0 ? 100.0 * mbs / bare : 0.0, (unsigned long long)eb, (unsigned long long)em);
        char fig[64];
        snprintf(fig, sizeof fig, "mbserver / bare libmodbus, %d client(s)", counts[k]);
        bench_target("bench_serve", fig, bare > 0 ? 100.0 * mbs / bare : 0.0, "%", ">=", 80.0);
    }
    set_flag(&g_server_stop, 1);
    pthread_join(mt, NULL);
    pthread_join(bt, NULL);
    set_flag(&g_server_stop, 0);
    mbserver_free(mb);
    regimage_free(img);
    return 0;
}

/* ---- part 2: scale -------------------------------------------------------------------------- */

struct scale_client {
    pthread_t th;
    int *fds;
    int n;
    uint64_t ok, errors;
    int64_t busy_us;
};

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One FC03 read of 125 registers at 40000 from unit, synchronously. */
static int raw_read125(int fd, uint16_t tid, int unit)
{
    uint8_t q[12] = {
        (uint8_t)(tid >> 8), (uint8_t)tid, 0, 0, 0, 6, (uint8_t)unit, 3, 0x9C, 0x40, 0, 125};
    if (write(fd, q, sizeof(q)) != (ssize_t)sizeof(q))
        return -1;
    uint8_t r[300];
    size_t got = 0, want = 9 + 250;
    while (got < want) {
        ssize_t n = read(fd, r + got, want - got);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return (r[0] << 8 | r[1]) == tid && r[7] == 3 ? 0 : -1;
}

static void *scale_client_thread(void *p)
{
    struct scale_client *c = p;
    uint16_t tid = 0;
    int64_t next = rtclock_monotonic_ms();
    while (!flag(&g_client_stop)) {
        int64_t t0 = rtclock_monotonic_us();
        for (int i = 0; i < c->n && !flag(&g_client_stop); i++)
            for (int u = 1; u <= SCALE_UNITS; u++) {
                if (raw_read125(c->fds[i], ++tid, u) == 0)
                    c->ok++;
                else
                    c->errors++;
            }
        c->busy_us += rtclock_monotonic_us() - t0;
        next += 1000;
        while (!flag(&g_client_stop) && rtclock_monotonic_ms() < next)
            sleep_ms(5);
    }
    return NULL;
}

static double thread_cpu_s(pthread_t th)
{
    clockid_t cid;
    struct timespec ts;
    if (pthread_getcpuclockid(th, &cid) != 0 || clock_gettime(cid, &ts) != 0)
        return -1;
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int bench_scale(enum mbserver_backend backend, const char *bname)
{
    int sites = SCALE_SITES;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t need = (rlim_t)sites * 3 + 64;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < need)
            sites = (int)((rl.rlim_cur - 64) / 3);
    }
    struct mbserver *mb = mbserver_new_backend(NULL, backend);
    mbserver_set_log(mb, NULL, MBSERVER_LOG_QUIET);
    struct regimage **imgs = calloc((size_t)sites * SCALE_UNITS, sizeof(*imgs));
    int *ports = calloc((size_t)sites, sizeof(int));
    int rc = -1;
    for (int s = 0; s < sites; s++) {
        int ep = mbserver_listen(mb, "127.0.0.1", 0, &ports[s]);
        if (ep < 0) {
            fprintf(stderr, "part 2: listen failed at site %d: %s\n", s, strerror(-ep));
            goto out;
        }
        for (int u = 0; u < SCALE_UNITS; u++) {
            struct regimage *img = regimage_new(40000, 200);
            if (!img)
                goto out;
            imgs[s * SCALE_UNITS + u] = img;
            regimage_regs(img)[0] = 0x5375;
            mbserver_add_unit(mb, ep, 1 + u, img, NULL);
        }
    }
    struct server_arg sa = {.mb = mb};
    pthread_t st;
    pthread_create(&st, NULL, mbserver_thread, &sa);

    struct scale_client cl[SCALE_CLIENT_THREADS];
    memset(cl, 0, sizeof(cl));
    int per = (sites + SCALE_CLIENT_THREADS - 1) / SCALE_CLIENT_THREADS, connected = 0;
    for (int t = 0; t < SCALE_CLIENT_THREADS; t++) {
        cl[t].fds = calloc((size_t)per, sizeof(int));
        for (int i = t * per; i < sites && i < (t + 1) * per; i++) {
            int fd = raw_connect(ports[i]);
            if (fd < 0)
                continue;
            cl[t].fds[cl[t].n++] = fd;
            connected++;
        }
    }
    for (int t = 0; t < SCALE_CLIENT_THREADS; t++)
        pthread_create(&cl[t].th, NULL, scale_client_thread, &cl[t]);
    sleep_ms(SCALE_WARMUP_MS);

    struct mbserver_stats s0, s1;
    mbserver_get_stats(mb, &s0); /* racy snapshot of counters: good enough for a rate */
    double c0 = thread_cpu_s(st);
    int64_t w0 = rtclock_monotonic_us();
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    sleep_ms(SCALE_WINDOW_MS);
    double c1 = thread_cpu_s(st);
    int64_t w1 = rtclock_monotonic_us();
    getrusage(RUSAGE_SELF, &ru1);
    mbserver_get_stats(mb, &s1);
    set_flag(&g_client_stop, 1);
    for (int t = 0; t < SCALE_CLIENT_THREADS; t++)
        pthread_join(cl[t].th, NULL);
    set_flag(&g_server_stop, 1);
    pthread_join(st, NULL);
    set_flag(&g_server_stop, 0);
    set_flag(&g_client_stop, 0);

    double wall = (double)(w1 - w0) / 1e6;
    double proc = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec + ru1.ru_stime.tv_sec -
                           ru0.ru_stime.tv_sec) +
                  (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec + ru1.ru_stime.tv_usec -
                           ru0.ru_stime.tv_usec) /
                      1e6;
    uint64_t ok = 0, errors = 0;
    int64_t busy = 0;
    for (int t = 0; t < SCALE_CLIENT_THREADS; t++) {
        ok += cl[t].ok;
        errors += cl[t].errors;
        busy += cl[t].busy_us;
    }
    printf("part 2 (%s backend): %d sites x %d devices, %d endpoints, %d client connections "
           "(%d threads), FC03 125 registers per device per second\n",
           bname, sites, SCALE_UNITS, sites, connected, SCALE_CLIENT_THREADS);
    printf("  window                      %.1f s\n", wall);
    printf("  requests served             %.0f /s (expected %d /s)\n",
           (double)(s1.requests - s0.requests) / wall, connected * SCALE_UNITS);
    printf("  server thread CPU           %.1f%% of one core%s\n", 100.0 * (c1 - c0) / wall,
           backend == MBSERVER_EPOLL ? "" : " (no target: the fallback backend)");
    printf("  whole process CPU           %.1f%% of one core (clients included)\n",
           100.0 * proc / wall);
    printf("  client errors               %llu of %llu\n", (unsigned long long)errors,
           (unsigned long long)(ok + errors));
    printf("  client round trip (mean)    %.0f us per 125-register read\n",
           ok + errors ? (double)busy / (double)(ok + errors) : 0.0);
    if (backend == MBSERVER_EPOLL)
        bench_target("bench_serve", "1,000 sites x 6 devices at 1 Hz, server thread CPU (epoll)",
                     100.0 * (c1 - c0) / wall, "% of one core", "<", 25.0);
    rc = 0;
    for (int t = 0; t < SCALE_CLIENT_THREADS; t++) {
        for (int i = 0; i < cl[t].n; i++)
            close(cl[t].fds[i]);
        free(cl[t].fds);
    }
out:
    mbserver_free(mb);
    for (int i = 0; i < sites * SCALE_UNITS; i++)
        regimage_free(imgs[i]);
    free(imgs);
    free(ports);
    return rc;
}

int main(void)
{
    int64_t t0 = rtclock_monotonic_ms();
    int failed = 0;
    if (bench_tps() < 0) {
        printf("part 1 failed\n");
        failed = 1;
    }
    if (bench_scale(MBSERVER_EPOLL, "epoll, the default") < 0) {
        printf("part 2 (epoll) failed\n");
        failed = 1;
    }
    if (bench_scale(MBSERVER_POLL, "poll") < 0) {
        printf("part 2 (poll) failed\n");
        failed = 1;
    }
    printf("bench_serve took %.1f s\n", (double)(rtclock_monotonic_ms() - t0) / 1000.0);
    return bench_exit(failed);
}
