/* console: a lookup in the generated table; a handful of files, so a scan. */
#include "headend/console.h"

#include <string.h>

const struct console_file *console_find(const char *path, size_t plen)
{
    for (size_t i = 0; i < console_n_files; i++)
        if (strlen(console_files[i].path) == plen && !memcmp(console_files[i].path, path, plen))
            return &console_files[i];
    return NULL;
}
