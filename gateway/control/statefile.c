/* statefile: see statefile.h. The directory is fsynced after a rename or unlink: the rename
 * itself lives in the directory, and without it a power cut may bring the old name back. */
#include "gateway/control/statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

const char *statefile_path(const char *dir, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", dir, name);
    return out;
}

static void sync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

int statefile_write(const char *dir, const char *name, const char *text, size_t len)
{
    char tmp[600], dst[600];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    statefile_path(dir, name, dst, sizeof dst);
    int rc = 0;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (!rc && fsync(fd) < 0)
        rc = -errno;
    close(fd);
    if (!rc && rename(tmp, dst) < 0)
        rc = -errno;
    if (rc)
        unlink(tmp);
    else
        sync_dir(dir);
    return rc;
}

int statefile_read(const char *dir, const char *name, char **text)
{
    char path[600];
    *text = NULL;
    FILE *f = fopen(statefile_path(dir, name, path, sizeof path), "rb");
    if (!f)
        return -errno;
    size_t cap = 0;
    errno = 0;
    ssize_t n = getdelim(text, &cap, '\0', f);
    /* errno, not a blanket EIO: a directory in the file's place said "Input/output error" */
    int rc = n < 0 ? (ferror(f) ? (errno ? -errno : -EIO) : 0) : 0;
    fclose(f);
    if (n < 0 && !rc) { /* an empty file: getdelim read nothing */
        free(*text);
        *text = calloc(1, 1);
        rc = *text ? 0 : -ENOMEM;
    } else if (rc) {
        free(*text);
        *text = NULL;
    }
    return rc;
}

int statefile_remove(const char *dir, const char *name)
{
    char path[600];
    if (unlink(statefile_path(dir, name, path, sizeof path)) < 0 && errno != ENOENT)
        return -errno;
    sync_dir(dir);
    return 0;
}
