/* der-sim: the simulator's command line. Each subcommand parses its options here and calls the
 * library (scenario, serve, regmap); nothing below main exits the process. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gateway/caltime.h"
#include "gateway/duration.h"
#include "sim/regmap.h"
#include "sim/rtclock.h"
#include "sim/runner.h"
#include "sim/scenario.h"
#include "sim/serve.h"
#include "version.h"

#define MAX_SETS 256

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *out)
{
    fputs("usage: der-sim COMMAND [OPTIONS]\n"
          "\n"
          "A deterministic simulator of distributed energy resources (battery, PV, meters, EV\n"
          "chargers, boilers) served as Modbus TCP devices. See docs/ and README.md.\n"
          "\n"
          "commands:\n"
          "  check FILE...          validate scenario files without running them\n"
          "  run SCENARIO           run a scenario in lockstep with the real gateway library\n"
          "  serve SCENARIO         serve every site of a scenario in real time over Modbus TCP\n"
          "  registers              print the register maps (docs/registers.md)\n"
          "  help                   this text; `der-sim COMMAND --help` for a command's options\n"
          "  version                the build's version and commit\n",
          out);
}

static void usage_check(FILE *out)
{
    fputs("usage: der-sim check [--set PATH=VALUE]... [--seed N] FILE...\n"
          "\n"
          "Loads and validates each scenario file and prints a one-line summary, or the first\n"
          "error with the file, the JSON path and the bad value. Exit status 1 if any file is\n"
          "invalid.\n"
          "  -s, --set PATH=VALUE   override a value before validation (e.g. sites[0].port=1502)\n"
          "      --seed N           override the scenario's seed\n"
          "  -h, --help             this text\n",
          out);
}

static void usage_run(FILE *out)
{
    fputs("usage: der-sim run [OPTIONS] SCENARIO\n"
          "\n"
          "Runs SCENARIO in lockstep: every tick steps the physics, then one cycle of the gateway\n"
          "library against the simulator's devices. Writes timeseries.csv, decisions.csv and\n"
          "events.log and prints their SHA-256 digest; the same scenario, seed and build give\n"
          "the same digest on either transport. Exit status 1 when an invariant check failed.\n"
          "  -t, --transport T      tcp (Modbus TCP on loopback, default) or inproc (fast)\n"
          "  -o, --out DIR          output directory (default reports/<scenario>/<time>-<T>)\n"
          "  -s, --set PATH=VALUE   override a scenario value (e.g. gateway.params.kp=0.4)\n"
          "      --seed N           override the scenario's seed\n"
          "  -q, --quiet            no progress line\n"
          "      --no-pin           tcp: do not pin the run to one CPU (pinning is ~3x faster)\n"
          "  -h, --help             this text\n",
          out);
}

static void usage_serve(FILE *out)
{
    fputs("usage: der-sim serve [OPTIONS] SCENARIO\n"
          "\n"
          "Serves every site of SCENARIO in real time: each site on its own TCP port, each asset on\n"
          "its own Modbus unit id (docs/registers.md). Prints one line per site with its endpoint,\n"
          "then `ready sites=N`. Stops at the end of the scenario, or on SIGINT or SIGTERM.\n"
          "  -x, --speed X          simulated seconds per wall-clock second (default 1)\n"
          "  -b, --bind ADDR        address to listen on (default 127.0.0.1)\n"
          "  -p, --port-base P      site i listens on P + i (default: the file's ports, 0 = any)\n"
          "  -c, --config-dir DIR   write one gateway site configuration per site into DIR\n"
          "      --loop             keep serving after the scenario's end (state frozen at the end)\n"
          "  -s, --set PATH=VALUE   override a scenario value before validation\n"
          "      --seed N           override the scenario's seed\n"
          "  -h, --help             this text\n",
          out);
}

/* Options shared by the subcommands that load a scenario. */
struct load_opts {
    const char *sets[MAX_SETS + 1];
    size_t n_sets;
    char seed_set[64];
};

static int add_set(struct load_opts *lo, const char *s)
{
    if (lo->n_sets >= MAX_SETS) {
        fprintf(stderr, "der-sim: too many --set options (at most %d)\n", MAX_SETS);
        return -1;
    }
    if (!strchr(s, '=')) {
        fprintf(stderr, "der-sim: --set wants PATH=VALUE, got \"%s\"\n", s);
        return -1;
    }
    lo->sets[lo->n_sets++] = s;
    return 0;
}

static int add_seed(struct load_opts *lo, const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || !*s || s[0] == '-') {
        fprintf(stderr, "der-sim: --seed wants a non-negative integer, got \"%s\"\n", s);
        return -1;
    }
    snprintf(lo->seed_set, sizeof lo->seed_set, "seed=%llu", v);
    return add_set(lo, lo->seed_set);
}

static int load(const char *path, const struct load_opts *lo, struct scenario **sc)
{
    char err[1024];
    int rc = scenario_load(path, lo->sets, lo->n_sets, sc, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    return rc;
}

enum { OPT_SEED = 1000, OPT_LOOP, OPT_NOPIN };

static int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {{"set", required_argument, NULL, 's'},
                                         {"seed", required_argument, NULL, OPT_SEED},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct load_opts lo = {0};
    int c;
    while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (add_set(&lo, optarg))
                return 2;
            break;
        case OPT_SEED:
            if (add_seed(&lo, optarg))
                return 2;
            break;
        case 'h':
            usage_check(stdout);
            return 0;
        default:
            usage_check(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage_check(stderr);
        return 2;
    }
    int bad = 0;
    for (int i = optind; i < argc; i++) {
        struct scenario *sc;
        if (load(argv[i], &lo, &sc) != 0) {
            bad++;
            continue;
        }
        size_t assets = 0;
        for (size_t s = 0; s < sc->n_sites; s++)
            assets += sc->sites[s].n_assets;
        char dur[32], step[32];
        printf("ok %s: name=%s seed=%llu sites=%zu assets=%zu events=%zu duration=%s step=%s "
               "steps=%lld sha256=%s\n",
               argv[i], sc->name, (unsigned long long)sc->seed, sc->n_sites, assets,
               sc->n_events, duration_format(sc->duration_ms, dur, sizeof dur),
               duration_format(sc->step_ms, step, sizeof step),
               (long long)(sc->duration_ms / sc->step_ms), sc->sha256);
        scenario_free(sc);
    }
    return bad ? 1 : 0;
}

static int parse_double(const char *opt, const char *s, double lo, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !*s || !(v > lo) || v > 1e9) {
        fprintf(stderr, "der-sim: %s wants a number > %g, got \"%s\"\n", opt, lo, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {{"transport", required_argument, NULL, 't'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"set", required_argument, NULL, 's'},
                                         {"seed", required_argument, NULL, OPT_SEED},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"no-pin", no_argument, NULL, OPT_NOPIN},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct load_opts lo = {0};
    struct runner_opts ro = {.transport = RUNNER_TCP, .progress = isatty(2)};
    const char *out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "t:o:s:qh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!strcmp(optarg, "tcp")) {
                ro.transport = RUNNER_TCP;
            } else if (!strcmp(optarg, "inproc")) {
                ro.transport = RUNNER_INPROC;
            } else {
                fprintf(stderr, "der-sim: --transport wants tcp or inproc, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case 'o':
            out = optarg;
            break;
        case 's':
            if (add_set(&lo, optarg))
                return 2;
            break;
        case OPT_SEED:
            if (add_seed(&lo, optarg))
                return 2;
            break;
        case 'q':
            ro.progress = 0;
            break;
        case OPT_NOPIN:
            ro.no_pin = 1;
            break;
        case 'h':
            usage_run(stdout);
            return 0;
        default:
            usage_run(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage_run(stderr);
        return 2;
    }
    struct scenario *sc;
    if (load(argv[optind], &lo, &sc) != 0)
        return 1;
    const char *tname = ro.transport == RUNNER_TCP ? "tcp" : "inproc";
    char dir[1024];
    if (out) {
        snprintf(dir, sizeof dir, "%s", out);
    } else {
        /* the run's name is the only use of the wall clock: it never reaches the outputs */
        char stamp[32];
        caltime_format(rtclock_wall_ms(), stamp, sizeof stamp);
        for (char *p = stamp; *p; p++)
            if (*p == ':' || *p == '.')
                *p = '-';
        snprintf(dir, sizeof dir, "reports/%s/%.19s-%s", sc->name, stamp, tname);
    }
    ro.out_dir = dir;
    fprintf(stderr, "der-sim run: scenario=%s seed=%llu sha256=%s build=%s transport=%s\n",
            sc->name, (unsigned long long)sc->seed, sc->sha256, DERLOOP_COMMIT, tname);
    struct runner_result res;
    char err[1024];
    int rc = runner_run(sc, &ro, &res, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "der-sim run: %s\n", err);
        scenario_free(sc);
        return 1;
    }
    printf("outputs=%s\n", dir);
    printf("ticks=%lld cycles=%llu transactions=%llu per_tick=%.2f writes=%llu wall_s=%.3f "
           "ticks_per_s=%.0f\n",
           (long long)res.ticks, (unsigned long long)res.cycles,
           (unsigned long long)res.transactions,
           res.ticks ? (double)res.transactions / (double)res.ticks : 0.0,
           (unsigned long long)res.setpoint_writes, res.wall_s,
           res.wall_s > 0 ? res.ticks / res.wall_s : 0.0);
    printf("checks: balance_and_soc_failures=%u register_view_mismatches=%u\n", res.check_failures,
           res.view_mismatches);
    printf("digest sha256=%s\n", res.digest);
    scenario_free(sc);
    return res.check_failures || res.view_mismatches ? 1 : 0;
}

static int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"speed", required_argument, NULL, 'x'},
                                         {"bind", required_argument, NULL, 'b'},
                                         {"port-base", required_argument, NULL, 'p'},
                                         {"config-dir", required_argument, NULL, 'c'},
                                         {"loop", no_argument, NULL, OPT_LOOP},
                                         {"set", required_argument, NULL, 's'},
                                         {"seed", required_argument, NULL, OPT_SEED},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct load_opts lo = {0};
    struct serve_opts so = {.speed = 1.0, .bind_addr = "127.0.0.1", .out = stdout};
    int c;
    while ((c = getopt_long(argc, argv, "x:b:p:c:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'x':
            if (parse_double("--speed", optarg, 0.0, &so.speed))
                return 2;
            break;
        case 'b':
            so.bind_addr = optarg;
            break;
        case 'p': {
            char *end;
            long p = strtol(optarg, &end, 10);
            if (*end || !*optarg || p < 0 || p > 65535) {
                fprintf(stderr, "der-sim: --port-base wants 0..65535, got \"%s\"\n", optarg);
                return 2;
            }
            so.port_base = (int)p;
            break;
        }
        case 'c':
            so.config_dir = optarg;
            break;
        case OPT_LOOP:
            so.loop = 1;
            break;
        case 's':
            if (add_set(&lo, optarg))
                return 2;
            break;
        case OPT_SEED:
            if (add_seed(&lo, optarg))
                return 2;
            break;
        case 'h':
            usage_serve(stdout);
            return 0;
        default:
            usage_serve(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage_serve(stderr);
        return 2;
    }
    struct scenario *sc;
    if (load(argv[optind], &lo, &sc) != 0)
        return 1;
    fprintf(stderr, "der-sim serve: scenario=%s seed=%llu sha256=%s build=%s\n", sc->name,
            (unsigned long long)sc->seed, sc->sha256, DERLOOP_COMMIT);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = serve_run(sc, &so, &g_stop);
    scenario_free(sc);
    return rc == 0 ? 0 : 1;
}

static int cmd_registers(int argc, char **argv)
{
    if (argc > 1) {
        int help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
        fputs("usage: der-sim registers\n\nPrints the register maps of every asset type as "
              "Markdown (the text of docs/registers.md).\n",
              help ? stdout : stderr);
        return help ? 0 : 2;
    }
    return regmap_markdown(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("der-sim %s (commit %s)\n", DERLOOP_VERSION, DERLOOP_COMMIT);
        return 0;
    }
    /* getopt_long sees the subcommand's arguments as its own argv */
    argc--;
    argv++;
    if (!strcmp(cmd, "check"))
        return cmd_check(argc, argv);
    if (!strcmp(cmd, "run"))
        return cmd_run(argc, argv);
    if (!strcmp(cmd, "serve"))
        return cmd_serve(argc, argv);
    if (!strcmp(cmd, "registers"))
        return cmd_registers(argc, argv);
    fprintf(stderr, "der-sim: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
