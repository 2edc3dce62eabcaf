/* spool: a bounded first-in first-out store of records on disk, for the telemetry an uplink
 * cannot send now. Records go into numbered segment files in one directory; when the total
 * passes max_bytes the oldest segment is deleted and its records counted as dropped, so the
 * newest data survives. A spool reopened on the same directory continues where it stopped.
 * The spool owns its files; the caller owns the struct (spool_close). Not thread-safe. */
#ifndef DERLOOP_SPOOL_H
#define DERLOOP_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#define SPOOL_SEGMENTS   8         /* max_bytes / SPOOL_SEGMENTS per segment file */
#define SPOOL_MAX_RECORD (1 << 20) /* larger records are refused */

struct spool;

/* Opens (creating dir when missing) the spool `name` in dir. Returns 0 or -errno. */
int spool_open(const char *dir, const char *name, uint64_t max_bytes, struct spool **out);
void spool_close(struct spool *s);

/* Appends a record. 0, -EMSGSIZE (too large for the bound), or -errno from the disk. When
 * the disk is full the oldest segments are deleted to make room, as at the bound. */
int spool_push(struct spool *s, const void *rec, size_t len);

/* Reading for delivery: a send cursor walks the records oldest first without removing them;
 * a record leaves the spool only when released (its delivery was acknowledged). Records are
 * numbered (uint64, increasing, from the oldest present at open); numbers live in memory only.
 * spool_next: the record at the cursor into buf, its number into *no, cursor moved on; 0,
 * -ENOENT when the cursor is at the end, -EMSGSIZE when cap is too small (*len = the size
 * needed; the cursor stays), -EIO. */
int spool_next(struct spool *s, void *buf, size_t cap, size_t *len, uint64_t *no);
/* Removes every record numbered below `end` (already dropped ones are skipped). */
int spool_release(struct spool *s, uint64_t end);
/* Moves the cursor back to the oldest record: what was sent but not released goes again. */
void spool_rewind(struct spool *s);
uint64_t spool_unsent(const struct spool *s); /* records at or after the cursor */

/* The oldest record into buf: 0 with *len set, -ENOENT when empty, -EMSGSIZE when cap is too
 * small (*len = the size needed). It stays in the spool until spool_pop releases it. */
int spool_peek(struct spool *s, void *buf, size_t cap, size_t *len);
int spool_pop(struct spool *s);

uint64_t spool_records(const struct spool *s); /* waiting (sent or not), not released */
uint64_t spool_bytes(const struct spool *s);   /* on disk, including consumed parts */
uint64_t spool_dropped(const struct spool *s); /* records deleted to keep the bound */
/* Segments deleted because the disk was full (ENOSPC, EDQUOT) before max_bytes was reached:
 * the disk is then the bound. A write that fails with only one segment left returns the
 * error (the caller keeps the record in memory). */
uint64_t spool_disk_full(const struct spool *s);

#endif
