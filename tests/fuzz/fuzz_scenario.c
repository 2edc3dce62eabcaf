/* fuzz_scenario: the simulator's scenario loader (scenario_load: JSON, durations, profiles,
 * events, expectations). It reads a file, so each input is written to a file in a private
 * temporary directory, next to a link to scenarios/profiles so that CSV profiles of the seeds
 * resolve (FUZZ_PROFILES names it; default scenarios/profiles under the working directory). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim/scenario/scenario.h"

static char path[512];

static void cleanup(void)
{
    char p[600];
    unlink(path);
    snprintf(p, sizeof(p), "%.*s/profiles", (int)(strrchr(path, '/') - path), path);
    unlink(p);
    *strrchr(path, '/') = 0;
    rmdir(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/fuzz-scenario.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(path))
        __builtin_trap();
    const char *prof = getenv("FUZZ_PROFILES");
    char abs[4096], link[600];
    if (!prof && getcwd(abs, sizeof(abs) - 32)) {
        strcat(abs, "/scenarios/profiles");
        prof = abs;
    }
    snprintf(link, sizeof(link), "%s/profiles", path);
    if (prof && symlink(prof, link) < 0 && errno != EEXIST)
        __builtin_trap();
    strcat(path, "/s.json");
    atexit(cleanup);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        __builtin_trap();
    if (fwrite(data, 1, size, f) != size)
        __builtin_trap();
    fclose(f);
    struct scenario *s = NULL;
    char err[1024];
    int rc = scenario_load(path, NULL, 0, &s, err, sizeof(err));
    if (rc == 0) {
        scenario_profile(s, "nope");
        scenario_free(s);
    } else if (s || !err[0]) {
        __builtin_trap(); /* an error leaves no scenario and says why */
    }
    return 0;
}
