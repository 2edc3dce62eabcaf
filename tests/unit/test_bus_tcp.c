/* Unit tests for the Modbus TCP register bus (gateway/bus/bus_tcp.c) against a small test server in
 * this file (a thread per connection on 127.0.0.1, an ephemeral port, libmodbus formatting the
 * normal replies) that can misbehave on purpose: never answer, answer with an exception, drop
 * the connection, answer late. Timeouts are 50-100 ms so the whole file runs in about a second. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <CUnit/CUnit.h>
#include <modbus.h>

#include "bus_fixture.h"
#include "gateway/bus/bus_tcp.h"
#include "gateway/bus/tcp_pool.h"

#define START 40000
#define COUNT 100

/* ---- the test server --------------------------------------------------------------------- */

enum srv_mode {
    SRV_NORMAL,    /* libmodbus replies from the mapping */
    SRV_SILENT,    /* reads requests, never answers */
    SRV_EXCEPTION, /* answers every request with exception `code` */
};

#define MAX_CONNS 16

struct srv {
    int lfd, port;
    pthread_t acceptor;
    pthread_t conn_th[MAX_CONNS];
    int conn_fd[MAX_CONNS];
    atomic_int n_conns;
    atomic_int stop;
    atomic_int mode;
    int code;
    int drop_first_after; /* > 0: the first connection is closed after this many replies */
    int late_first_ms;    /* > 0: the very first request is answered after this delay */
    atomic_int requests;  /* frames received, all connections */
    pthread_mutex_t map_lock;
    modbus_mapping_t *map;
};

struct conn_arg {
    struct srv *s;
    int idx;
};
static struct conn_arg conn_args[MAX_CONNS];

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads exactly len bytes, polling so that a stop request is seen within 20 ms. 0 or -1. */
static int read_full(struct srv *s, int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        if (atomic_load(&s->stop))
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 20);
        if (r < 0 && errno != EINTR)
            return -1;
        if (r <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static void *conn_main(void *arg)
{
    struct conn_arg *a = arg;
    struct srv *s = a->s;
    int fd = s->conn_fd[a->idx];
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", 502); /* a formatter only: never connects */
    modbus_set_socket(ctx, fd);
    uint8_t f[MODBUS_TCP_MAX_ADU_LENGTH];
    int replies = 0;
    for (;;) {
        if (read_full(s, fd, f, 7) != 0)
            break;
        size_t len = (size_t)(f[4] << 8 | f[5]);
        if (len < 2 || 6 + len > sizeof(f) || read_full(s, fd, f + 7, len - 1) != 0)
            break;
        int nth = atomic_fetch_add(&s->requests, 1);
        if (nth == 0 && s->late_first_ms > 0) {
            int64_t until = mono_ms() + s->late_first_ms;
            while (mono_ms() < until && !atomic_load(&s->stop))
                usleep(2000);
        }
        int mode = atomic_load(&s->mode);
        if (mode == SRV_SILENT)
            continue;
        int rc;
        if (mode == SRV_EXCEPTION) {
            rc = modbus_reply_exception(ctx, f, (unsigned)s->code);
        } else {
            pthread_mutex_lock(&s->map_lock);
            rc = modbus_reply(ctx, f, (int)(6 + len), s->map);
            pthread_mutex_unlock(&s->map_lock);
        }
        (void)rc; /* a late reply to a closed peer fails: that is the point */
        replies++;
        if (a->idx == 0 && s->drop_first_after > 0 && replies >= s->drop_first_after)
            break;
    }
    modbus_free(ctx);
    shutdown(fd, SHUT_RDWR);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    struct srv *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {s->lfd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        int i = atomic_load(&s->n_conns);
        if (i >= MAX_CONNS) {
            close(fd);
            continue;
        }
        s->conn_fd[i] = fd;
        conn_args[i] = (struct conn_arg){s, i};
        if (pthread_create(&s->conn_th[i], NULL, conn_main, &conn_args[i]) != 0) {
            close(fd);
            continue;
        }
        atomic_store(&s->n_conns, i + 1);
    }
    return NULL;
}

/* Binds 127.0.0.1 port 0 and learns the port the kernel picked. */
static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(sa);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static int srv_start(struct srv *s, enum srv_mode mode)
{
    memset(s, 0, sizeof(*s));
    atomic_store(&s->mode, mode);
    pthread_mutex_init(&s->map_lock, NULL);
    s->map = modbus_mapping_new_start_address(0, 0, 0, 0, START, COUNT, 0, 0);
    for (int i = 0; i < COUNT; i++)
        s->map->tab_registers[i] = (uint16_t)(1000 + i);
    s->lfd = listen_any(&s->port);
    if (s->lfd < 0 || !s->map)
        return -1;
    return pthread_create(&s->acceptor, NULL, acceptor_main, s) == 0 ? 0 : -1;
}

static void srv_stop(struct srv *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->acceptor, NULL);
    int n = atomic_load(&s->n_conns);
    for (int i = 0; i < n; i++) {
        pthread_join(s->conn_th[i], NULL);
        close(s->conn_fd[i]);
    }
    close(s->lfd);
    modbus_mapping_free(s->map);
    pthread_mutex_destroy(&s->map_lock);
}

/* ---- helpers ----------------------------------------------------------------------------- */

static struct bus *open_bus(int port, int timeout_ms, int retries, struct fake_clock *fc,
                            struct logbuf *lb)
{
    struct bus_tcp_config cfg;
    bus_tcp_config_default(&cfg, "127.0.0.1", port);
    cfg.bus.name = "site-1";
    cfg.timeout_ms = timeout_ms;
    cfg.bus.retry.retries = retries;
    if (fc) {
        cfg.bus.clock.now_ms = fake_now;
        cfg.bus.clock.sleep_ms = fake_sleep;
        cfg.bus.clock.ctx = fc;
    }
    cfg.bus.log = lb ? log_capture : quiet;
    cfg.bus.log_ctx = lb;
    struct bus *b = NULL;
    CU_ASSERT_EQUAL_FATAL(bus_tcp_new(&cfg, &b), 0);
    return b;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_round_trip(void)
{
    struct srv s;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s, SRV_NORMAL), 0);
    struct logbuf lb = {{0}, 0};
    struct bus *b = open_bus(s.port, 200, 1, NULL, &lb);
    CU_ASSERT_EQUAL(bus_set_device(b, 3, "bat-1"), 0);
    uint16_t r[125];
    CU_ASSERT_EQUAL(bus_read(b, 3, START, COUNT, r), 0);
    CU_ASSERT_EQUAL(r[0], 1000);
    CU_ASSERT_EQUAL(r[99], 1099);
    uint16_t w[3] = {7, 0xFFFF, 0x8000};
    CU_ASSERT_EQUAL(bus_write(b, 3, START + 10, 3, w), 0);
    CU_ASSERT_EQUAL(bus_write(b, 3, START + 20, 1, w), 0); /* one register: FC16 too */
    CU_ASSERT_EQUAL(bus_read(b, 3, START + 9, 5, r), 0);
    CU_ASSERT_EQUAL(r[0], 1009);
    CU_ASSERT_EQUAL(r[1], 7);
    CU_ASSERT_EQUAL(r[2], 0xFFFF);
    CU_ASSERT_EQUAL(r[3], 0x8000);
    CU_ASSERT_EQUAL(r[4], 1013);
    pthread_mutex_lock(&s.map_lock);
    CU_ASSERT_EQUAL(s.map->tab_registers[20], 7);
    pthread_mutex_unlock(&s.map_lock);
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.requests, 4);
    CU_ASSERT_EQUAL(st.ok, 4);
    CU_ASSERT_EQUAL(st.connects, 1);
    CU_ASSERT_EQUAL(st.reconnects, 0);
    CU_ASSERT_EQUAL(st.retries, 0);
    CU_ASSERT_EQUAL(atomic_load(&s.requests), 4);
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "bus=tcp endpoint=site-1 unit=3 device=bat-1 "
                                           "event=connect peer=127.0.0.1:"));
    CU_ASSERT_EQUAL(lb.lines, 1);
    bus_close(b);
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "event=disconnect reason=closed"));
    srv_stop(&s);
}

static void test_bad_arguments_send_nothing(void)
{
    struct srv s;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s, SRV_NORMAL), 0);
    struct bus *b = open_bus(s.port, 200, 1, NULL, NULL);
    uint16_t r[130] = {0};
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 0, r), -EINVAL);
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 126, r), -EINVAL);
    CU_ASSERT_EQUAL(bus_write(b, 1, START, 124, r), -EINVAL);
    CU_ASSERT_EQUAL(bus_read(b, 256, START, 1, r), -EINVAL);
    CU_ASSERT_EQUAL(bus_read(b, -1, START, 1, r), -EINVAL);
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 1, NULL), -EINVAL);
    CU_ASSERT_EQUAL(bus_read(b, 1, 65535, 2, r), -EINVAL);
    CU_ASSERT_EQUAL(bus_read(NULL, 1, START, 1, r), -EINVAL);
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.requests, 0);
    CU_ASSERT_EQUAL(st.connects, 0);
    CU_ASSERT_EQUAL(atomic_load(&s.requests), 0);
    struct bus_tcp_config cfg;
    struct bus *x = NULL;
    bus_tcp_config_default(&cfg, "127.0.0.1", 0);
    CU_ASSERT_EQUAL(bus_tcp_new(&cfg, &x), -EINVAL);
    bus_tcp_config_default(&cfg, "127.0.0.1", 502);
    cfg.bus.retry.backoff_max_ms = cfg.bus.retry.backoff_ms - 1;
    CU_ASSERT_EQUAL(bus_tcp_new(&cfg, &x), -EINVAL);
    CU_ASSERT_PTR_NULL(x);
    bus_close(b);
    srv_stop(&s);
}

static void test_timeout_does_not_hang(void)
{
    struct srv s;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s, SRV_SILENT), 0);
    struct logbuf lb = {{0}, 0};
    struct bus *b = open_bus(s.port, 100, 0, NULL, &lb);
    uint16_t r[4];
    int64_t t0 = mono_ms();
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 4, r), -ETIMEDOUT);
    int64_t dt = mono_ms() - t0;
    CU_ASSERT(dt >= 90 && dt < 400);
    CU_ASSERT_EQUAL(bus_tcp_connected(b), 0); /* dropped after the timeout */
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "event=disconnect reason=timeout"));
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.timeouts, 1);
    CU_ASSERT_EQUAL(st.ok, 0);
    CU_ASSERT_STRING_EQUAL(bus_strerror(-ETIMEDOUT), "timeout: no reply");
    bus_close(b);
    srv_stop(&s);
}

static void test_exception_surfaced_not_retried(void)
{
    struct srv s;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s, SRV_EXCEPTION), 0);
    s.code = MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS;
    struct bus *b = open_bus(s.port, 200, 2, NULL, NULL);
    uint16_t r[4] = {0}; /* written below after a failed read: defined values */
    int rc = bus_read(b, 1, START, 4, r);
    CU_ASSERT_EQUAL(rc, bus_exception_rc(2));
    CU_ASSERT_EQUAL(bus_exception_code(rc), 2);
    CU_ASSERT_EQUAL(bus_exception_code(-ETIMEDOUT), 0);
    CU_ASSERT_STRING_EQUAL(bus_strerror(rc), "modbus exception 2: illegal data address");
    rc = bus_write(b, 1, START, 4, r);
    CU_ASSERT_EQUAL(bus_exception_code(rc), 2);
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.exceptions, 2);
    CU_ASSERT_EQUAL(st.exceptions_by_code[2], 2);
    CU_ASSERT_EQUAL(st.retries, 0);
    CU_ASSERT_EQUAL(st.connects, 1); /* an exception keeps the connection */
    CU_ASSERT_EQUAL(bus_tcp_connected(b), 1);
    CU_ASSERT_EQUAL(atomic_load(&s.requests), 2);
    /* an exception proves the device alive: the breaker stays closed */
    for (int i = 0; i < 5; i++)
        bus_read(b, 1, START, 4, r);
    CU_ASSERT_EQUAL(bus_breaker_state(b, 1), BREAKER_CLOSED);
    bus_close(b);
    srv_stop(&s);
}

static void test_reconnect_after_server_drop(void)
{
    struct srv s;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s, SRV_NORMAL), 0);
    s.drop_first_after = 1;
    struct logbuf lb = {{0}, 0};
    struct fake_clock fc = {0};
    struct bus *b = open_bus(s.port, 200, 1, &fc, &lb);
    uint16_t r[2];
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 2, r), 0);
    usleep(20000); /* let the server's close reach us */
    CU_ASSERT_EQUAL(bus_read(b, 1, START + 5, 2, r), 0);
    CU_ASSERT_EQUAL(r[0], 1005);
    CU_ASSERT_EQUAL(bus_read(b, 1, START + 6, 2, r), 0);
    CU_ASSERT_EQUAL(r[1], 1007);
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.connects, 2);
    CU_ASSERT_EQUAL(st.reconnects, 1);
    CU_ASSERT_EQUAL(st.retries, 1);
    CU_ASSERT_EQUAL(st.conn_errors, 1);
    CU_ASSERT_EQUAL(fc.n_sleeps, 1);
    CU_ASSERT_EQUAL(fc.sleeps[0], 50); /* the default backoff */
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "event=disconnect reason=connection_lost"));
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "event=reconnect"));
    /* the same without a retry: the call fails, the next one reconnects */
    bus_close(b);
    srv_stop(&s);
}

/* libmodbus #255: a reply that arrives after the timeout must not be taken as the answer to
 * the next request. The server answers the first request after 2.5 x the timeout, by which time
 * the client has given up and sent another request; every later answer must be its own. */
static void test_late_reply_does_not_corrupt_next(void)
{
    struct srv s;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s, SRV_NORMAL), 0);
    s.late_first_ms = 125;
    struct bus *b = open_bus(s.port, 50, 0, NULL, NULL);
    uint16_t r[4];
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 4, r), -ETIMEDOUT);
    usleep(150000); /* the late reply has been sent by now */
    for (int i = 1; i <= 5; i++) {
        memset(r, 0, sizeof(r));
        CU_ASSERT_EQUAL(bus_read(b, 1, (uint16_t)(START + 10 * i), 4, r), 0);
        CU_ASSERT_EQUAL(r[0], 1000 + 10 * i);
        CU_ASSERT_EQUAL(r[3], 1003 + 10 * i);
    }
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.ok, 5);
    CU_ASSERT_EQUAL(st.proto_errors, 0);
    bus_close(b);
    srv_stop(&s);
}

static void test_breaker_stops_traffic_then_probes(void)
{
    struct srv s;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s, SRV_SILENT), 0);
    struct logbuf lb = {{0}, 0};
    struct fake_clock fc = {.now = 1000};
    struct bus_tcp_config cfg;
    bus_tcp_config_default(&cfg, "127.0.0.1", s.port);
    cfg.timeout_ms = 50;
    cfg.bus.retry.retries = 0;
    cfg.bus.breaker = (struct breaker_config){2, 1000, 4000};
    cfg.bus.clock = (struct bus_clock){fake_now, fake_sleep, &fc};
    cfg.bus.log = log_capture;
    cfg.bus.log_ctx = &lb;
    struct bus *b = NULL;
    CU_ASSERT_EQUAL_FATAL(bus_tcp_new(&cfg, &b), 0);
    CU_ASSERT_EQUAL(bus_set_device(b, 7, "pv-2"), 0);
    uint16_t r[2];
    CU_ASSERT_EQUAL(bus_read(b, 7, START, 2, r), -ETIMEDOUT);
    CU_ASSERT_EQUAL(bus_read(b, 7, START, 2, r), -ETIMEDOUT);
    CU_ASSERT_EQUAL(bus_breaker_state(b, 7), BREAKER_OPEN);
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "unit=7 device=pv-2 event=breaker_open"));
    int sent = atomic_load(&s.requests);
    CU_ASSERT_EQUAL(sent, 2);
    /* open: refused at once, nothing on the wire */
    int64_t t0 = mono_ms();
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(bus_read(b, 7, START, 2, r), BUS_EOPEN);
    CU_ASSERT(mono_ms() - t0 < 20);
    fc.now += 999;
    CU_ASSERT_EQUAL(bus_read(b, 7, START, 2, r), BUS_EOPEN);
    usleep(30000);
    CU_ASSERT_EQUAL(atomic_load(&s.requests), sent);
    /* another unit on the same endpoint has its own breaker */
    CU_ASSERT_EQUAL(bus_breaker_state(b, 8), BREAKER_CLOSED);
    /* the device recovers; after the open period one probe goes through and closes it */
    atomic_store(&s.mode, SRV_NORMAL);
    fc.now += 1;
    CU_ASSERT_EQUAL(bus_breaker_state(b, 7), BREAKER_HALF_OPEN);
    CU_ASSERT_EQUAL(bus_read(b, 7, START, 2, r), 0);
    CU_ASSERT_EQUAL(r[0], 1000);
    CU_ASSERT_EQUAL(bus_breaker_state(b, 7), BREAKER_CLOSED);
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "event=breaker_half_open"));
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "event=breaker_closed"));
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.breaker_opens, 1);
    CU_ASSERT_EQUAL(st.breaker_rejects, 11);
    CU_ASSERT_EQUAL(st.timeouts, 2);
    CU_ASSERT_EQUAL(st.ok, 1);
    bus_close(b);
    srv_stop(&s);
}

/* A closed port: connects are refused at once and retried (the backoff itself is the core's,
 * tests/unit/test_buscore.c); the dead endpoint is logged once, not at every attempt. */
static void test_refused_connects_logged_once(void)
{
    int port, fd = listen_any(&port);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd); /* nothing listens there now */
    struct fake_clock fc = {0};
    struct logbuf lb = {{0}, 0};
    struct bus_tcp_config cfg;
    bus_tcp_config_default(&cfg, "127.0.0.1", port);
    cfg.timeout_ms = 100;
    cfg.bus.retry.retries = 4;
    cfg.bus.breaker.failures = 0;
    cfg.bus.clock = (struct bus_clock){fake_now, fake_sleep, &fc};
    cfg.bus.log = log_capture;
    cfg.bus.log_ctx = &lb;
    struct bus *b = NULL;
    CU_ASSERT_EQUAL_FATAL(bus_tcp_new(&cfg, &b), 0);
    uint16_t r[1];
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 1, r), -ECONNREFUSED);
    CU_ASSERT_EQUAL(fc.n_sleeps, 4);
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.conn_errors, 5);
    CU_ASSERT_EQUAL(st.retries, 4);
    CU_ASSERT_EQUAL(st.connects, 0);
    /* one connect_failed line, not five: the reason did not change */
    CU_ASSERT_EQUAL(lb.lines, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(lb.text, "event=connect_failed"));
    bus_close(b);
}

/* The pool: one bus per (host, port), shared by the devices behind it; nothing connects yet. */
static void test_pool_one_bus_per_endpoint(void)
{
    struct bus_config bc;
    bus_config_default(&bc);
    bc.name = "site-1";
    bc.log = quiet;
    struct tcp_pool pool;
    tcp_pool_init(&pool, &bc);
    char err[200] = "";
    struct bus *a = tcp_pool_bus(&pool, "127.0.0.1", 1502, 100, err, sizeof err);
    struct bus *a2 = tcp_pool_bus(&pool, "127.0.0.1", 1502, 300, err, sizeof err);
    struct bus *b = tcp_pool_bus(&pool, "127.0.0.1", 1503, 100, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_EQUAL(a, a2);
    CU_ASSERT_PTR_NOT_NULL(b);
    CU_ASSERT(a != b);
    CU_ASSERT_EQUAL(pool.n, 2);
    CU_ASSERT_EQUAL(bus_tcp_connected(a), 0);
    CU_ASSERT_PTR_NULL(tcp_pool_bus(&pool, "127.0.0.1", 0, 100, err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "cannot create a Modbus TCP bus to 127.0.0.1:0: Invalid argument");
    CU_ASSERT_EQUAL(pool.n, 2);
    tcp_pool_release(&pool);
    CU_ASSERT_EQUAL(pool.n, 0);
}

void test_register_bus_tcp(void)
{
    CU_pSuite s = CU_add_suite("bus_tcp", NULL, NULL);
    CU_add_test(s, "read and write round trips", test_round_trip);
    CU_add_test(s, "bad arguments send nothing", test_bad_arguments_send_nothing);
    CU_add_test(s, "timeout returns within the timeout", test_timeout_does_not_hang);
    CU_add_test(s, "exception surfaced, not retried", test_exception_surfaced_not_retried);
    CU_add_test(s, "reconnect after the server drops", test_reconnect_after_server_drop);
    CU_add_test(s, "late reply does not corrupt the next", test_late_reply_does_not_corrupt_next);
    CU_add_test(s, "breaker: no traffic while open, probe", test_breaker_stops_traffic_then_probes);
    CU_add_test(s, "refused connects: retried, logged once", test_refused_connects_logged_once);
    CU_add_test(s, "pool: one bus per endpoint", test_pool_one_bus_per_endpoint);
}
