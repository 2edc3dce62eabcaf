/* spool: see spool.h.
 *
 * Layout: DIR/NAME.NNNNNNNNNN.spool, segment numbers increasing; each record is a 4-byte
 * little-endian length and the bytes. Only the newest segment is appended to; a segment whose
 * records are all released is deleted. Dropping whole segments (an eighth of the bound)
 * instead of single records keeps every operation an append or an unlink, never a rewrite.
 *
 * Two positions: the release point (the oldest record not yet acknowledged, always in the
 * oldest segment) and the send cursor (the next record to send, anywhere at or after it).
 * The cursor lives in memory; the release point is also written to DIR/NAME.pos (every
 * POS_EVERY releases and at close), so a restart replays from about where the headend's
 * acknowledgements ended. A record may be sent twice (after a kill, up to POS_EVERY of them)
 * but never lost: the headend stores one row per asset and seq. A segment wholly released
 * is deleted, the newest one too, so a drained spool leaves no file to replay. */
#include "gateway/uplink/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_SEGS  (4 * SPOOL_SEGMENTS + 4)
#define POS_EVERY 256         /* releases between two writes of the release point */
#define POS_MAGIC 0x53504f31u /* "SPO1" */

struct seg {
    uint32_t id;
    uint64_t bytes, records;
};

struct spool {
    char dir[512], name[128];
    uint64_t max_bytes, seg_max;
    struct seg seg[MAX_SEGS]; /* oldest first */
    size_t n;
    uint64_t rel_off, rel_recs; /* the release point: bytes and records released in seg[0] */
    uint64_t base;              /* number of the record at the release point */
    uint32_t cur_id;            /* the send cursor: segment id, byte offset, record number */
    uint64_t cur_off, cur_no;
    int wfd; /* appends to seg[n-1] */
    uint32_t wfd_id;
    int rfd; /* reads segment rfd_id */
    uint32_t rfd_id;
    uint64_t dropped;
    uint32_t last_id;     /* the newest segment id ever used (ids never repeat) */
    unsigned pos_pending; /* releases since the release point was last written */
    uint64_t disk_full;   /* segments dropped because the disk filled before the bound */
};

static void seg_path(const struct spool *s, uint32_t id, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s.%010u.spool", s->dir, s->name, id);
}

static void pos_path(const struct spool *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s.pos", s->dir, s->name);
}

static uint32_t pos_sum(const uint32_t *w)
{
    return (w[0] ^ w[1] ^ w[2] ^ w[3] ^ w[4]) * 2654435761u;
}

/* The release point on disk: magic, segment id, offset (lo, hi), records, checksum. One small
 * pwrite, so a torn write fails the checksum and is ignored (the segment is replayed whole). */
static void pos_write(struct spool *s)
{
    char p[700];
    pos_path(s, p, sizeof p);
    s->pos_pending = 0;
    if (s->n == 0) {
        unlink(p);
        return;
    }
    uint32_t w[6] = {POS_MAGIC,
                     s->seg[0].id,
                     (uint32_t)s->rel_off,
                     (uint32_t)(s->rel_off >> 32),
                     (uint32_t)s->rel_recs,
                     0};
    w[5] = pos_sum(w);
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return; /* best effort: without it a restart replays more, never less */
    if (pwrite(fd, w, sizeof w, 0) != (ssize_t)sizeof w)
        unlink(p);
    close(fd);
}

/* At open: a release point for the oldest segment that lies on a record boundary is taken. */
static void pos_read(struct spool *s)
{
    char p[700];
    pos_path(s, p, sizeof p);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    uint32_t w[6];
    ssize_t r = pread(fd, w, sizeof w, 0);
    close(fd);
    if (r != (ssize_t)sizeof w || w[0] != POS_MAGIC || w[5] != pos_sum(w) || s->n == 0 ||
        w[1] != s->seg[0].id)
        return;
    uint64_t off = (uint64_t)w[2] | (uint64_t)w[3] << 32, recs = w[4];
    if (off > s->seg[0].bytes || recs > s->seg[0].records)
        return;
    /* walk the boundaries: the offset must be where record `recs` starts */
    char sp[700];
    seg_path(s, s->seg[0].id, sp, sizeof sp);
    fd = open(sp, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    uint64_t at = 0;
    for (uint64_t i = 0; i < recs; i++) {
        uint8_t h[4];
        if (pread(fd, h, 4, (off_t)at) != 4)
            break;
        at += 4 +
              ((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24);
    }
    close(fd);
    if (at != off)
        return;
    s->rel_off = off;
    s->rel_recs = recs;
}

static void close_fds(struct spool *s)
{
    if (s->wfd >= 0)
        close(s->wfd);
    if (s->rfd >= 0)
        close(s->rfd);
    s->wfd = s->rfd = -1;
}

/* Deletes the oldest segment; what was unreleased in it is counted as dropped when `drop`.
 * A send cursor inside it moves to the start of the next segment. */
static void remove_oldest(struct spool *s, int drop)
{
    char p[700];
    uint64_t left = s->seg[0].records - s->rel_recs;
    if (drop)
        s->dropped += left;
    s->base += left;
    if (s->cur_id == s->seg[0].id || s->cur_no < s->base) {
        s->cur_id = s->n > 1 ? s->seg[1].id : s->seg[0].id + 1;
        s->cur_off = 0;
        s->cur_no = s->base;
    }
    if (s->rfd >= 0 && s->rfd_id == s->seg[0].id) {
        close(s->rfd);
        s->rfd = -1;
    }
    if (s->wfd >= 0 && s->wfd_id == s->seg[0].id) {
        close(s->wfd);
        s->wfd = -1;
    }
    seg_path(s, s->seg[0].id, p, sizeof p);
    unlink(p);
    memmove(&s->seg[0], &s->seg[1], (s->n - 1) * sizeof s->seg[0]);
    s->n--;
    s->rel_off = s->rel_recs = 0;
}

/* Counts the records of an existing segment and cuts a torn last record (a crash mid-write). */
static int scan_segment(struct spool *s, struct seg *g)
{
    char p[700];
    seg_path(s, g->id, p, sizeof p);
    int fd = open(p, O_RDWR);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    uint64_t off = 0, size = (uint64_t)st.st_size;
    g->records = 0;
    for (;;) {
        uint8_t h[4];
        if (off + 4 > size || pread(fd, h, 4, (off_t)off) != 4)
            break;
        uint32_t n =
            (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
        if (n == 0 || n > SPOOL_MAX_RECORD || off + 4 + n > size)
            break;
        off += 4 + n;
        g->records++;
    }
    if (off < size && ftruncate(fd, (off_t)off) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    close(fd);
    g->bytes = off;
    return 0;
}

static int seg_cmp(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

int spool_open(const char *dir, const char *name, uint64_t max_bytes, struct spool **out)
{
    *out = NULL;
    if (!dir || !*dir || !name || !*name || strchr(name, '/') || max_bytes < 4096)
        return -EINVAL;
    struct spool *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->wfd = s->rfd = -1;
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->max_bytes = max_bytes;
    s->seg_max = max_bytes / SPOOL_SEGMENTS;
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        int e = -errno;
        free(s);
        return e;
    }
    DIR *d = opendir(dir);
    if (!d) {
        int e = -errno;
        free(s);
        return e;
    }
    size_t nl = strlen(name);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned id;
        char tail[16];
        if (strncmp(de->d_name, name, nl) != 0 || de->d_name[nl] != '.' ||
            sscanf(de->d_name + nl + 1, "%10u.%15s", &id, tail) != 2 || strcmp(tail, "spool"))
            continue;
        if (s->n == MAX_SEGS) /* more than we would ever write: keep the newest */
            break;
        s->seg[s->n++].id = id;
    }
    closedir(d);
    qsort(s->seg, s->n, sizeof s->seg[0], seg_cmp);
    for (size_t i = 0; i < s->n; i++) {
        int rc = scan_segment(s, &s->seg[i]);
        if (rc) {
            free(s);
            return rc;
        }
    }
    if (s->n)
        s->last_id = s->seg[s->n - 1].id;
    pos_read(s);
    spool_rewind(s);
    *out = s;
    return 0;
}

void spool_close(struct spool *s)
{
    if (!s)
        return;
    close_fds(s);
    if (s->pos_pending)
        pos_write(s);
    free(s);
}

static uint64_t total_bytes(const struct spool *s)
{
    uint64_t t = 0;
    for (size_t i = 0; i < s->n; i++)
        t += s->seg[i].bytes;
    return t;
}

int spool_push(struct spool *s, const void *rec, size_t len)
{
    uint64_t need = 4 + (uint64_t)len;
    if (len == 0 || len > SPOOL_MAX_RECORD || need > s->seg_max)
        return -EMSGSIZE;
    if (s->n == 0 || s->seg[s->n - 1].bytes + need > s->seg_max) {
        if (s->n == MAX_SEGS)
            remove_oldest(s, 1);
        uint32_t id = ++s->last_id;
        s->seg[s->n++] = (struct seg){id, 0, 0};
    }
    struct seg *g = &s->seg[s->n - 1];
    if (s->wfd < 0 || s->wfd_id != g->id) {
        char p[700];
        if (s->wfd >= 0)
            close(s->wfd);
        seg_path(s, g->id, p, sizeof p);
        s->wfd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (s->wfd < 0)
            return -errno;
        s->wfd_id = g->id;
    }
    uint8_t h[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    struct iovec iov[2] = {{h, 4}, {(void *)rec, len}};
    for (;;) {
        ssize_t w = writev(s->wfd, iov, 2);
        if (w == (ssize_t)need)
            break;
        int e = w < 0 ? -errno : -ENOSPC; /* a short write: the disk filled up */
        if (w > 0 && ftruncate(s->wfd, (off_t)g->bytes) < 0)
            return -errno; /* a torn record is also cut at the next open */
        /* A disk that fills before max_bytes is a smaller bound: the oldest segment goes, as
         * it would at the bound, so the newest samples survive (never the one being written). */
        if ((e == -ENOSPC || e == -EDQUOT) && s->n > 1) {
            s->disk_full++;
            remove_oldest(s, 1);
            g = &s->seg[s->n - 1];
            continue;
        }
        return e;
    }
    g->bytes += need;
    g->records++;
    /* The bound: drop the oldest segments (never the one being written). */
    while (total_bytes(s) > s->max_bytes && s->n > 1)
        remove_oldest(s, 1);
    return 0;
}

/* Reads the record at byte offset off of segment id into buf (4-byte length first). */
static int read_at(struct spool *s, uint32_t id, uint64_t off, void *buf, size_t cap, size_t *len)
{
    if (s->rfd < 0 || s->rfd_id != id) {
        char p[700];
        if (s->rfd >= 0)
            close(s->rfd);
        seg_path(s, id, p, sizeof p);
        s->rfd = open(p, O_RDONLY | O_CLOEXEC);
        if (s->rfd < 0)
            return -errno;
        s->rfd_id = id;
    }
    uint8_t h[4];
    if (pread(s->rfd, h, 4, (off_t)off) != 4)
        return -EIO;
    uint32_t n = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    *len = n;
    if (n > cap)
        return -EMSGSIZE;
    if (buf && pread(s->rfd, buf, n, (off_t)off + 4) != (ssize_t)n)
        return -EIO;
    return 0;
}

static size_t seg_index(const struct spool *s, uint32_t id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->seg[i].id == id)
            return i;
    return SIZE_MAX;
}

int spool_next(struct spool *s, void *buf, size_t cap, size_t *len, uint64_t *no)
{
    size_t i = seg_index(s, s->cur_id);
    if (i == SIZE_MAX) /* the cursor's segment is not written yet */
        return -ENOENT;
    while (s->cur_off >= s->seg[i].bytes) { /* at the end of a segment: the next one */
        if (i + 1 >= s->n)
            return -ENOENT;
        i++;
        s->cur_id = s->seg[i].id;
        s->cur_off = 0;
    }
    int rc = read_at(s, s->cur_id, s->cur_off, buf, cap, len);
    if (rc)
        return rc;
    *no = s->cur_no++;
    s->cur_off += 4 + (uint64_t)*len;
    return 0;
}

int spool_release(struct spool *s, uint64_t end)
{
    uint64_t base0 = s->base;
    while (s->n && s->base < end) {
        uint64_t left = s->seg[0].records - s->rel_recs;
        if (end - s->base >= left) {
            /* the rest of the oldest segment: delete it, the newest one too (the next push
             * starts a new segment), so a drained spool holds nothing to replay */
            remove_oldest(s, 0);
            continue;
        }
        size_t len;
        int rc = read_at(s, s->seg[0].id, s->rel_off, NULL, SPOOL_MAX_RECORD, &len);
        if (rc)
            return rc;
        s->rel_off += 4 + (uint64_t)len;
        s->rel_recs++;
        s->base++;
    }
    if (s->cur_no < s->base) /* never behind the release point */
        spool_rewind(s);
    s->pos_pending += (unsigned)(s->base - base0);
    if (s->pos_pending >= POS_EVERY)
        pos_write(s);
    return 0;
}

void spool_rewind(struct spool *s)
{
    s->cur_id = s->n ? s->seg[0].id : s->last_id + 1;
    s->cur_off = s->rel_off;
    s->cur_no = s->base;
}

uint64_t spool_unsent(const struct spool *s)
{
    return spool_records(s) - (s->cur_no - s->base);
}

int spool_peek(struct spool *s, void *buf, size_t cap, size_t *len)
{
    while (s->n && s->rel_recs >= s->seg[0].records)
        remove_oldest(s, 0);
    if (s->n == 0)
        return -ENOENT;
    return read_at(s, s->seg[0].id, s->rel_off, buf, cap, len);
}

int spool_pop(struct spool *s)
{
    if (spool_records(s) == 0)
        return -ENOENT;
    return spool_release(s, s->base + 1);
}

uint64_t spool_records(const struct spool *s)
{
    uint64_t t = 0;
    for (size_t i = 0; i < s->n; i++)
        t += s->seg[i].records;
    return t - (s->n ? s->rel_recs : 0);
}

uint64_t spool_bytes(const struct spool *s)
{
    return total_bytes(s);
}

uint64_t spool_dropped(const struct spool *s)
{
    return s->dropped;
}

uint64_t spool_disk_full(const struct spool *s)
{
    return s->disk_full;
}
