/* uplink_outbox: see uplink_outbox.h.
 *
 * Memory-queue messages carry an id so that one sent (and waiting in the window) is still
 * recognised after the queue moved: the oldest is dropped when the queue is full, also while
 * in flight. tel_sent counts the queue's prefix already sent on this stream. */
#include "gateway/uplink/uplink_outbox.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/uplink/agentmsg.h"

/* ---- bounded byte queues -------------------------------------------------------------------- */

struct qmsg {
    uint8_t *buf;
    size_t len;
    uint64_t id; /* to recognise the message in flight after the queue moved */
};

struct msgq {
    size_t cap, head, n;
    uint64_t next_id;
    struct qmsg *m;
};

static int q_init(struct msgq *q, size_t cap)
{
    q->m = calloc(cap, sizeof *q->m);
    q->cap = cap;
    return q->m ? 0 : -ENOMEM;
}

static struct qmsg *q_front(struct msgq *q)
{
    return q->n ? &q->m[q->head] : NULL;
}

static struct qmsg *q_at(struct msgq *q, size_t i)
{
    return i < q->n ? &q->m[(q->head + i) % q->cap] : NULL;
}

static void q_pop(struct msgq *q)
{
    if (!q->n)
        return;
    free(q->m[q->head].buf);
    q->m[q->head].buf = NULL;
    q->head = (q->head + 1) % q->cap;
    q->n--;
}

/* Takes buf. Returns 1 when the oldest message was dropped to make room. */
static int q_push(struct msgq *q, uint8_t *buf, size_t len)
{
    int dropped = 0;
    if (q->n == q->cap) {
        q_pop(q);
        dropped = 1;
    }
    q->m[(q->head + q->n) % q->cap] = (struct qmsg){buf, len, ++q->next_id};
    q->n++;
    return dropped;
}

static void q_free(struct msgq *q)
{
    while (q->n)
        q_pop(q);
    free(q->m);
}

/* ---- the outbox ----------------------------------------------------------------------------- */

struct outbox {
    struct msgq tel, acks;
    struct msgq decisions; /* best effort: after everything else, not spooled */
    struct spool *spool;   /* borrowed */
    struct uplink_stats *st;
    size_t tel_sent; /* memory-queue messages sent on this stream (a prefix of tel) */
    /* The window: telemetry sent on this stream and not yet released, in send order. */
    struct sent {
        uint64_t seq; /* AgentMessage.seq it went out with */
        uint64_t no;  /* spool record number, or memory-queue message id */
        int spool;
    } * win;
    size_t cap, win_head, win_n;
    int64_t last_moved_ms;
    int replay_rate;
    double tokens; /* replay_rate's bucket */
    int64_t tokens_ms;
    uint8_t *spool_buf;
};

int outbox_new(const struct uplink_cfg *cfg, struct spool *spool, struct uplink_stats *st,
               int64_t now_ms, struct outbox **out)
{
    struct outbox *ob = calloc(1, sizeof *ob);
    if (!ob)
        return -ENOMEM;
    ob->spool = spool;
    ob->st = st;
    ob->cap = (size_t)cfg->ack_window;
    ob->replay_rate = cfg->replay_rate;
    ob->tokens_ms = now_ms;
    ob->win = calloc(ob->cap, sizeof *ob->win);
    ob->spool_buf = malloc(SPOOL_MAX_RECORD);
    if (!ob->win || !ob->spool_buf || q_init(&ob->tel, (size_t)cfg->queue_len) ||
        q_init(&ob->acks, (size_t)cfg->queue_len) || q_init(&ob->decisions, OUTBOX_DECISIONS)) {
        outbox_free(ob);
        return -ENOMEM;
    }
    *out = ob;
    return 0;
}

void outbox_free(struct outbox *ob)
{
    if (!ob)
        return;
    q_free(&ob->tel);
    q_free(&ob->acks);
    q_free(&ob->decisions);
    free(ob->win);
    free(ob->spool_buf);
    free(ob);
}

int outbox_push_ack(struct outbox *ob, uint8_t *buf, size_t len)
{
    int dropped = q_push(&ob->acks, buf, len);
    if (dropped)
        ob->st->acks_dropped++;
    return dropped;
}

int outbox_push_decision(struct outbox *ob, uint8_t *buf, size_t len)
{
    ob->st->decisions_queued++;
    /* the newest decision says more than the oldest: that one goes */
    int dropped = q_push(&ob->decisions, buf, len);
    if (dropped)
        ob->st->decisions_dropped++;
    return dropped;
}

uint64_t outbox_push_telemetry(struct outbox *ob, uint8_t *buf, size_t len, int *spool_rc,
                               int *from_spool)
{
    ob->st->telemetry_queued++;
    *spool_rc = 0;
    *from_spool = 0;
    if (ob->spool) {
        uint64_t before = spool_dropped(ob->spool);
        int rc = spool_push(ob->spool, buf, len);
        if (rc == 0) {
            ob->st->spooled++;
            free(buf);
            *from_spool = 1;
            return spool_dropped(ob->spool) - before;
        }
        /* the disk refused: fall back to memory (dropping the oldest there) */
        *spool_rc = rc;
    }
    if (!q_push(&ob->tel, buf, len))
        return 0;
    ob->st->telemetry_dropped++;
    if (ob->tel_sent) /* the dropped one was sent and waited for its ack */
        ob->tel_sent--;
    return 1;
}

/* Releases what the headend has acknowledged: every window entry sent with seq <= through.
 * A memory-queue message that was dropped meanwhile is simply gone. */
void outbox_release_through(struct outbox *ob, uint64_t through, int64_t now_ms)
{
    while (ob->win_n && ob->win[ob->win_head].seq <= through) {
        struct sent e = ob->win[ob->win_head];
        ob->win_head = (ob->win_head + 1) % ob->cap;
        ob->win_n--;
        if (e.spool) {
            if (spool_release(ob->spool, e.no + 1) == 0)
                ob->st->spool_replayed++;
        } else {
            struct qmsg *q = q_front(&ob->tel);
            if (q && q->id == e.no) {
                q_pop(&ob->tel);
                ob->tel_sent--;
            }
        }
        ob->st->telemetry_acked++;
    }
    ob->last_moved_ms = now_ms;
}

/* A spool record that does not decode (a power cut can leave a zero-filled one) would end
 * every stream it is sent on and block all later samples: it is skipped and counted. It is
 * released in order: at once when nothing is in flight (it is then the oldest), else with
 * the last message in flight. */
static void skip_corrupt(struct outbox *ob, uint64_t no)
{
    ob->st->spool_corrupt++;
    if (ob->win_n == 0) {
        spool_release(ob->spool, no + 1);
        return;
    }
    uint64_t last = ob->win[(ob->win_head + ob->win_n - 1) % ob->cap].seq;
    ob->win[(ob->win_head + ob->win_n) % ob->cap] = (struct sent){last, no, 1};
    ob->win_n++;
}

void outbox_rewind(struct outbox *ob)
{
    ob->win_head = ob->win_n = 0;
    ob->tel_sent = 0;
    if (ob->spool)
        spool_rewind(ob->spool);
}

/* replay_rate's token bucket, refilled from the monotonic clock; holds 1/10 s of tokens
 * (at least one) so a burst after an idle spell stays short. */
static int take_token(struct outbox *ob, int64_t now_ms)
{
    double rate = (double)ob->replay_rate, cap = rate / 10.0 < 1.0 ? 1.0 : rate / 10.0;
    ob->tokens += (double)(now_ms - ob->tokens_ms) * rate / 1000.0;
    ob->tokens_ms = now_ms;
    if (ob->tokens > cap)
        ob->tokens = cap;
    if (ob->tokens < 1.0)
        return 0;
    ob->tokens -= 1.0;
    return 1;
}

/* The next telemetry message into the window: the memory queue first (it only holds what
 * the disk refused, so it is older than the spool), then the spool's cursor. */
static void next_telemetry(struct outbox *ob, uint64_t seq, int64_t sent_ms, int64_t now_ms,
                           struct outbox_msg *m)
{
    struct qmsg *q;
    size_t len;
    uint64_t no;
    if ((q = q_at(&ob->tel, ob->tel_sent))) {
        m->kind = OUTBOX_TELEMETRY;
        m->id = q->id;
        if (agentmsg_frame(seq, sent_ms, AGENTMSG_TELEMETRY, q->buf, q->len, &m->framed, &m->len))
            m->kind = OUTBOX_NONE;
        else
            ob->tel_sent++;
    } else if (spool_next(ob->spool, ob->spool_buf, SPOOL_MAX_RECORD, &len, &no) == 0) {
        if (!agentmsg_telemetry_valid(ob->spool_buf, len)) {
            skip_corrupt(ob, no);
            m->corrupt = no + 1;
        } else {
            m->kind = OUTBOX_SPOOL;
            m->id = no;
            if (agentmsg_frame(seq, sent_ms, AGENTMSG_TELEMETRY, ob->spool_buf, len, &m->framed,
                               &m->len))
                m->kind = OUTBOX_NONE;
        }
    }
    if (m->kind != OUTBOX_NONE) {
        if (ob->win_n == 0)
            ob->last_moved_ms = now_ms;
        ob->win[(ob->win_head + ob->win_n) % ob->cap] =
            (struct sent){seq, m->id, m->kind == OUTBOX_SPOOL};
        ob->win_n++;
    } else if (ob->spool && !m->corrupt) {
        /* out of memory after the cursor moved: send it again from the start */
        outbox_rewind(ob);
    }
}

void outbox_next(struct outbox *ob, uint64_t seq, int64_t sent_ms, int hb_due, int64_t now_ms,
                 struct outbox_msg *m)
{
    memset(m, 0, sizeof *m);
    struct qmsg *q = q_front(&ob->acks);
    if (q) {
        m->kind = OUTBOX_ACK;
        m->id = q->id;
        if (agentmsg_frame(seq, sent_ms, AGENTMSG_ACK, q->buf, q->len, &m->framed, &m->len))
            m->kind = OUTBOX_NONE;
    } else if (hb_due) {
        m->kind = OUTBOX_HEARTBEAT;
    } else if (ob->win_n < ob->cap &&
               (ob->tel_sent < ob->tel.n || (ob->spool && spool_unsent(ob->spool))) &&
               take_token(ob, now_ms)) {
        next_telemetry(ob, seq, sent_ms, now_ms, m);
    } else if ((q = q_front(&ob->decisions))) {
        m->kind = OUTBOX_DECISION;
        m->id = q->id;
        if (agentmsg_frame(seq, sent_ms, AGENTMSG_DECISION, q->buf, q->len, &m->framed, &m->len))
            m->kind = OUTBOX_NONE;
    }
}

void outbox_sent(struct outbox *ob, enum outbox_kind kind, uint64_t id, uint64_t seq, int acks_on,
                 int64_t now_ms)
{
    struct qmsg *q;
    switch (kind) {
    case OUTBOX_ACK:
        if ((q = q_front(&ob->acks)) && q->id == id)
            q_pop(&ob->acks);
        ob->st->acks_sent++;
        break;
    case OUTBOX_TELEMETRY:
    case OUTBOX_SPOOL:
        ob->st->telemetry_sent++;
        /* a headend that does not acknowledge: a completed send is all we will know */
        if (!acks_on)
            outbox_release_through(ob, seq, now_ms);
        break;
    case OUTBOX_DECISION:
        if ((q = q_front(&ob->decisions)) && q->id == id)
            q_pop(&ob->decisions);
        ob->st->decisions_sent++;
        break;
    case OUTBOX_HEARTBEAT:
        ob->st->heartbeats++;
        break;
    case OUTBOX_NONE:
    case OUTBOX_REMOTE:
        break;
    }
}

size_t outbox_window(const struct outbox *ob)
{
    return ob->win_n;
}

size_t outbox_queued(const struct outbox *ob)
{
    return ob->tel.n;
}

int64_t outbox_last_moved(const struct outbox *ob)
{
    return ob->last_moved_ms;
}

void outbox_touch(struct outbox *ob, int64_t now_ms)
{
    ob->last_moved_ms = now_ms;
}
