/* bench_lockstep: lockstep ticks per second of the reference site (der-sim run) over Modbus
 * TCP and in-process, next to the Modbus transactions per tick and the bare transaction cost
 * of libmodbus measured in the same run, on the same (pinned) CPU. Issue 3 targets: tcp at
 * least 5,000 ticks/s and within 1.5x of bare cost x transactions per tick; inproc at least
 * 200,000 ticks/s. A missed target prints a MISS line and makes the exit status 3 (bench.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <modbus.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reports/measure.h"
#include "sim/run/runner.h"
#include "sim/scenario/scenario.h"
#include "tests/bench/bench.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct bare {
    int listen_fd, port;
    modbus_mapping_t *map;
};

static void *bare_server(void *arg)
{
    struct bare *b = arg;
    modbus_t *ctx = modbus_new_tcp("127.0.0.1", b->port);
    int fd = modbus_tcp_accept(ctx, &b->listen_fd);
    uint8_t q[MODBUS_TCP_MAX_ADU_LENGTH];
    for (;;) {
        int n = modbus_receive(ctx, q);
        if (n < 0)
            break;
        if (n > 0)
            modbus_reply(ctx, q, n, b->map);
    }
    if (fd >= 0)
        close(fd);
    modbus_free(ctx);
    return NULL;
}

/* The cost of one synchronous 10-register read, client and server threads on one CPU. */
static double bare_us(int n)
{
    struct bare b = {.port = 15000 + (int)(getpid() % 20000)};
    b.map = modbus_mapping_new(0, 0, 100, 0);
    modbus_t *srv = modbus_new_tcp("127.0.0.1", b.port);
    b.listen_fd = modbus_tcp_listen(srv, 1);
    if (b.listen_fd < 0) {
        fprintf(stderr, "bench_lockstep: listen on %d: %s\n", b.port, modbus_strerror(errno));
        return -1;
    }
    pthread_t t;
    pthread_create(&t, NULL, bare_server, &b);
    modbus_t *c = modbus_new_tcp("127.0.0.1", b.port);
    uint16_t regs[10];
    if (modbus_connect(c) != 0) {
        fprintf(stderr, "bench_lockstep: connect: %s\n", modbus_strerror(errno));
        return -1;
    }
    for (int i = 0; i < 500; i++)
        modbus_read_registers(c, 0, 10, regs);
    double t0 = now_s();
    for (int i = 0; i < n; i++)
        modbus_read_registers(c, 0, 10, regs);
    double us = (now_s() - t0) / n * 1e6;
    modbus_close(c);
    modbus_free(c);
    pthread_join(t, NULL);
    close(b.listen_fd);
    modbus_free(srv);
    modbus_mapping_free(b.map);
    return us;
}

static int run(const char *label, enum runner_transport tr, const char *duration,
               struct runner_result *res)
{
    char set[64], err[1024], dir[] = "/tmp/derloop-bench-XXXXXX";
    snprintf(set, sizeof set, "duration=\"%s\"", duration);
    const char *sets[] = {set};
    struct scenario *sc;
    if (scenario_load("scenarios/reference-site.json", sets, 1, &sc, err, sizeof err) != 0) {
        fprintf(stderr, "bench_lockstep: %s\n", err);
        return -1;
    }
    if (!mkdtemp(dir))
        return -1;
    /* measured as der-sim run measures it (KPIs and the optimum, no plot data) */
    struct measure *m = measure_new(sc, &(struct measure_opts){0}, err, sizeof err);
    struct runner_opts o = {.transport = tr, .out_dir = dir};
    int rc = -ENOMEM;
    if (m) {
        o.observer = measure_observer(m);
        rc = runner_run(sc, &o, res, err, sizeof err);
    }
    measure_free(m);
    scenario_free(sc);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench_lockstep: could not remove %s\n", dir);
    if (rc) {
        fprintf(stderr, "bench_lockstep: %s\n", err);
        return -1;
    }
    printf("%-8s %-6s ticks=%-6lld %7.3f s  %9.0f ticks/s  %.2f transactions/tick\n", label,
           duration, (long long)res->ticks, res->wall_s, res->ticks / res->wall_s,
           (double)res->transactions / (double)res->ticks);
    return 0;
}

int main(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(sched_getcpu(), &set);
    sched_setaffinity(0, sizeof set, &set); /* as der-sim run does for tcp */
    struct runner_result in, tcp;
    if (run("inproc", RUNNER_INPROC, "1d", &in) || run("tcp", RUNNER_TCP, "2h", &tcp))
        return 1;
    double bare = bare_us(20000);
    double per_tick = (double)tcp.transactions / (double)tcp.ticks;
    double tick_us = tcp.wall_s / tcp.ticks * 1e6;
    printf("bare libmodbus transaction (10 registers, one CPU): %.1f us\n", bare);
    printf("tcp tick: %.1f us = %.2fx bare cost x transactions per tick (%.1f us)\n", tick_us,
           tick_us / (bare * per_tick), bare * per_tick);
    bench_target("bench_lockstep", "tcp ticks/s", tcp.ticks / tcp.wall_s, "ticks/s", ">=", 5000);
    bench_target("bench_lockstep", "tcp tick / (bare cost x transactions per tick)",
                 tick_us / (bare * per_tick), "x", "<=", 1.5);
    bench_target("bench_lockstep", "inproc ticks/s", in.ticks / in.wall_s, "ticks/s", ">=", 200000);
    return bench_exit(0);
}
