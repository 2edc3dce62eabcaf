/* Unit tests for headend/events.c: the hello, parking, the site filter, Last-Event-ID resume,
 * a slow reader dropped with "reset", the cap, the end at close. The transport's hooks only
 * count here. (The module's thread may add a "sites" event at any time: checks look for what
 * must be there, or must not, in what a stream reads.) */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "headend/events.h"

static int suspended, resumed;
static void on_suspend(void *conn)
{
    (void)conn;
    __atomic_add_fetch(&suspended, 1, __ATOMIC_SEQ_CST);
}
static void on_resume(void *conn)
{
    (void)conn;
    __atomic_add_fetch(&resumed, 1, __ATOMIC_SEQ_CST);
}

/* Everything the stream has now, small reads at a time; *last the final read's result. */
static char *drain(struct events_stream *s, ssize_t *last)
{
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    char buf[100];
    ssize_t n;
    while ((n = events_read(s, buf, sizeof buf)) > 0) {
        if (len + (size_t)n + 1 > cap) {
            char *nb = realloc(out, cap *= 2);
            CU_ASSERT_FATAL(nb != NULL);
            out = nb;
        }
        memcpy(out + len, buf, (size_t)n);
        len += (size_t)n;
    }
    out[len] = 0;
    *last = n;
    return out;
}

static void test_stream(void)
{
    struct events *ev;
    CU_ASSERT_EQUAL_FATAL(events_new(3, 2, on_suspend, on_resume, &ev), 0);
    struct events_stream *a, *b, *c;
    CU_ASSERT_EQUAL(events_open(ev, SIZE_MAX, NULL, 300, &a, &a), 0);
    CU_ASSERT_EQUAL(events_open(ev, 1, "junk", 300, &b, &b), 0);
    CU_ASSERT_EQUAL(events_open(ev, 2, NULL, 300, &c, &c), -EBUSY); /* the cap */
    ssize_t last;
    int s0 = suspended;
    char *t = drain(a, &last);
    CU_ASSERT(!strncmp(t, "retry: 2000\nevent: hello\ndata: {\"resumed\":false,", 46));
    CU_ASSERT_EQUAL(last, 0); /* nothing more: parked */
    CU_ASSERT_EQUAL(suspended, s0 + 1);
    free(t);
    free(drain(b, &last));

    size_t open;
    uint64_t dropped, id0, id1;
    events_stats(ev, &open, &dropped, &id0);
    CU_ASSERT_EQUAL(open, 2);
    events_publish(ev, "telemetry", 0, "{\"site\":0}"); /* nobody watches site 0: dropped */
    events_publish(ev, "telemetry", 1, "{\"site\":1}");
    events_publish(ev, "dispatch", 0, "{\"setpoint_id\":\"sp-1\"}");
    events_stats(ev, &open, &dropped, &id1);
    CU_ASSERT(id1 >= id0 + 2);
    t = drain(a, &last);
    CU_ASSERT_PTR_NULL(strstr(t, "telemetry"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "event: dispatch\ndata: {\"setpoint_id\":\"sp-1\"}\n\n"));
    free(t);
    t = drain(b, &last);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "event: telemetry\ndata: {\"site\":1}\n\n"));
    CU_ASSERT_PTR_NULL(strstr(t, "{\"site\":0}"));
    /* the telemetry event's id, for a resume after it */
    const char *p = strstr(t, "event: telemetry");
    CU_ASSERT_FATAL(p != NULL);
    while (p > t && strncmp(p, "id: ", 4))
        p--;
    unsigned long long tel_id = strtoull(p + 4, NULL, 10);
    free(t);
    events_release(b);

    char lid[32];
    snprintf(lid, sizeof lid, "%llu", tel_id);
    CU_ASSERT_EQUAL(events_open(ev, 1, lid, 300, &c, &c), 0);
    t = drain(c, &last);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"resumed\":true"));
    CU_ASSERT_PTR_NULL(strstr(t, "{\"site\":1}")); /* what it had seen is not sent again */
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "sp-1"));     /* what followed is */
    free(t);

    /* a slow reader: a whole ring published while it reads nothing */
    for (int i = 0; i <= EVENTS_RING; i++)
        events_publish(ev, "dispatch", 0, "{}");
    t = drain(c, &last);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "event: reset\n"));
    CU_ASSERT_EQUAL(last, -1);
    free(t);
    events_stats(ev, &open, &dropped, &id1);
    CU_ASSERT(dropped >= 1);
    events_release(c);

    t = drain(a, &last); /* a did not read either: dropped too */
    CU_ASSERT_EQUAL(last, -1);
    free(t);
    events_release(a);

    /* close: a parked stream is woken and ends */
    CU_ASSERT_EQUAL(events_open(ev, SIZE_MAX, NULL, 300, &a, &a), 0);
    free(drain(a, &last));
    CU_ASSERT_EQUAL(last, 0);
    int r0 = resumed;
    events_close(ev);
    CU_ASSERT(resumed > r0);
    free(drain(a, &last));
    CU_ASSERT_EQUAL(last, -1);
    CU_ASSERT_EQUAL(events_open(ev, 0, NULL, 300, &b, &b), -ESHUTDOWN);
    events_release(a);
    events_free(ev);
}

void test_register_events(void)
{
    CU_pSuite s = CU_add_suite("events", NULL, NULL);
    CU_add_test(s, "stream: hello, park, filter, resume, slow reader, cap, close", test_stream);
}
