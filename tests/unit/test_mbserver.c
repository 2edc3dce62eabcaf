/* Unit tests for sim/wire/mbserver.c: a server on 127.0.0.1 (any free port) in its own thread,
 * libmodbus clients and raw sockets in the test thread. Unit 1 is a 100-register image at
 * 40000 with registers 40010..40019 writable and a validator refusing values over 1000;
 * unit 2 is a read-only image at 0; unit 1's wire fault is set per test. */
#include <CUnit/CUnit.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sim/wire/mbserver.h"
#include "common/rtclock.h"

static struct {
    struct mbserver *s;
    pthread_t th;
    volatile int stop;
    int port, port2;
    struct regimage *img1, *img2, *img3;
    struct wirefault wf1;
} T;

static int refuse_over_1000(void *ctx, uint16_t addr, uint16_t n, const uint16_t *v)
{
    for (uint16_t i = 0; i < n; i++)
        if (v[i] > 1000)
            return 3;
    return 0;
}

static void *serve_thread(void *arg)
{
    while (!T.stop)
        if (mbserver_poll(T.s, 5) < 0)
            break;
    return NULL;
}

static int suite_init_backend(enum mbserver_backend b)
{
    memset(&T, 0, sizeof(T));
    T.s = mbserver_new_backend(NULL, b);
    if (!T.s)
        return -1;
    mbserver_set_log(T.s, NULL, MBSERVER_LOG_QUIET);
    T.img1 = regimage_new(40000, 100);
    T.img2 = regimage_new(0, 50);
    T.img3 = regimage_new(40000, 10);
    if (!T.img1 || !T.img2 || !T.img3)
        return -1;
    for (int i = 0; i < 100; i++)
        regimage_regs(T.img1)[i] = (uint16_t)(1000 + i);
    for (int i = 0; i < 50; i++)
        regimage_regs(T.img2)[i] = (uint16_t)(7 * i);
    for (int i = 10; i < 20; i++)
        T.img1->writable[i] = 1;
    T.img1->validate = refuse_over_1000;
    int ep = mbserver_listen(T.s, "127.0.0.1", 0, &T.port);
    int ep2 = mbserver_listen(T.s, "127.0.0.1", 0, &T.port2);
    if (ep < 0 || ep2 < 0 || T.port <= 0 || T.port == T.port2)
        return -1;
    if (mbserver_add_unit(T.s, ep, 1, T.img1, &T.wf1) ||
        mbserver_add_unit(T.s, ep, 2, T.img2, NULL) || mbserver_add_unit(T.s, ep2, 1, T.img3, NULL))
        return -1;
    if (mbserver_add_unit(T.s, ep, 2, T.img2, NULL) != -EEXIST)
        return -1;
    T.stop = 0;
    return pthread_create(&T.th, NULL, serve_thread, NULL) ? -1 : 0;
}

static int suite_init_epoll(void)
{
    return suite_init_backend(MBSERVER_EPOLL);
}

static int suite_init_poll(void)
{
    return suite_init_backend(MBSERVER_POLL);
}

static int suite_clean(void)
{
    T.stop = 1;
    pthread_join(T.th, NULL);
    mbserver_free(T.s);
    regimage_free(T.img1);
    regimage_free(T.img2);
    regimage_free(T.img3);
    return 0;
}

static void wire_ok(void)
{
    T.wf1 = (struct wirefault){.mode = WIRE_OK};
}

static modbus_t *client_timeout(int port, int unit, int timeout_ms)
{
    modbus_t *c = modbus_new_tcp("127.0.0.1", port);
    if (!c)
        return NULL;
    modbus_set_slave(c, unit);
    modbus_set_response_timeout(c, timeout_ms / 1000, (timeout_ms % 1000) * 1000);
    if (modbus_connect(c) < 0) {
        modbus_free(c);
        return NULL;
    }
    return c;
}

static modbus_t *client(int unit)
{
    return client_timeout(T.port, unit, 2000);
}

static void client_free(modbus_t *c)
{
    if (!c)
        return;
    modbus_close(c);
    modbus_free(c);
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads one MBAP frame within timeout_ms. Returns its length, 0 on EOF, -1 on timeout. */
static int raw_read_frame(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
    size_t got = 0;
    int64_t end = rtclock_monotonic_ms() + timeout_ms;
    for (;;) {
        if (got >= 7 && got >= 6u + (size_t)(buf[4] << 8 | buf[5]))
            return (int)got;
        int64_t left = end - rtclock_monotonic_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            return -1;
        ssize_t n = read(fd, buf + got, cap - got);
        if (n <= 0)
            return n == 0 ? 0 : -1;
        got += (size_t)n;
    }
}

/* Sends a raw request and returns the exception code of the answer (0 = normal reply, -1 =
 * no answer). */
static int raw_exception(int port, const uint8_t *req, size_t len)
{
    int fd = raw_connect(port);
    if (fd < 0)
        return -2;
    uint8_t rsp[300];
    int rc = -1;
    if (write(fd, req, len) == (ssize_t)len) {
        int n = raw_read_frame(fd, rsp, sizeof(rsp), 1000);
        if (n >= 9)
            rc = (rsp[7] & 0x80) ? rsp[8] : 0;
    }
    close(fd);
    return rc;
}

static void test_read_block(void)
{
    wire_ok();
    modbus_t *c = client(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    uint16_t r[125];
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40000, 10, r), 10);
    for (int i = 0; i < 10; i++)
        CU_ASSERT_EQUAL(r[i], 1000 + i);
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40050, 50, r), 50);
    CU_ASSERT_EQUAL(r[49], 1099);
    /* FC04 reads the same holding image. */
    CU_ASSERT_EQUAL(modbus_read_input_registers(c, 40005, 3, r), 3);
    CU_ASSERT_EQUAL(r[0], 1005);
    modbus_set_slave(c, 2);
    CU_ASSERT_EQUAL(modbus_read_registers(c, 0, 50, r), 50);
    CU_ASSERT_EQUAL(r[49], 7 * 49);
    client_free(c);

    /* The second endpoint has its own unit 1. */
    c = client_timeout(T.port2, 1, 2000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40000, 10, r), 10);
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40000, 11, r), -1);
    CU_ASSERT_EQUAL(errno, EMBXILADD);
    client_free(c);
}

static void test_writes(void)
{
    wire_ok();
    modbus_t *c = client(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    uint64_t w0 = T.img1->writes;
    CU_ASSERT_EQUAL(modbus_write_register(c, 40010, 555), 1);
    uint16_t r[10];
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40010, 1, r), 1);
    CU_ASSERT_EQUAL(r[0], 555);
    uint16_t v[5] = {1, 2, 3, 4, 5};
    CU_ASSERT_EQUAL(modbus_write_registers(c, 40015, 5, v), 5);
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40014, 6, r), 6);
    CU_ASSERT_EQUAL(r[0], 1000 + 14);
    CU_ASSERT_EQUAL(r[1], 1);
    CU_ASSERT_EQUAL(r[5], 5);
    CU_ASSERT_EQUAL(T.img1->writes, w0 + 2);

    /* Read-only register: exception 2, image unchanged, not counted. */
    CU_ASSERT_EQUAL(modbus_write_register(c, 40009, 1), -1);
    CU_ASSERT_EQUAL(errno, EMBXILADD);
    CU_ASSERT_EQUAL(modbus_write_registers(c, 40018, 3, v), -1); /* ends on read-only 40020 */
    CU_ASSERT_EQUAL(errno, EMBXILADD);
    /* Refused by the validator: exception 3. */
    CU_ASSERT_EQUAL(modbus_write_register(c, 40011, 1001), -1);
    CU_ASSERT_EQUAL(errno, EMBXILVAL);
    uint16_t bad[2] = {10, 5000};
    CU_ASSERT_EQUAL(modbus_write_registers(c, 40011, 2, bad), -1);
    CU_ASSERT_EQUAL(errno, EMBXILVAL);
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40009, 3, r), 3);
    CU_ASSERT_EQUAL(r[0], 1009);
    CU_ASSERT_EQUAL(r[1], 555);
    CU_ASSERT_EQUAL(r[2], 1011);
    CU_ASSERT_EQUAL(T.img1->writes, w0 + 2);
    client_free(c);
}

static void test_exceptions(void)
{
    wire_ok();
    modbus_t *c = client(9); /* no such unit */
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    uint16_t r[10];
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40000, 1, r), -1);
    CU_ASSERT_EQUAL(errno, EMBXGTAR);
    client_free(c);

    /* Out of the image: exception 2. */
    c = client(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40095, 10, r), -1);
    CU_ASSERT_EQUAL(errno, EMBXILADD);
    CU_ASSERT_EQUAL(modbus_read_registers(c, 0, 1, r), -1);
    CU_ASSERT_EQUAL(errno, EMBXILADD);
    client_free(c);

    /* Function 0x07 (read exception status), 0x2B, 0x01: exception 1, answered at once. */
    const uint8_t fc07[] = {0, 1, 0, 0, 0, 2, 1, 0x07};
    int64_t t0 = rtclock_monotonic_ms();
    CU_ASSERT_EQUAL(raw_exception(T.port, fc07, sizeof(fc07)), 1);
    CU_ASSERT(rtclock_monotonic_ms() - t0 < 200);
    const uint8_t fc2b[] = {0, 2, 0, 0, 0, 5, 1, 0x2B, 0x0E, 1, 0};
    CU_ASSERT_EQUAL(raw_exception(T.port, fc2b, sizeof(fc2b)), 1);
    const uint8_t fc01[] = {0, 3, 0, 0, 0, 6, 1, 0x01, 0, 0, 0, 8};
    CU_ASSERT_EQUAL(raw_exception(T.port, fc01, sizeof(fc01)), 1);
    /* 126 registers: illegal quantity is exception 3 (application protocol 6.3). */
    const uint8_t q126[] = {0, 4, 0, 0, 0, 6, 1, 0x03, 0x9C, 0x40, 0, 126};
    t0 = rtclock_monotonic_ms();
    CU_ASSERT_EQUAL(raw_exception(T.port, q126, sizeof(q126)), 3);
    CU_ASSERT(rtclock_monotonic_ms() - t0 < 200);
    const uint8_t q0[] = {0, 5, 0, 0, 0, 6, 1, 0x03, 0x9C, 0x40, 0, 0};
    CU_ASSERT_EQUAL(raw_exception(T.port, q0, sizeof(q0)), 3);
    /* FC16 whose byte count disagrees with the quantity. */
    const uint8_t bc[] = {0, 6, 0, 0, 0, 9, 1, 0x10, 0x9C, 0x4A, 0, 2, 3, 0, 1, 0};
    CU_ASSERT_EQUAL(raw_exception(T.port, bc, sizeof(bc)), 3);
    /* FC03 with a truncated PDU. */
    const uint8_t shortpdu[] = {0, 7, 0, 0, 0, 4, 1, 0x03, 0x9C, 0x40};
    CU_ASSERT_EQUAL(raw_exception(T.port, shortpdu, sizeof(shortpdu)), 3);
    /* 125 registers is a legal quantity, but the image has 100: exception 2. */
    const uint8_t good[] = {0, 8, 0, 0, 0, 6, 1, 0x03, 0x9C, 0x40, 0, 125};
    CU_ASSERT_EQUAL(raw_exception(T.port, good, sizeof(good)), 2);
    /* A good raw read answers normally. */
    const uint8_t good2[] = {0, 8, 0, 0, 0, 6, 1, 0x03, 0x9C, 0x40, 0, 100};
    CU_ASSERT_EQUAL(raw_exception(T.port, good2, sizeof(good2)), 0);
}

/* Function codes with the high bit set (0x80..0xFF) are answered exception 1 with the
 * request's own function byte (fc | 0x80 == fc), a well-formed 9-byte frame: libmodbus's
 * formatter wrapped the byte (0x83 was answered 03 01, read as a normal reply). */
static void test_high_function_codes(void)
{
    wire_ok();
    int fd = raw_connect(T.port);
    CU_ASSERT_FATAL(fd >= 0);
    static const uint8_t fcs[] = {0x80, 0x83, 0x90, 0xAB, 0xFF, 0x7F, 0x00};
    for (size_t i = 0; i < sizeof(fcs); i++) {
        uint8_t req[] = {0x42, (uint8_t)i, 0, 0, 0, 6, 1, fcs[i], 0x9C, 0x40, 0, 1};
        CU_ASSERT_EQUAL_FATAL(write(fd, req, sizeof(req)), (ssize_t)sizeof(req));
        uint8_t b[300];
        CU_ASSERT_EQUAL_FATAL(raw_read_frame(fd, b, sizeof(b), 1000), 9);
        CU_ASSERT_EQUAL(b[0], 0x42);
        CU_ASSERT_EQUAL(b[1], i);
        CU_ASSERT_EQUAL(b[5], 3);
        CU_ASSERT_EQUAL(b[6], 1);
        CU_ASSERT_EQUAL(b[7], fcs[i] | 0x80);
        CU_ASSERT_EQUAL(b[8], 1); /* ILLEGAL FUNCTION */
    }
    /* The connection still serves a good request afterwards. */
    const uint8_t good[] = {0, 9, 0, 0, 0, 6, 1, 0x03, 0x9C, 0x40, 0, 1};
    CU_ASSERT_EQUAL(write(fd, good, sizeof(good)), (ssize_t)sizeof(good));
    uint8_t b[64];
    CU_ASSERT_EQUAL(raw_read_frame(fd, b, sizeof(b), 1000), 11);
    CU_ASSERT_EQUAL(b[7], 0x03);
    close(fd);
}

/* Garbage and a bad protocol id close that client only. */
static void test_bad_frames(void)
{
    wire_ok();
    modbus_t *other = client(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(other);
    struct mbserver_stats st0, st1;
    mbserver_get_stats(T.s, &st0);
    const char *garbage[] = {"GET / HTTP/1.1\r\n\r\n",
                             "\x00\x01\x00\x07\x00\x06\x01\x03\x9c\x40\x00\x01",
                             "\x00\x01\x00\x00\x00\x00\x01", "\x00\x01\x00\x00\xff\xff\x01\x03"};
    const size_t glen[] = {18, 12, 7, 8};
    for (int i = 0; i < 4; i++) {
        int fd = raw_connect(T.port);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_EQUAL(write(fd, garbage[i], glen[i]), (ssize_t)glen[i]);
        uint8_t b[300];
        CU_ASSERT_EQUAL(raw_read_frame(fd, b, sizeof(b), 1000), 0); /* closed by the server */
        close(fd);
        uint16_t r[4];
        CU_ASSERT_EQUAL(modbus_read_registers(other, 40000, 4, r), 4);
    }
    mbserver_get_stats(T.s, &st1);
    CU_ASSERT_EQUAL(st1.bad_frames - st0.bad_frames, 4);
    client_free(other);
}

/* Half a frame holds nobody but its sender; completing it later gets the reply, and two frames
 * in one write get two replies. */
static void test_partial_and_pipelined(void)
{
    wire_ok();
    int fd = raw_connect(T.port);
    CU_ASSERT_FATAL(fd >= 0);
    const uint8_t req[] = {0x12, 0x34, 0, 0, 0, 6, 1, 0x03, 0x9C, 0x41, 0, 2};
    CU_ASSERT_EQUAL(write(fd, req, 5), 5);
    modbus_t *c = client(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    uint16_t r[4];
    int64_t t0 = rtclock_monotonic_ms();
    for (int i = 0; i < 20; i++)
        CU_ASSERT_EQUAL(modbus_read_registers(c, 40000, 4, r), 4);
    CU_ASSERT(rtclock_monotonic_ms() - t0 < 500);
    client_free(c);
    CU_ASSERT_EQUAL(write(fd, req + 5, sizeof(req) - 5), (ssize_t)(sizeof(req) - 5));
    uint8_t b[300];
    CU_ASSERT_EQUAL_FATAL(raw_read_frame(fd, b, sizeof(b), 1000), 13);
    CU_ASSERT_EQUAL(b[0], 0x12);
    CU_ASSERT_EQUAL(b[1], 0x34);
    CU_ASSERT_EQUAL(b[8], 4);
    CU_ASSERT_EQUAL(b[9] << 8 | b[10], 1001);

    uint8_t two[24];
    memcpy(two, req, 12);
    memcpy(two + 12, req, 12);
    two[13] = 0x35;
    CU_ASSERT_EQUAL(write(fd, two, sizeof(two)), (ssize_t)sizeof(two));
    CU_ASSERT_EQUAL(raw_read_frame(fd, b, 13, 1000), 13);
    CU_ASSERT_EQUAL(b[1], 0x34);
    CU_ASSERT_EQUAL(raw_read_frame(fd, b, 13, 1000), 13);
    CU_ASSERT_EQUAL(b[1], 0x35);
    close(fd);
}

static void test_fault_timeout_offline(void)
{
    enum wire_mode modes[] = {WIRE_TIMEOUT, WIRE_OFFLINE};
    for (int i = 0; i < 2; i++) {
        T.wf1 = (struct wirefault){.mode = modes[i]};
        modbus_t *c = client_timeout(T.port, 1, 200);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        uint16_t r[4];
        CU_ASSERT_EQUAL(modbus_read_registers(c, 40000, 4, r), -1);
        CU_ASSERT_EQUAL(errno, ETIMEDOUT);
        /* Unit 2 on the same connection still answers. */
        modbus_set_slave(c, 2);
        CU_ASSERT_EQUAL(modbus_read_registers(c, 0, 4, r), 4);
        wire_ok();
        modbus_set_slave(c, 1);
        CU_ASSERT_EQUAL(modbus_read_registers(c, 40000, 4, r), 4);
        client_free(c);
    }
}

static void test_fault_exception(void)
{
    T.wf1 = (struct wirefault){.mode = WIRE_EXCEPTION, .code = 4};
    modbus_t *c = client(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    uint16_t r[4];
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40000, 4, r), -1);
    CU_ASSERT_EQUAL(errno, EMBXSFAIL);
    T.wf1.code = 6;
    CU_ASSERT_EQUAL(modbus_write_register(c, 40010, 1), -1);
    CU_ASSERT_EQUAL(errno, EMBXSBUSY);
    wire_ok();
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40000, 4, r), 4);
    client_free(c);
}

/* A slow unit answers after its delay, in order, and never holds up other clients. */
static void test_fault_slow(void)
{
    T.wf1 = (struct wirefault){.mode = WIRE_SLOW, .delay_ms = 300};
    int fd = raw_connect(T.port);
    CU_ASSERT_FATAL(fd >= 0);
    uint8_t two[24] = {0, 1, 0, 0, 0, 6, 1, 0x03, 0x9C, 0x40, 0, 1,
                       0, 2, 0, 0, 0, 6, 1, 0x03, 0x9C, 0x41, 0, 1};
    int64_t t0 = rtclock_monotonic_ms();
    CU_ASSERT_EQUAL(write(fd, two, sizeof(two)), (ssize_t)sizeof(two));

    modbus_t *c = client(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    uint16_t r[4];
    CU_ASSERT_EQUAL(modbus_read_registers(c, 0, 4, r), 4);
    CU_ASSERT(rtclock_monotonic_ms() - t0 < 150);
    client_free(c);

    uint8_t b[64];
    CU_ASSERT_EQUAL_FATAL(raw_read_frame(fd, b, 11, 2000), 11);
    int64_t t1 = rtclock_monotonic_ms() - t0;
    CU_ASSERT(t1 >= 295 && t1 < 600);
    CU_ASSERT_EQUAL(b[1], 1);
    CU_ASSERT_EQUAL(b[9] << 8 | b[10], 1000);
    CU_ASSERT_EQUAL_FATAL(raw_read_frame(fd, b, 11, 2000), 11);
    int64_t t2 = rtclock_monotonic_ms() - t0;
    CU_ASSERT(t2 >= 595 && t2 < 1000); /* the second waited its own delay after the first */
    CU_ASSERT_EQUAL(b[1], 2);
    CU_ASSERT_EQUAL(b[9] << 8 | b[10], 1001);
    close(fd);

    /* libmodbus client with a longer timeout sees the slow reply as a normal one. */
    T.wf1.delay_ms = 100;
    c = client(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    t0 = rtclock_monotonic_ms();
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40000, 4, r), 4);
    CU_ASSERT(rtclock_monotonic_ms() - t0 >= 95);
    client_free(c);
    wire_ok();
}

/* A client that goes away while its slow reply waits is closed cleanly. */
static void test_slow_then_disconnect(void)
{
    T.wf1 = (struct wirefault){.mode = WIRE_SLOW, .delay_ms = 100};
    int fd = raw_connect(T.port);
    CU_ASSERT_FATAL(fd >= 0);
    const uint8_t req[] = {0, 1, 0, 0, 0, 6, 1, 0x03, 0x9C, 0x40, 0, 1};
    CU_ASSERT_EQUAL(write(fd, req, sizeof(req)), (ssize_t)sizeof(req));
    close(fd);
    struct timespec ts = {0, 250 * 1000000L};
    nanosleep(&ts, NULL);
    wire_ok();
    modbus_t *c = client(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    uint16_t r[1];
    CU_ASSERT_EQUAL(modbus_read_registers(c, 40000, 1, r), 1);
    client_free(c);
}

static void test_many_clients(void)
{
    wire_ok();
    enum { N = 64 };
    modbus_t *c[N];
    struct mbserver_stats st0, st1;
    mbserver_get_stats(T.s, &st0);
    for (int i = 0; i < N; i++) {
        c[i] = client(1 + (i & 1));
        CU_ASSERT_PTR_NOT_NULL_FATAL(c[i]);
    }
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N; i++) {
            uint16_t r[10];
            int addr = (i & 1) ? 0 : 40000;
            CU_ASSERT_EQUAL(modbus_read_registers(c[i], addr, 10, r), 10);
            CU_ASSERT_EQUAL(r[1], (i & 1) ? 7 : 1001);
        }
    CU_ASSERT(mbserver_n_clients(T.s) >= N);
    for (int i = 0; i < N; i++)
        client_free(c[i]);
    /* The server thread counts a reply after sending it, so the last count may trail the
     * client's receipt by a moment: wait for it (bounded) instead of racing it. */
    int64_t until = rtclock_monotonic_ms() + 2000;
    do {
        mbserver_get_stats(T.s, &st1);
        if (st1.replies - st0.replies >= 3 * N)
            break;
        struct timespec ts = {0, 5 * 1000000L};
        nanosleep(&ts, NULL);
    } while (rtclock_monotonic_ms() < until);
    CU_ASSERT_EQUAL(st1.clients_accepted - st0.clients_accepted, N);
    CU_ASSERT(st1.replies - st0.replies >= 3 * N);
}

/* The server's bookkeeping with a fake clock and no thread: a slow reply is due only when the
 * injected clock says so. */
static int64_t fake_now(void *ctx)
{
    return *(int64_t *)ctx;
}

static void test_injected_clock(void)
{
    int64_t now = 1000;
    struct mbserver_clock clk = {fake_now, &now};
    struct mbserver *s = mbserver_new(&clk);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    mbserver_set_log(s, NULL, MBSERVER_LOG_QUIET);
    struct regimage *img = regimage_new(100, 10);
    struct wirefault wf = {.mode = WIRE_SLOW, .delay_ms = 5000};
    int port = 0;
    int ep = mbserver_listen(s, "127.0.0.1", 0, &port);
    CU_ASSERT_FATAL(ep >= 0);
    CU_ASSERT_EQUAL(mbserver_add_unit(s, ep, 3, img, &wf), 0);
    CU_ASSERT_EQUAL(mbserver_add_unit(s, ep + 1, 3, img, &wf), -EINVAL);
    CU_ASSERT_EQUAL(mbserver_add_unit(s, ep, 256, img, &wf), -EINVAL);
    int fd = raw_connect(port);
    CU_ASSERT_FATAL(fd >= 0);
    const uint8_t req[] = {0, 1, 0, 0, 0, 6, 3, 0x03, 0, 100, 0, 1};
    CU_ASSERT_EQUAL(write(fd, req, sizeof(req)), (ssize_t)sizeof(req));
    int handled = 0;
    for (int i = 0; i < 20 && handled == 0; i++) {
        int rc = mbserver_poll(s, 20);
        CU_ASSERT(rc >= 0);
        handled += rc;
    }
    CU_ASSERT_EQUAL(handled, 1);
    uint8_t b[64];
    CU_ASSERT_EQUAL(raw_read_frame(fd, b, sizeof(b), 50), -1); /* not due: fake time stands */
    now += 4999;
    mbserver_poll(s, 0);
    CU_ASSERT_EQUAL(raw_read_frame(fd, b, sizeof(b), 50), -1);
    now += 1;
    mbserver_poll(s, 0);
    CU_ASSERT_EQUAL(raw_read_frame(fd, b, sizeof(b), 500), 11);
    struct mbserver_stats st;
    mbserver_get_stats(s, &st);
    CU_ASSERT_EQUAL(st.requests, 1);
    CU_ASSERT_EQUAL(st.replies, 1);
    close(fd);
    for (int i = 0; i < 5 && mbserver_n_clients(s); i++)
        mbserver_poll(s, 20);
    CU_ASSERT_EQUAL(mbserver_n_clients(s), 0);
    mbserver_free(s);
    regimage_free(img);
}

/* The request checks as pure functions (what tests/fuzz drives). */
static void test_pure_checks(void)
{
    const uint8_t good[] = {0, 1, 0, 0, 0, 6, 1, 0x03, 0, 10, 0, 2};
    CU_ASSERT_EQUAL(mbserver_frame_len(good, 6), 0);
    CU_ASSERT_EQUAL(mbserver_frame_len(good, 11), 0);
    CU_ASSERT_EQUAL(mbserver_frame_len(good, 12), 12);
    CU_ASSERT_EQUAL(mbserver_frame_len(good, 40), 12);
    const uint8_t proto1[] = {0, 1, 0, 1, 0, 6, 1};
    const uint8_t len1[] = {0, 1, 0, 0, 0, 1, 1};
    const uint8_t len255[] = {0, 1, 0, 0, 0, 255, 1};
    CU_ASSERT_EQUAL(mbserver_frame_len(proto1, 7), -EPROTO);
    CU_ASSERT_EQUAL(mbserver_frame_len(len1, 7), -EPROTO);
    CU_ASSERT_EQUAL(mbserver_frame_len(len255, 7), -EPROTO);

    struct regimage *img = regimage_new(0, 20);
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    img->writable[5] = 1;
    CU_ASSERT_EQUAL(mbserver_check_request(img, good, 12), 0);
    uint8_t f[] = {0, 1, 0, 0, 0, 6, 1, 0x83, 0, 10, 0, 2};
    CU_ASSERT_EQUAL(mbserver_check_request(img, f, 12), 1);
    f[7] = 0xFF;
    CU_ASSERT_EQUAL(mbserver_check_request(img, f, 12), 1);
    f[7] = 0x06; /* write 2 to register 10: read-only */
    CU_ASSERT_EQUAL(mbserver_check_request(img, f, 12), 2);
    f[9] = 5;
    CU_ASSERT_EQUAL(mbserver_check_request(img, f, 12), 0);
    CU_ASSERT_EQUAL(mbserver_check_request(img, f, 11), 3); /* short PDU */
    CU_ASSERT_EQUAL(img->writes, 0);                        /* checks never write */

    uint8_t out[MBSERVER_EXC_LEN];
    f[0] = 0xAB;
    f[7] = 0x83;
    CU_ASSERT_EQUAL(mbserver_format_exception(f, 1, out), 9);
    const uint8_t want[] = {0xAB, 1, 0, 0, 0, 3, 1, 0x83, 1};
    CU_ASSERT_EQUAL(memcmp(out, want, 9), 0);
    f[7] = 0x03;
    mbserver_format_exception(f, 99, out); /* odd code: server failure */
    CU_ASSERT_EQUAL(out[7], 0x83);
    CU_ASSERT_EQUAL(out[8], 4);
    regimage_free(img);
}

void test_register_mbserver(void)
{
    /* The same tests over both readiness backends. */
    static const struct {
        const char *name;
        int (*init)(void);
    } suites[] = {{"mbserver_epoll", suite_init_epoll}, {"mbserver_poll", suite_init_poll}};
    for (size_t i = 0; i < 2; i++) {
        CU_pSuite s = CU_add_suite(suites[i].name, suites[i].init, suite_clean);
        CU_add_test(s, "read a block", test_read_block);
        CU_add_test(s, "writes FC06 FC16, read-only and validator", test_writes);
        CU_add_test(s, "exceptions 1 2 3 0x0B", test_exceptions);
        CU_add_test(s, "function codes 0x80..0xFF: exception 1", test_high_function_codes);
        CU_add_test(s, "bad frames close that client only", test_bad_frames);
        CU_add_test(s, "partial and pipelined frames", test_partial_and_pipelined);
        CU_add_test(s, "fault timeout and offline", test_fault_timeout_offline);
        CU_add_test(s, "fault exception", test_fault_exception);
        CU_add_test(s, "fault slow", test_fault_slow);
        CU_add_test(s, "slow reply then disconnect", test_slow_then_disconnect);
        CU_add_test(s, "many clients", test_many_clients);
    }
    CU_pSuite s2 = CU_add_suite("mbserver_clock", NULL, NULL);
    CU_add_test(s2, "injected clock", test_injected_clock);
    CU_add_test(s2, "request checks as pure functions", test_pure_checks);
}
