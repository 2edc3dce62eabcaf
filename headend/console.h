/* console: the live web console's static files (headend/web/, and Debian's Chart.js), compiled
 * into der-headend at build time (headend/web/embed.sh writes the table), so that serving the
 * console needs no file on disk and no network. docs/operations.md, "The web console". */
#ifndef HEADEND_CONSOLE_H
#define HEADEND_CONSOLE_H

#include <stddef.h>

struct console_file {
    const char *path; /* "/" for index.html, else "/console/NAME" */
    const char *type; /* Content-Type */
    const unsigned char *data;
    size_t len;
};

/* The generated table (build/gen/web_assets.c). */
extern const struct console_file console_files[];
extern const size_t console_n_files;

/* The file served at path (plen bytes, not NUL-terminated necessarily), or NULL. */
const struct console_file *console_find(const char *path, size_t plen);

#endif
