/* bench_physics: asset-steps per second of the simulator's physics and register images
 * (site_step), for the reference site and for 1,000 replicated sites, on one core: the physics
 * alone (the issue 2 target: at least 10 million asset-steps per second), and with the register
 * images refreshed every step as `der-sim serve` and the runner do. A missed target prints a
 * MISS line and makes the exit status 3 (bench.h). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sim/scenario/scenario.h"
#include "sim/run/site.h"
#include "tests/bench/bench.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int bench(const char *label, const char *path, const char *const *sets, size_t n_sets,
                 int64_t steps, int images)
{
    struct scenario *sc;
    char err[1024];
    if (scenario_load(path, sets, n_sets, &sc, err, sizeof err) != 0) {
        fprintf(stderr, "bench_physics: %s\n", err);
        return -1;
    }
    struct site **sites = calloc(sc->n_sites, sizeof *sites);
    size_t assets = 0;
    for (size_t i = 0; i < sc->n_sites; i++) {
        sites[i] = site_new(sc, i, err, sizeof err);
        if (!sites[i]) {
            fprintf(stderr, "bench_physics: %s\n", err);
            return -1;
        }
        assets += site_n_assets(sites[i]);
        site_set_images(sites[i], images);
    }
    double t0 = now_s();
    for (int64_t k = 0; k < steps; k++)
        for (size_t i = 0; i < sc->n_sites; i++)
            site_step(sites[i], k * sc->step_ms, sc->step_ms);
    double dt = now_s() - t0;
    double asset_steps = (double)assets * (double)steps;
    printf("%-44s sites=%-5zu assets=%-5zu steps=%-7lld %7.3f s  %8.2f M asset-steps/s\n", label,
           sc->n_sites, assets, (long long)steps, dt, asset_steps / dt / 1e6);
    if (!images) /* issue 2: the physics alone, on one core */
        bench_target("bench_physics", label, asset_steps / dt / 1e6, "M asset-steps/s", ">=", 10.0);
    for (size_t i = 0; i < sc->n_sites; i++)
        site_free(sites[i]);
    free(sites);
    scenario_free(sc);
    return 0;
}

int main(void)
{
    const char *ref = "scenarios/reference-site.json";
    const char *rep[] = {"sites[0].replicas=1000"};
    int rc = 0;
    rc |= bench("physics: reference site, 1 day at 1 s", ref, NULL, 0, 86400, 0);
    rc |= bench("physics: 1,000 replicated reference sites", ref, rep, 1, 600, 0);
    rc |= bench("physics + register images: reference site", ref, NULL, 0, 86400, 1);
    rc |= bench("physics + register images: 1,000 sites", ref, rep, 1, 600, 1);
    return bench_exit(rc);
}
