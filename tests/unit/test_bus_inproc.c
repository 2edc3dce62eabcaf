/* Unit tests for the in-process register bus (sim/wire/bus_inproc.c): round trips on hand-built
 * register images, the server's exception codes (read-only, validator, out of range, unknown
 * unit), wire faults, the writes counter, breakers on injected time; and a parity test that
 * runs one sequence of calls through this bus and through bus_tcp against the simulator's own
 * Modbus server (mbserver) and requires the same results, statistics and images. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <CUnit/CUnit.h>

#include "bus_fixture.h"
#include "gateway/bus/bus_tcp.h"
#include "sim/wire/bus_inproc.h"
#include "sim/wire/mbserver.h"

#define START 1000
#define COUNT 40

/* Refuses any value above 5000 written to register START + 20 (exception 3), like a model's
 * range check. */
static int refuse_big(void *ctx, uint16_t addr, uint16_t n, const uint16_t *v)
{
    for (uint16_t i = 0; i < n; i++)
        if (addr + i == START + 20 && v[i] > 5000)
            return 3;
    return 0;
}

/* Registers START.. hold 100 + i; START+20..START+29 are writable, START+20 validated. */
static struct regimage *make_image(void)
{
    struct regimage *img = regimage_new(START, COUNT);
    if (!img)
        return NULL;
    for (int i = 0; i < COUNT; i++)
        regimage_regs(img)[i] = (uint16_t)(100 + i);
    for (int i = 20; i < 30; i++)
        img->writable[i] = 1;
    img->validate = refuse_big;
    return img;
}

static struct bus *new_inproc(int retries, struct breaker_config br)
{
    struct bus_inproc_config cfg;
    bus_inproc_config_default(&cfg);
    cfg.bus.retry.retries = retries;
    cfg.bus.breaker = br;
    struct bus *b = NULL;
    CU_ASSERT_EQUAL_FATAL(bus_inproc_new(&cfg, &b), 0);
    return b;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_round_trip_and_writes_counter(void)
{
    struct regimage *img = make_image();
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    struct bus *b = new_inproc(1, (struct breaker_config)BREAKER_CONFIG_DEFAULT);
    CU_ASSERT_EQUAL(bus_inproc_add_unit(b, 2, img, NULL), 0);
    CU_ASSERT_EQUAL(bus_inproc_add_unit(b, 2, img, NULL), -EEXIST);
    CU_ASSERT_EQUAL(bus_inproc_add_unit(b, 256, img, NULL), -EINVAL);
    CU_ASSERT_EQUAL(bus_inproc_add_unit(b, 3, NULL, NULL), -EINVAL);
    uint16_t r[COUNT];
    CU_ASSERT_EQUAL(bus_read(b, 2, START, COUNT, r), 0);
    CU_ASSERT_EQUAL(r[0], 100);
    CU_ASSERT_EQUAL(r[COUNT - 1], 100 + COUNT - 1);
    uint16_t w[3] = {1, 2, 0xFFFF};
    CU_ASSERT_EQUAL(bus_write(b, 2, START + 21, 3, w), 0);
    CU_ASSERT_EQUAL(img->writes, 1);
    CU_ASSERT_EQUAL(regimage_regs(img)[21], 1);
    CU_ASSERT_EQUAL(regimage_regs(img)[23], 0xFFFF);
    CU_ASSERT_EQUAL(bus_write(b, 2, START + 29, 1, w), 0);
    CU_ASSERT_EQUAL(img->writes, 2);
    CU_ASSERT_EQUAL(bus_read(b, 2, START + 20, 4, r), 0);
    CU_ASSERT_EQUAL(r[0], 120);
    CU_ASSERT_EQUAL(r[1], 1);
    CU_ASSERT_EQUAL(r[3], 0xFFFF);
    /* arguments are checked before anything is looked at */
    CU_ASSERT_EQUAL(bus_read(b, 2, START, 126, r), -EINVAL);
    CU_ASSERT_EQUAL(bus_write(b, 2, START, 124, r), -EINVAL);
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.requests, 4);
    CU_ASSERT_EQUAL(st.ok, 4);
    bus_close(b);
    regimage_free(img);
}

static void test_exceptions_as_the_server(void)
{
    struct regimage *img = make_image();
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    struct bus *b = new_inproc(1, (struct breaker_config)BREAKER_CONFIG_DEFAULT);
    CU_ASSERT_EQUAL(bus_inproc_add_unit(b, 1, img, NULL), 0);
    uint16_t r[4], w[2] = {6000, 1};
    /* read-only register: 2 */
    CU_ASSERT_EQUAL(bus_write(b, 1, START + 5, 1, w), bus_exception_rc(2));
    /* half writable: 2 */
    CU_ASSERT_EQUAL(bus_write(b, 1, START + 19, 2, w), bus_exception_rc(2));
    /* refused by the validator: 3, nothing written */
    CU_ASSERT_EQUAL(bus_write(b, 1, START + 20, 1, w), bus_exception_rc(3));
    CU_ASSERT_EQUAL(regimage_regs(img)[20], 120);
    CU_ASSERT_EQUAL(img->writes, 0);
    /* outside the image: 2 */
    CU_ASSERT_EQUAL(bus_read(b, 1, START + COUNT - 2, 4, r), bus_exception_rc(2));
    CU_ASSERT_EQUAL(bus_read(b, 1, START - 1, 1, r), bus_exception_rc(2));
    /* unknown unit: 0x0B, gateway target failed to respond */
    int rc = bus_read(b, 9, START, 1, r);
    CU_ASSERT_EQUAL(bus_exception_code(rc), BUS_EXC_GATEWAY_TARGET);
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.exceptions, 6);
    CU_ASSERT_EQUAL(st.exceptions_by_code[2], 4);
    CU_ASSERT_EQUAL(st.exceptions_by_code[3], 1);
    CU_ASSERT_EQUAL(st.exceptions_by_code[11], 1);
    CU_ASSERT_EQUAL(st.timeouts, 0);
    CU_ASSERT_EQUAL(st.retries, 0);
    bus_close(b);
    regimage_free(img);
}

static void test_wire_faults(void)
{
    struct regimage *img = make_image();
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    struct bus_inproc_config cfg;
    bus_inproc_config_default(&cfg);
    cfg.timeout_ms = 200;
    cfg.bus.retry.retries = 2;
    cfg.bus.breaker.failures = 0; /* this test looks at the faults, not the breaker */
    struct bus *b = NULL;
    CU_ASSERT_EQUAL_FATAL(bus_inproc_new(&cfg, &b), 0);
    struct wirefault wf = {WIRE_OK, 0, 0};
    CU_ASSERT_EQUAL(bus_inproc_add_unit(b, 1, img, &wf), 0);
    uint16_t r[2], w[1] = {42};

    int64_t t0 = mono_ms();
    wf.mode = WIRE_TIMEOUT;
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 2, r), -ETIMEDOUT);
    CU_ASSERT_EQUAL(bus_write(b, 1, START + 20, 1, w), -ETIMEDOUT);
    wf.mode = WIRE_OFFLINE;
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 2, r), -ETIMEDOUT);
    CU_ASSERT(mono_ms() - t0 < 20); /* no sleeping */
    CU_ASSERT_EQUAL(img->writes, 0);
    CU_ASSERT_EQUAL(regimage_regs(img)[20], 120);

    wf = (struct wirefault){WIRE_EXCEPTION, 6, 0};
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 2, r), bus_exception_rc(6));
    /* the fault wins over the request's own checks, as in mbserver */
    CU_ASSERT_EQUAL(bus_read(b, 1, 0, 2, r), bus_exception_rc(6));
    wf.code = 99; /* a code libmodbus cannot send: mbserver answers 4 */
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 2, r), bus_exception_rc(4));

    wf = (struct wirefault){WIRE_SLOW, 0, 150}; /* below the timeout: answered */
    CU_ASSERT_EQUAL(bus_write(b, 1, START + 20, 1, w), 0);
    CU_ASSERT_EQUAL(img->writes, 1);
    CU_ASSERT_EQUAL(bus_read(b, 1, START + 20, 1, r), 0);
    CU_ASSERT_EQUAL(r[0], 42);
    wf.delay_ms = 200; /* at the timeout: the TCP client would have given up */
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 2, r), -ETIMEDOUT);

    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.requests, 9);
    CU_ASSERT_EQUAL(st.ok, 2);
    CU_ASSERT_EQUAL(st.timeouts, 4 * 3); /* 4 calls x (1 + 2 retries) */
    CU_ASSERT_EQUAL(st.retries, 4 * 2);
    CU_ASSERT_EQUAL(st.exceptions_by_code[6], 2);
    CU_ASSERT_EQUAL(st.exceptions_by_code[4], 1);
    bus_close(b);
    regimage_free(img);
}

static void test_breaker_on_simulated_time(void)
{
    struct regimage *img = make_image();
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    struct bus *b = new_inproc(0, (struct breaker_config){2, 1000, 4000});
    struct wirefault wf = {WIRE_OFFLINE, 0, 0};
    CU_ASSERT_EQUAL(bus_inproc_add_unit(b, 1, img, &wf), 0);
    uint16_t r[1];
    bus_inproc_set_now(b, 5000);
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 1, r), -ETIMEDOUT);
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 1, r), -ETIMEDOUT);
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 1, r), BUS_EOPEN);
    CU_ASSERT_EQUAL(bus_breaker_state(b, 1), BREAKER_OPEN);
    /* unknown units trip their own breaker too (0x0B: nobody answers behind the gateway) */
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL(bus_exception_code(bus_read(b, 4, START, 1, r)), 0x0B);
    CU_ASSERT_EQUAL(bus_read(b, 4, START, 1, r), BUS_EOPEN);
    bus_inproc_set_now(b, 5999);
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 1, r), BUS_EOPEN);
    bus_inproc_set_now(b, 6000);
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 1, r), -ETIMEDOUT); /* the probe fails */
    bus_inproc_set_now(b, 7999);
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 1, r), BUS_EOPEN); /* now open for 2000 */
    wf.mode = WIRE_OK;
    bus_inproc_set_now(b, 8000);
    CU_ASSERT_EQUAL(bus_read(b, 1, START, 1, r), 0);
    CU_ASSERT_EQUAL(r[0], 100);
    CU_ASSERT_EQUAL(bus_breaker_state(b, 1), BREAKER_CLOSED);
    struct bus_stats st;
    bus_get_stats(b, &st);
    CU_ASSERT_EQUAL(st.breaker_opens, 3);
    CU_ASSERT_EQUAL(st.breaker_rejects, 4);
    bus_close(b);
    regimage_free(img);
}

/* ---- parity with Modbus TCP against mbserver ----------------------------------------------- */

struct server {
    struct mbserver *s;
    pthread_mutex_t lock; /* held while the server runs; taken to change a wire fault */
    pthread_t th;
    atomic_int stop;
};

static void *server_main(void *arg)
{
    struct server *sv = arg;
    while (!atomic_load(&sv->stop)) {
        pthread_mutex_lock(&sv->lock);
        mbserver_poll(sv->s, 2);
        pthread_mutex_unlock(&sv->lock);
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL); /* lets the test thread take the lock */
    }
    return NULL;
}

static int64_t sim_now;
static int64_t sim_clock(void *ctx)
{
    return sim_now;
}

struct step {
    int unit, write;
    uint16_t addr, n;
    uint16_t v0;            /* written values are v0, v0 + 1, ... */
    struct wirefault fault; /* applied to unit 1 before the call */
    int64_t advance_ms;     /* simulated time added before the call */
};

static void set_fault(struct server *sv, struct wirefault *wf, struct wirefault v)
{
    if (sv)
        pthread_mutex_lock(&sv->lock);
    *wf = v;
    if (sv)
        pthread_mutex_unlock(&sv->lock);
}

/* Runs the steps on one bus; rcs[i] and reads (concatenated) are the results. */
static void run_steps(struct bus *b, struct server *sv, struct wirefault *wf,
                      const struct step *steps, int n, int *rcs, uint16_t *reads)
{
    sim_now = 0;
    for (int i = 0; i < n; i++) {
        const struct step *s = &steps[i];
        sim_now += s->advance_ms;
        set_fault(sv, wf, s->fault);
        uint16_t buf[8] = {0};
        if (s->write) {
            for (int k = 0; k < s->n; k++)
                buf[k] = (uint16_t)(s->v0 + k);
            rcs[i] = bus_write(b, s->unit, s->addr, s->n, buf);
        } else {
            rcs[i] = bus_read(b, s->unit, s->addr, s->n, buf);
        }
        memcpy(reads + 8 * i, buf, sizeof(buf));
    }
    set_fault(sv, wf, (struct wirefault){WIRE_OK, 0, 0});
}

static void test_parity_with_tcp(void)
{
    const struct wirefault ok = {WIRE_OK, 0, 0}, dead = {WIRE_TIMEOUT, 0, 0};
    const struct step steps[] = {
        {1, 0, START, 8, 0, ok, 0},
        {1, 1, START + 20, 3, 700, ok, 0},
        {1, 0, START + 18, 6, 0, ok, 0},
        {1, 1, START + 3, 1, 1, ok, 0},         /* read-only: 2 */
        {1, 1, START + 20, 1, 9000, ok, 0},     /* validator: 3 */
        {1, 0, START + COUNT - 1, 2, 0, ok, 0}, /* past the end: 2 */
        {9, 0, START, 1, 0, ok, 0},             /* unknown unit: 0x0B */
        {1, 0, START, 2, 0, {WIRE_EXCEPTION, 6, 0}, 0},
        {1, 0, START, 2, 0, {WIRE_EXCEPTION, 200, 0}, 0},
        {1, 0, START, 2, 0, {WIRE_SLOW, 0, 10}, 0},
        {1, 1, START + 25, 2, 3, {WIRE_SLOW, 0, 10}, 0},
        {1, 0, START, 2, 0, dead, 0},
        {1, 0, START, 2, 0, dead, 10},
        {1, 0, START, 2, 0, dead, 10}, /* breaker open */
        {1, 0, START, 2, 0, ok, 500},  /* still open */
        {1, 0, START, 2, 0, ok, 500},  /* the probe: closes */
        {1, 0, START + 20, 8, 0, {WIRE_OFFLINE, 0, 0}, 0},
        {1, 0, START + 20, 8, 0, ok, 0},
    };
    enum { N = sizeof(steps) / sizeof(steps[0]) };
    const struct breaker_config br = {2, 1000, 4000};
    const struct bus_clock clk = {sim_clock, NULL, NULL};

    /* in-process */
    struct regimage *ia = make_image();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ia);
    struct wirefault wfa = ok;
    struct bus_inproc_config icfg;
    bus_inproc_config_default(&icfg);
    icfg.timeout_ms = 60;
    icfg.bus.breaker = br;
    icfg.bus.clock = clk;
    struct bus *bi = NULL;
    CU_ASSERT_EQUAL_FATAL(bus_inproc_new(&icfg, &bi), 0);
    CU_ASSERT_EQUAL(bus_inproc_add_unit(bi, 1, ia, &wfa), 0);
    int rc_i[N];
    uint16_t rd_i[8 * N];
    run_steps(bi, NULL, &wfa, steps, N, rc_i, rd_i);

    /* Modbus TCP against the simulator's server */
    struct regimage *ib = make_image();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ib);
    struct wirefault wfb = ok;
    struct server sv = {0};
    pthread_mutex_init(&sv.lock, NULL);
    sv.s = mbserver_new(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sv.s);
    mbserver_set_log(sv.s, NULL, MBSERVER_LOG_QUIET);
    int port = 0, ep = mbserver_listen(sv.s, "127.0.0.1", 0, &port);
    CU_ASSERT_FATAL(ep >= 0);
    CU_ASSERT_EQUAL(mbserver_add_unit(sv.s, ep, 1, ib, &wfb), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&sv.th, NULL, server_main, &sv), 0);
    struct bus_tcp_config tcfg;
    bus_tcp_config_default(&tcfg, "127.0.0.1", port);
    tcfg.timeout_ms = 60;
    tcfg.bus.breaker = br;
    tcfg.bus.clock = clk;
    tcfg.bus.log = quiet;
    struct bus *bt = NULL;
    CU_ASSERT_EQUAL_FATAL(bus_tcp_new(&tcfg, &bt), 0);
    int rc_t[N];
    uint16_t rd_t[8 * N];
    run_steps(bt, &sv, &wfb, steps, N, rc_t, rd_t);

    for (int i = 0; i < N; i++) {
        if (rc_i[i] != rc_t[i])
            fprintf(stderr, "step %d: inproc %d (%s), tcp %d (%s)\n", i, rc_i[i],
                    bus_strerror(rc_i[i]), rc_t[i], bus_strerror(rc_t[i]));
        CU_ASSERT_EQUAL(rc_i[i], rc_t[i]);
    }
    CU_ASSERT_EQUAL(memcmp(rd_i, rd_t, sizeof(rd_i)), 0);
    /* spot checks that the sequence meant what it says */
    CU_ASSERT_EQUAL(rc_i[0], 0);
    CU_ASSERT_EQUAL(rc_i[3], bus_exception_rc(2));
    CU_ASSERT_EQUAL(rc_i[4], bus_exception_rc(3));
    CU_ASSERT_EQUAL(rc_i[6], bus_exception_rc(11));
    CU_ASSERT_EQUAL(rc_i[8], bus_exception_rc(4));
    CU_ASSERT_EQUAL(rc_i[12], -ETIMEDOUT);
    CU_ASSERT_EQUAL(rc_i[13], BUS_EOPEN);
    CU_ASSERT_EQUAL(rc_i[14], BUS_EOPEN);
    CU_ASSERT_EQUAL(rc_i[15], 0);
    CU_ASSERT_EQUAL(rc_i[16], -ETIMEDOUT);
    CU_ASSERT_EQUAL(rd_i[8 * 17 + 0], 700);
    CU_ASSERT_EQUAL(rd_i[8 * 17 + 6], 4);

    struct bus_stats si, stt;
    bus_get_stats(bi, &si);
    bus_get_stats(bt, &stt);
    CU_ASSERT_EQUAL(si.requests, stt.requests);
    CU_ASSERT_EQUAL(si.ok, stt.ok);
    CU_ASSERT_EQUAL(si.timeouts, stt.timeouts);
    CU_ASSERT_EQUAL(si.retries, stt.retries);
    CU_ASSERT_EQUAL(si.exceptions, stt.exceptions);
    CU_ASSERT_EQUAL(
        memcmp(si.exceptions_by_code, stt.exceptions_by_code, sizeof(si.exceptions_by_code)), 0);
    CU_ASSERT_EQUAL(si.breaker_opens, stt.breaker_opens);
    CU_ASSERT_EQUAL(si.breaker_rejects, stt.breaker_rejects);

    bus_close(bt);
    atomic_store(&sv.stop, 1);
    pthread_join(sv.th, NULL);
    CU_ASSERT_EQUAL(memcmp(regimage_regs(ia), regimage_regs(ib), COUNT * sizeof(uint16_t)), 0);
    CU_ASSERT_EQUAL(ia->writes, ib->writes);
    CU_ASSERT_EQUAL(ia->writes, 2);
    mbserver_free(sv.s);
    pthread_mutex_destroy(&sv.lock);
    bus_close(bi);
    regimage_free(ia);
    regimage_free(ib);
}

void test_register_bus_inproc(void)
{
    CU_pSuite s = CU_add_suite("bus_inproc", NULL, NULL);
    CU_add_test(s, "round trip and writes counter", test_round_trip_and_writes_counter);
    CU_add_test(s, "exception codes as the server's", test_exceptions_as_the_server);
    CU_add_test(s, "wire faults, no sleeping", test_wire_faults);
    CU_add_test(s, "breaker on simulated time", test_breaker_on_simulated_time);
    CU_add_test(s, "parity with Modbus TCP against mbserver", test_parity_with_tcp);
}
