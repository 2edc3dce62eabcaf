/* statefile: a small file in the gateway's state directory (next to its spool: the pushed
 * configuration, confsync.h; the emergency stop, estop.h), written so that after a power cut
 * it holds the old or the new content, never a torn one. Functions of (dir, name); nothing is
 * kept open. */
#ifndef DERLOOP_STATEFILE_H
#define DERLOOP_STATEFILE_H

#include <stddef.h>

/* DIR/NAME as len bytes of text: write DIR/NAME.tmp, fsync, rename, fsync DIR. 0 or -errno
 * (DIR/NAME is then unchanged). */
int statefile_write(const char *dir, const char *name, const char *text, size_t len);

/* The whole of DIR/NAME, NUL-terminated, malloc'd into *text (the caller frees it). 0,
 * -ENOENT when there is none, or -errno. */
int statefile_read(const char *dir, const char *name, char **text);

/* Removes DIR/NAME (and fsyncs DIR). 0 when it is gone (or was never there), else -errno. */
int statefile_remove(const char *dir, const char *name);

/* "DIR/NAME" into out (for messages). */
const char *statefile_path(const char *dir, const char *name, char *out, size_t len);

#endif
