/* der-sim: the simulator's command line. Each subcommand parses its options here and calls the
 * library (scenario, serve, regdoc); nothing below main exits the process. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/caltime.h"
#include "common/duration.h"
#include "common/log.h"
#include "reports/compare.h"
#include "reports/experiment.h"
#include "reports/fit.h"
#include "reports/kpi.h"
#include "reports/regdoc.h"
#include "reports/splitcmp.h"
#include "common/rtclock.h"
#include "sim/run/import.h"
#include "sim/run/demo.h"
#include "sim/run/inventory.h"
#include "sim/run/runner.h"
#include "sim/scenario/scenario.h"
#include "sim/run/serve.h"
#include "sim/run/sitecfg.h"
#include "reports/sweep.h"
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
          "  compare RUN_DIR...     side-by-side report of runs (KPIs and overlaid plots)\n"
          "  sweep SCENARIO         run a grid of --set values in parallel, table of KPIs\n"
          "  fit SCENARIO           calibrate scenario values against a field record\n"
          "  serve SCENARIO         serve every site of a scenario in real time over Modbus TCP\n"
          "  import RECORDS.csv     field records -> a scenario and its profiles (--out DIR)\n"
          "  inventory SCENARIO     write the headend inventory of a scenario's fleet\n"
          "  demo SCENARIO          a fleet live: serve, gateways and der-headend, one command\n"
          "  kpis                   print the KPI definitions (docs/kpis.md)\n"
          "  registers              print the register maps (docs/registers.md)\n"
          "  help                   this text; `der-sim COMMAND --help` for a command's options\n"
          "  version                the build's version and commit\n",
          out);
}

static void usage_check(FILE *out)
{
    fputs("usage: der-sim check [--set PATH=VALUE]... [--seed N] FILE...\n"
          "\n"
          "Loads and validates each scenario file, its expectations and, for every site, the\n"
          "gateway configuration a run would build (strategy, params, constraints, safety,\n"
          "split, uplink), and prints a one-line summary, or the first error with the file, the\n"
          "JSON path and the bad value. Nothing is run. Exit status 1 if any file is invalid.\n"
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
          "library against the simulator's devices; then the same scenario with the baseline\n"
          "strategy (null unless expect.baseline_strategy names another). Writes timeseries.csv,\n"
          "decisions.csv, events.log, kpis.json, plots/ (gnuplot) and report.html, prints one\n"
          "line per expectation and the SHA-256 digest; the same scenario, seed and build give\n"
          "the same digest on either transport. Exit status 1 when an expectation or an\n"
          "invariant check failed. docs/reports.md.\n"
          "  -t, --transport T      tcp (Modbus TCP on loopback, default) or inproc (fast)\n"
          "  -o, --out DIR          output directory (default reports/<scenario>/<time>-<T>)\n"
          "  -s, --set PATH=VALUE   override a scenario value (e.g. gateway.params.kp=0.4)\n"
          "      --seed N           override the scenario's seed\n"
          "  -q, --quiet            no progress line\n"
          "      --progress         the progress line even when stderr is not a terminal\n"
          "      --sample D         timeseries.csv and decisions.csv: one row per site and D\n"
          "                         (e.g. 1m: means, lowest and highest step), full (every\n"
          "                         step) or auto (default: full up to 200000 steps, then 1m,\n"
          "                         5m (a year), 15m or 1h, at most 120000 rows); the\n"
          "                         KPIs see every step either way\n"
          "      --no-pin           tcp: do not pin the run to one CPU (pinning is ~3x faster)\n"
          "      --no-baseline      do not run the baseline (vs_baseline KPIs are null)\n"
          "      --no-plots         do not run gnuplot\n"
          "      --no-report        do not write report.html\n"
          "      --no-optimum       do not solve the perfect-foresight optimum (its KPIs null)\n"
          "      --optimum-budget D wall-clock budget of the optimum (default 10m); past it the\n"
          "                         optimum KPIs are null and kpis.json says why\n"
          "      --split-compare    run once per split policy (inproc, no baseline) into\n"
          "                         OUT/<policy>/ and compare them in OUT/split-compare.csv,\n"
          "                         .md, .html and .svg (docs/split.md)\n"
          "  -h, --help             this text\n",
          out);
}

/* The optimum's progress on a long run (it works in chunks): one line per chunk. */
static void optimum_progress(void *ctx, size_t done, size_t n)
{
    (void)ctx;
    if (n > OPTIMUM_CHUNK_N)
        fprintf(stderr, "der-sim run: optimum %zu/%zu intervals (%.0f %%)\n", done, n,
                100.0 * (double)done / (double)n);
}

static void usage_serve(FILE *out)
{
    fputs(
        "usage: der-sim serve [OPTIONS] SCENARIO\n"
        "\n"
        "Serves every site of SCENARIO in real time: each site on its own TCP port, each asset on\n"
        "its own Modbus unit id (docs/registers.md). Prints one line per site with its endpoint,\n"
        "then `ready sites=N`. Stops at the end of the scenario, or on SIGINT or SIGTERM.\n"
        "  -x, --speed X          simulated seconds per wall-clock second (default 1)\n"
        "  -b, --bind ADDR        address to listen on (default 127.0.0.1)\n"
        "  -p, --port-base P      site i listens on P + i (default: the file's ports, 0 = any);\n"
        "                         \"any\": any free port for every site, whatever the file says\n"
        "  -c, --config-dir DIR   write one gateway site configuration per site into DIR\n"
        "      --loop             keep serving after the scenario's end (state frozen at the end)\n"
        "      --shard K/N        serve only shard K of N: site i (0-based, after replication)\n"
        "                         goes to shard i % N + 1; N machines cover the fleet once\n"
        "  -s, --set PATH=VALUE   override a scenario value before validation\n"
        "      --seed N           override the scenario's seed\n"
        "  -h, --help             this text\n",
        out);
}

static void usage_inventory(FILE *out)
{
    fputs(
        "usage: der-sim inventory [OPTIONS] SCENARIO\n"
        "\n"
        "Writes the der-headend inventory (the assets file, docs/operations.md) of every site of\n"
        "SCENARIO after replication: site ids, groups, gateways gw-<site id> and asset ids as\n"
        "the gateways of `der-sim serve` report them (docs/scenario-format.md, \"Fleets\").\n"
        "  -o, --out FILE         write to FILE (default: standard output)\n"
        "      --shard K/N        only the sites of shard K of N (as `der-sim serve --shard`)\n"
        "  -s, --set PATH=VALUE   override a scenario value before validation\n"
        "      --seed N           override the scenario's seed\n"
        "  -h, --help             this text\n",
        out);
}

static void usage_demo(FILE *out)
{
    fputs("usage: der-sim demo [OPTIONS] SCENARIO\n"
          "\n"
          "A fleet live with one command: writes the fleet's headend inventory, starts\n"
          "der-headend, `der-sim serve` for SCENARIO and the gateways (real binaries, Modbus TCP\n"
          "and gRPC on loopback, free ports, state in a temporary directory), prints the console\n"
          "URL, the children's pids and a status line every few seconds. SIGINT or SIGTERM\n"
          "stops everything and removes the directory (docs/operations.md, \"Demo\").\n"
          "  -n, --sites N          the first site's replicas (sites[0].replicas=N)\n"
          "  -x, --speed X          simulated seconds per wall-clock second (default 1)\n"
          "      --http-listen H:P  the headend's REST listener (default 127.0.0.1:0, any port)\n"
          "      --gateways MODE    multi (one der-gateway --config-dir, default) or per-site\n"
          "      --workers N        the multi-site gateway's threads (default: its own)\n"
          "  -d, --duration D       the scenario's duration (default: the file's); the fleet\n"
          "                         holds its last state after it\n"
          "      --status-every D   period of the status line (default 5s)\n"
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

enum {
    OPT_SEED = 1000,
    OPT_LOOP,
    OPT_SHARD,
    OPT_NOPIN,
    OPT_NOBASE,
    OPT_NOPLOTS,
    OPT_NOREPORT,
    OPT_NOOPTIMUM,
    OPT_OPTBUDGET,
    OPT_SPLITCMP,
    OPT_SAMPLE,
    OPT_PROGRESS,
    OPT_SEEDS,
    OPT_PLAN,
    OPT_COLLECT
};

/* The options every scenario-loading subcommand shares, for its getopt loop's default case:
 * --set and --seed into lo, --help (usage to stdout), anything else (usage to stderr).
 * Returns -1 to go on, else the subcommand's exit status (0 after --help, 2 on an error). */
static int common_opt(int c, const char *arg, struct load_opts *lo, void (*usage_to)(FILE *))
{
    switch (c) {
    case 's':
        return add_set(lo, arg) ? 2 : -1;
    case OPT_SEED:
        return add_seed(lo, arg) ? 2 : -1;
    case 'h':
        usage_to(stdout);
        return 0;
    default:
        usage_to(stderr);
        return 2;
    }
}

/* The one scenario argument after the options, loaded: 0, or the exit status (2 usage,
 * 1 a scenario error, said on stderr). */
static int load_arg(int argc, char **argv, const struct load_opts *lo, void (*usage_to)(FILE *),
                    struct scenario **sc)
{
    if (optind != argc - 1) {
        usage_to(stderr);
        return 2;
    }
    return load(argv[optind], lo, sc) != 0 ? 1 : 0;
}

static int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {{"set", required_argument, NULL, 's'},
                                         {"seed", required_argument, NULL, OPT_SEED},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct load_opts lo = {0};
    int c;
    while ((c = getopt_long(argc, argv, "s:h", opts, NULL)) != -1) {
        int orc = common_opt(c, optarg, &lo, usage_check);
        if (orc >= 0)
            return orc;
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
        struct expect_list el;
        char err[1024];
        /* the expectations, then each site's gateway configuration as the run builds it */
        if (expect_parse(sc->expect, sc->path, &el, err, sizeof err) != 0 ||
            sitecfg_check(sc, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            scenario_free(sc);
            bad++;
            continue;
        }
        size_t assets = 0;
        for (size_t s = 0; s < sc->n_sites; s++)
            assets += sc->sites[s].n_assets;
        char dur[32], step[32];
        printf("ok %s: name=%s seed=%llu sites=%zu assets=%zu events=%zu duration=%s step=%s "
               "steps=%lld sha256=%s\n",
               argv[i], sc->name, (unsigned long long)sc->seed, sc->n_sites, assets, sc->n_events,
               duration_format(sc->duration_ms, dur, sizeof dur),
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

/* --split-compare: reports/splitcmp.c does the work; the exit status as for a run. */
static int run_split_compare(const char *path, const struct load_opts *lo, const char *dir,
                             int no_plots)
{
    struct splitcmp_opts so = {
        .path = path, .sets = lo->sets, .n_sets = lo->n_sets, .out_dir = dir, .no_plots = no_plots};
    char err[1024];
    fprintf(stderr, "der-sim run --split-compare: scenario=%s build=%s transport=inproc\n", path,
            DERLOOP_COMMIT);
    if (splitcmp_run(&so, stdout, err, sizeof err)) {
        fprintf(stderr, "der-sim run: %s\n", err);
        return 1;
    }
    printf("outputs=%s\n", dir);
    return 0;
}

/* --sample: "full" (every step), "auto" (the default: runner_default_sample_ms) or a
 * duration. */
static int parse_sample(const char *s, int64_t *ms)
{
    if (!strcmp(s, "full")) {
        *ms = 0;
        return 0;
    }
    if (!strcmp(s, "auto")) {
        *ms = -1;
        return 0;
    }
    if (duration_parse(s, ms) != 0 || *ms <= 0) {
        fprintf(stderr,
                "der-sim: --sample wants full, auto or a duration > 0 (e.g. 1m), got \"%s\"\n", s);
        return -1;
    }
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
                                         {"no-baseline", no_argument, NULL, OPT_NOBASE},
                                         {"no-plots", no_argument, NULL, OPT_NOPLOTS},
                                         {"no-report", no_argument, NULL, OPT_NOREPORT},
                                         {"no-optimum", no_argument, NULL, OPT_NOOPTIMUM},
                                         {"optimum-budget", required_argument, NULL, OPT_OPTBUDGET},
                                         {"split-compare", no_argument, NULL, OPT_SPLITCMP},
                                         {"sample", required_argument, NULL, OPT_SAMPLE},
                                         {"progress", no_argument, NULL, OPT_PROGRESS},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct load_opts lo = {0};
    int split_compare = 0;
    int64_t sample_ms = -1;           /* -1: the scenario's default (runner_default_sample_ms) */
    int quiet = 0, want_progress = 0; /* --quiet wins over --progress, whatever the order */
    struct experiment_opts eo = {.run = {.transport = RUNNER_TCP, .progress = isatty(2)},
                                 .optimum = {.budget_s = 600, .progress = optimum_progress}};
    struct runner_opts *ro = &eo.run;
    int64_t budget_ms;
    const char *out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "t:o:s:qh", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!strcmp(optarg, "tcp")) {
                ro->transport = RUNNER_TCP;
            } else if (!strcmp(optarg, "inproc")) {
                ro->transport = RUNNER_INPROC;
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
            quiet = 1;
            break;
        case OPT_NOPIN:
            ro->no_pin = 1;
            break;
        case OPT_NOBASE:
            eo.no_baseline = 1;
            break;
        case OPT_NOPLOTS:
            eo.no_plots = 1;
            break;
        case OPT_NOREPORT:
            eo.no_report = 1;
            break;
        case OPT_NOOPTIMUM:
            eo.no_optimum = 1;
            break;
        case OPT_OPTBUDGET:
            if (duration_parse(optarg, &budget_ms) != 0 || budget_ms <= 0) {
                fprintf(stderr,
                        "der-sim: --optimum-budget wants a duration > 0 (e.g. 60s), got "
                        "\"%s\"\n",
                        optarg);
                return 2;
            }
            eo.optimum.budget_s = (double)budget_ms / 1000.0;
            break;
        case OPT_SPLITCMP:
            split_compare = 1;
            break;
        case OPT_SAMPLE:
            if (parse_sample(optarg, &sample_ms) != 0)
                return 2;
            break;
        case OPT_PROGRESS:
            want_progress = 1;
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
    ro->progress = !quiet && (want_progress || isatty(2));
    if (!ro->progress)
        eo.optimum.progress = NULL;
    struct scenario *sc;
    if (load(argv[optind], &lo, &sc) != 0)
        return 1;
    const char *tname = ro->transport == RUNNER_TCP ? "tcp" : "inproc";
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
    ro->out_dir = dir;
    ro->sample_ms = sample_ms >= 0 ? sample_ms : runner_default_sample_ms(sc);
    if (split_compare) {
        scenario_free(sc);
        return run_split_compare(argv[optind], &lo, dir, eo.no_plots);
    }
    fprintf(stderr, "der-sim run: scenario=%s seed=%llu sha256=%s build=%s transport=%s\n",
            sc->name, (unsigned long long)sc->seed, sc->sha256, DERLOOP_COMMIT, tname);
    static struct experiment_result res; /* large: the expectations' texts */
    char err[1024];
    /* Ctrl-C or SIGTERM stops the run within 256 steps, with events.log and kpis.json complete
     * (the failure named); the optimum has its own budget */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* the TCP transport's calls carry on; the runner checks the flag */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    ro->stop = &g_stop;
    int rc = experiment_run(sc, &eo, &res, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "der-sim run: %s\n", err);
        scenario_free(sc);
        return 1;
    }
    printf("outputs=%s\n", dir);
    printf("ticks=%lld cycles=%llu transactions=%llu per_tick=%.2f writes=%llu wall_s=%.3f "
           "ticks_per_s=%.0f\n",
           (long long)res.run.ticks, (unsigned long long)res.run.cycles,
           (unsigned long long)res.run.transactions,
           res.run.ticks ? (double)res.run.transactions / (double)res.run.ticks : 0.0,
           (unsigned long long)res.run.setpoint_writes, res.run.wall_s,
           res.run.wall_s > 0 ? res.run.ticks / res.run.wall_s : 0.0);
    printf("checks: balance_and_soc_failures=%u register_view_mismatches=%u\n",
           res.run.check_failures, res.run.view_mismatches);
    const double *k = res.kpis.v;
    printf("kpis: import_kwh=%.3f export_kwh=%.3f net_cost=%.4f peak_15m_kw=%.3f "
           "self_consumption=%.4f self_sufficiency=%.4f interlocks=%.0f\n",
           k[KPI_ENERGY_IMPORT_KWH], k[KPI_ENERGY_EXPORT_KWH], k[KPI_NET_COST],
           k[KPI_PEAK_IMPORT_15M_KW], k[KPI_SELF_CONSUMPTION_RATIO], k[KPI_SELF_SUFFICIENCY_RATIO],
           k[KPI_INTERLOCK_TOTAL]);
    if (res.have_baseline)
        printf("baseline (%s): cost_reduction_pct=%.3f peak_reduction_pct=%.3f "
               "self_consumption_gain=%.4f\n",
               res.baseline_strategy, k[KPI_COST_REDUCTION_PCT], k[KPI_PEAK_REDUCTION_PCT],
               k[KPI_SELF_CONSUMPTION_GAIN]);
    for (size_t i = 0; i < res.expect.n; i++)
        printf("expect %s\n", res.results[i].text);
    if (res.expect.n)
        printf("expectations: %zu passed, %zu failed\n", res.expect.n - res.failed, res.failed);
    if (res.plots_rc <= 0)
        printf("%s\n", res.plot_msg);
    printf("digest sha256=%s\n", res.digest);
    if (res.report_path[0])
        printf("report=%s\n", res.report_path);
    scenario_free(sc);
    return res.failed || res.run.check_failures || res.run.view_mismatches ? 1 : 0;
}

static void usage_compare(FILE *out)
{
    fputs("usage: der-sim compare [--out DIR] RUN_DIR RUN_DIR...\n"
          "\n"
          "Writes a side-by-side report of finished runs: every KPI from each run's kpis.json\n"
          "with its difference to the first run (compare.html, compare.csv) and their series\n"
          "overlaid (plots/, gnuplot). Prints the path of compare.html.\n"
          "  -o, --out DIR          output directory (default reports/compare)\n"
          "  -h, --help             this text\n",
          out);
}

static int cmd_compare(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = "reports/compare";
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'h':
            usage_compare(stdout);
            return 0;
        default:
            usage_compare(stderr);
            return 2;
        }
    }
    if (argc - optind < 2) {
        usage_compare(stderr);
        return 2;
    }
    char note[4096], err[1024];
    mkdir("reports", 0755);
    int rc = compare_write((const char *const *)argv + optind, (size_t)(argc - optind), out, NULL,
                           note, sizeof note, err, sizeof err);
    if (rc) {
        fprintf(stderr, "der-sim compare: %s\n", err);
        return 1;
    }
    /* warnings (a run without plot data) to stderr, the rest of the note to stdout */
    for (char *save, *line = strtok_r(note, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (!strncmp(line, "warning: ", 9))
            fprintf(stderr, "der-sim compare: %s\n", line);
        else
            printf("%s\n", line);
    printf("report=%s/compare.html\n", out);
    return 0;
}

static void usage_sweep(FILE *out)
{
    fputs("usage: der-sim sweep [OPTIONS] --set PATH=V1,V2,... [--set ...] SCENARIO\n"
          "\n"
          "Runs SCENARIO once per combination of the --set values (the first --set varies\n"
          "slowest), each in its own `der-sim run --transport inproc` process, up to -j at once.\n"
          "Writes sweep.csv and sweep.html (KPIs per combination, in combination order), a plot\n"
          "of the main KPIs against each parameter, and names the best combination. Every\n"
          "combination is validated first, as `der-sim check` does: a bad value fails the sweep\n"
          "before any run starts, naming the combination, the parameter and the value.\n"
          "  -s, --set PATH=V1,V2   values of one parameter (a single value applies to every run)\n"
          "  -j, --jobs N           runs in parallel (default: the number of CPUs)\n"
          "      --optimise KPI[:min|max]  the KPI that names the best combination (default\n"
          "                         net_cost; direction: the KPI's own, docs/kpis.md)\n"
          "  -o, --out DIR          output directory (default reports/<scenario>/sweep)\n"
          "      --seeds N          run each combination N times, with the scenario's seed + "
          "0..N-1:\n"
          "                         the tables give each KPI's mean and standard deviation, and\n"
          "                         the best line says when the runner-up is within the noise\n"
          "      --plan FILE        run nothing: write the runs as a job list to FILE, one shell\n"
          "                         command line per run, for `parallel < FILE` (GNU parallel,\n"
          "                         also over ssh: docs/reports.md)\n"
          "      --collect DIR      run nothing: read the runs a --plan job list wrote into DIR\n"
          "                         and write the same tables, plots and best line (no SCENARIO\n"
          "                         and no --set: DIR/sweep-plan.json has them)\n"
          "  -h, --help             this text\n",
          out);
}

static int cmd_sweep(int argc, char **argv)
{
    static const struct option opts[] = {{"set", required_argument, NULL, 's'},
                                         {"jobs", required_argument, NULL, 'j'},
                                         {"optimise", required_argument, NULL, 'O'},
                                         {"optimize", required_argument, NULL, 'O'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"seeds", required_argument, NULL, OPT_SEEDS},
                                         {"plan", required_argument, NULL, OPT_PLAN},
                                         {"collect", required_argument, NULL, OPT_COLLECT},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    static struct sweep_opts so;
    const char *plan = NULL, *collect = NULL;
    static const char *fixed[MAX_SETS];
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    so.jobs = cpus > 0 ? (int)cpus : 1;
    so.optimise = KPI_NET_COST;
    so.maximise = -1;
    const char *out = NULL;
    char err[1024];
    int c;
    while ((c = getopt_long(argc, argv, "s:j:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 's': {
            struct sweep_param p;
            if (sweep_parse_param(optarg, &p, err, sizeof err)) {
                fprintf(stderr, "der-sim sweep: %s\n", err);
                return 2;
            }
            if (p.n == 1) {
                if (so.n_fixed >= MAX_SETS) {
                    fprintf(stderr, "der-sim sweep: at most %d single-valued --set\n", MAX_SETS);
                    return 2;
                }
                fixed[so.n_fixed++] = optarg;
            } else if (so.n_params >= SWEEP_MAX_PARAMS) {
                fprintf(stderr, "der-sim sweep: at most %d swept parameters\n", SWEEP_MAX_PARAMS);
                return 2;
            } else {
                so.params[so.n_params++] = p;
            }
            break;
        }
        case 'j': {
            char *end;
            long j = strtol(optarg, &end, 10);
            if (*end || j < 1 || j > 256) {
                fprintf(stderr, "der-sim sweep: --jobs wants 1..256, got \"%s\"\n", optarg);
                return 2;
            }
            so.jobs = (int)j;
            break;
        }
        case 'O': {
            char name[128];
            snprintf(name, sizeof name, "%s", optarg);
            char *dir = strchr(name, ':');
            if (dir) {
                *dir++ = '\0';
                if (strcmp(dir, "min") && strcmp(dir, "max")) {
                    fprintf(stderr, "der-sim sweep: --optimise KPI:min or KPI:max, got \"%s\"\n",
                            optarg);
                    return 2;
                }
                so.maximise = !strcmp(dir, "max");
            }
            if ((so.optimise = kpi_find(name)) < 0) {
                fprintf(stderr, "der-sim sweep: --optimise: unknown KPI \"%s\" (der-sim kpis)\n",
                        name);
                return 2;
            }
            break;
        }
        case 'o':
            out = optarg;
            break;
        case OPT_SEEDS: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 1 || n > SWEEP_MAX_SEEDS) {
                fprintf(stderr, "der-sim sweep: --seeds wants 1..%d, got \"%s\"\n", SWEEP_MAX_SEEDS,
                        optarg);
                return 2;
            }
            so.seeds = (size_t)n;
            break;
        }
        case OPT_PLAN:
            plan = optarg;
            break;
        case OPT_COLLECT:
            collect = optarg;
            break;
        case 'h':
            usage_sweep(stdout);
            return 0;
        default:
            usage_sweep(stderr);
            return 2;
        }
    }
    if (collect) {
        if (optind != argc || so.n_params || plan) {
            fprintf(stderr, "der-sim sweep: --collect DIR takes no SCENARIO, --set or --plan: "
                            "DIR/sweep-plan.json has them\n");
            return 2;
        }
        int rc = sweep_collect(collect, stdout, err, sizeof err);
        if (rc < 0 && rc != SWEEP_NO_BEST) {
            fprintf(stderr, "der-sim sweep: %s\n", err);
            return 1;
        }
        return 0;
    }
    if (optind != argc - 1 || !so.n_params) {
        usage_sweep(stderr);
        return 2;
    }
    if (so.maximise < 0)
        so.maximise = kpi_def(so.optimise)->better == KPI_HIGHER;
    /* every combination must load, with a valid gateway configuration, before any child
     * starts; the first names the default output directory */
    so.scenario = argv[optind];
    so.fixed_sets = fixed;
    if (sweep_check(&so, stderr, err, sizeof err) != 0) {
        fprintf(stderr, "der-sim sweep: %s\n", err);
        return 1;
    }
    char dir[1024], exe[1024];
    {
        /* the first combination: the default output directory and the seeds' base */
        struct load_opts lo = {0};
        for (size_t i = 0; i < so.n_fixed; i++)
            add_set(&lo, fixed[i]);
        char first[SWEEP_MAX_PARAMS][400];
        for (size_t j = 0; j < so.n_params; j++) {
            snprintf(first[j], sizeof first[j], "%s=%s", so.params[j].path, so.params[j].value[0]);
            add_set(&lo, first[j]);
        }
        struct scenario *sc;
        if (load(argv[optind], &lo, &sc) != 0)
            return 1;
        if (out)
            snprintf(dir, sizeof dir, "%s", out);
        else
            snprintf(dir, sizeof dir, "reports/%s/sweep", sc->name);
        so.base_seed = sc->seed;
        scenario_free(sc);
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "der-sim sweep: cannot find my own executable\n");
        return 1;
    }
    exe[n] = '\0';
    char parent[1024];
    snprintf(parent, sizeof parent, "%s", dir);
    for (char *p = parent + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(parent, 0755);
            *p = '/';
        }
    so.exe = exe;
    so.out_dir = dir;
    if (plan) {
        int n_runs = sweep_plan(&so, plan, err, sizeof err);
        if (n_runs < 0) {
            fprintf(stderr, "der-sim sweep: %s\n", err);
            return 1;
        }
        printf("plan=%s runs=%d\nthen: parallel < %s && %s sweep --collect %s\n", plan, n_runs,
               plan, exe, dir);
        return 0;
    }
    int rc = sweep_run(&so, stdout, err, sizeof err);
    if (rc < 0 && rc != SWEEP_NO_BEST) {
        fprintf(stderr, "der-sim sweep: %s\n", err);
        return 1;
    }
    return 0;
}

static int cmd_kpis(int argc, char **argv)
{
    if (argc > 1) {
        int help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
        fputs("usage: der-sim kpis\n\nPrints every KPI with its unit and formula as Markdown "
              "(the text of docs/kpis.md).\n",
              help ? stdout : stderr);
        return help ? 0 : 2;
    }
    kpi_markdown(stdout);
    return 0;
}

static int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"speed", required_argument, NULL, 'x'},
                                         {"bind", required_argument, NULL, 'b'},
                                         {"port-base", required_argument, NULL, 'p'},
                                         {"config-dir", required_argument, NULL, 'c'},
                                         {"loop", no_argument, NULL, OPT_LOOP},
                                         {"shard", required_argument, NULL, OPT_SHARD},
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
            if (!strcmp(optarg, "any")) {
                so.port_base = -1;
                break;
            }
            long p = strtol(optarg, &end, 10);
            if (*end || !*optarg || p < 0 || p > 65535) {
                fprintf(stderr, "der-sim: --port-base wants 0..65535 or any, got \"%s\"\n", optarg);
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
        case OPT_SHARD: {
            char err[160];
            if (serve_shard_parse(optarg, &so.shard_k, &so.shard_n, err, sizeof err)) {
                fprintf(stderr, "der-sim: %s\n", err);
                return 2;
            }
            break;
        }
        default: {
            int orc = common_opt(c, optarg, &lo, usage_serve);
            if (orc >= 0)
                return orc;
            break;
        }
        }
    }
    struct scenario *sc;
    int lrc = load_arg(argc, argv, &lo, usage_serve, &sc);
    if (lrc)
        return lrc;
    log_event(LOG_INFO, "event=start scenario=%s seed=%llu sha256=%s build=%s", sc->name,
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

static int cmd_inventory(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'}, {"shard", required_argument, NULL, OPT_SHARD},
        {"set", required_argument, NULL, 's'}, {"seed", required_argument, NULL, OPT_SEED},
        {"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0}};
    struct load_opts lo = {0};
    const char *out = NULL;
    int shard_k = 0, shard_n = 0;
    int c;
    while ((c = getopt_long(argc, argv, "o:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case OPT_SHARD: {
            char err[160];
            if (serve_shard_parse(optarg, &shard_k, &shard_n, err, sizeof err)) {
                fprintf(stderr, "der-sim: %s\n", err);
                return 2;
            }
            break;
        }
        default: {
            int orc = common_opt(c, optarg, &lo, usage_inventory);
            if (orc >= 0)
                return orc;
            break;
        }
        }
    }
    struct scenario *sc;
    int lrc = load_arg(argc, argv, &lo, usage_inventory, &sc);
    if (lrc)
        return lrc;
    char err[1024];
    int rc = 0;
    if (shard_n && (size_t)shard_k > sc->n_sites) { /* site i goes to i % N + 1: none here */
        fprintf(stderr, "der-sim: --shard %d/%d: shard %d holds no site: %s has %zu sites\n",
                shard_k, shard_n, shard_k, argv[optind], sc->n_sites);
        scenario_free(sc);
        return 1;
    }
    if (out && !shard_n) {
        rc = sim_inventory_write(sc, out, err, sizeof err);
    } else {
        cJSON *inv = sim_inventory_json(sc, err, sizeof err);
        /* a shard's part: the other shards' sites out (array index = scenario site index) */
        cJSON *arr = inv ? cJSON_GetObjectItemCaseSensitive(inv, "sites") : NULL;
        for (size_t i = sc->n_sites; arr && shard_n && i-- > 0;)
            if (!serve_in_shard(i, shard_k, shard_n))
                cJSON_DeleteItemFromArray(arr, (int)i);
        char *text = inv ? cJSON_Print(inv) : NULL;
        if (!text) {
            rc = -EINVAL;
            if (inv)
                snprintf(err, sizeof err, "inventory: out of memory");
        } else if (!out) {
            puts(text);
        } else {
            FILE *f = fopen(out, "w");
            int ok = f && fprintf(f, "%s\n", text) >= 0;
            if ((f && fclose(f)) || !ok) {
                rc = -EIO;
                snprintf(err, sizeof err, "inventory: cannot write %s: %s", out, strerror(errno));
            }
        }
        free(text);
        cJSON_Delete(inv);
    }
    if (rc)
        fprintf(stderr, "der-sim: %s\n", err);
    scenario_free(sc);
    return rc ? 1 : 0;
}

static int cmd_demo(int argc, char **argv)
{
    enum { OPT_HTTP = 2000, OPT_GW, OPT_WORKERS, OPT_STATUS };
    static const struct option opts[] = {{"sites", required_argument, NULL, 'n'},
                                         {"speed", required_argument, NULL, 'x'},
                                         {"http-listen", required_argument, NULL, OPT_HTTP},
                                         {"gateways", required_argument, NULL, OPT_GW},
                                         {"workers", required_argument, NULL, OPT_WORKERS},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"status-every", required_argument, NULL, OPT_STATUS},
                                         {"set", required_argument, NULL, 's'},
                                         {"seed", required_argument, NULL, OPT_SEED},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct load_opts lo = {0};
    struct demo_opts o = {.speed = 1.0, .out = stdout};
    char sites_set[64], dur_set[64];
    int64_t ms;
    long v;
    char *end;
    int c;
    while ((c = getopt_long(argc, argv, "n:x:d:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            v = strtol(optarg, &end, 10);
            if (*end || !*optarg || v < 1 || v > 10000) {
                fprintf(stderr, "der-sim: --sites wants 1..10000, got \"%s\"\n", optarg);
                return 2;
            }
            snprintf(sites_set, sizeof sites_set, "sites[0].replicas=%ld", v);
            if (add_set(&lo, sites_set))
                return 2;
            break;
        case 'x':
            if (parse_double("--speed", optarg, 0.0, &o.speed))
                return 2;
            break;
        case OPT_HTTP:
            o.http_listen = optarg;
            break;
        case OPT_GW:
            if (strcmp(optarg, "multi") && strcmp(optarg, "per-site")) {
                fprintf(stderr, "der-sim: --gateways wants multi or per-site, got \"%s\"\n",
                        optarg);
                return 2;
            }
            o.per_site = !strcmp(optarg, "per-site");
            break;
        case OPT_WORKERS:
            v = strtol(optarg, &end, 10);
            if (*end || !*optarg || v < 1 || v > 1024) {
                fprintf(stderr, "der-sim: --workers wants 1..1024, got \"%s\"\n", optarg);
                return 2;
            }
            o.workers = (int)v;
            break;
        case 'd':
        case OPT_STATUS:
            if (duration_parse(optarg, &ms) != 0 || ms <= 0) {
                fprintf(stderr, "der-sim: --%s wants a duration such as 1d, got \"%s\"\n",
                        c == 'd' ? "duration" : "status-every", optarg);
                return 2;
            }
            if (c == OPT_STATUS) {
                o.status_every_s = ms < 1000 ? 1 : (int)(ms / 1000);
                break;
            }
            snprintf(dur_set, sizeof dur_set, "duration=\"%s\"", optarg);
            if (add_set(&lo, dur_set))
                return 2;
            break;
        default: {
            int orc = common_opt(c, optarg, &lo, usage_demo);
            if (orc >= 0)
                return orc;
            break;
        }
        }
    }
    struct scenario *sc;
    int lrc = load_arg(argc, argv, &lo, usage_demo, &sc);
    if (lrc)
        return lrc;
    o.scenario = argv[optind];
    o.sets = lo.sets;
    o.n_sets = lo.n_sets;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = demo_run(sc, &o, &g_stop);
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
    return regdoc_markdown(stdout) == 0 ? 0 : 1;
}

static void usage_fit(FILE *out)
{
    fputs("usage: der-sim fit SCENARIO [--field FILE] --param PATH=LO:HI[:STEPS]... [OPTIONS]\n"
          "\n"
          "Calibrates a replay against its field record: runs SCENARIO (inproc, no plots) over a\n"
          "grid of every --param's range, then refines each parameter by golden-section search\n"
          "around the best, and prints the values whose replay best matches the record (the\n"
          "target). Deterministic. docs/incidents.md (Calibration).\n"
          "  -f, --field FILE       the field CSV (time in s from the start, grid_w, soc,\n"
          "                         battery_w); default: the scenario's \"field\" block\n"
          "  -p, --param SPEC       PATH=LO:HI[:STEPS]: numbers or durations (1s:5s), STEPS\n"
          "                         grid points (default 5); up to 8 parameters\n"
          "  -T, --target T         rmse (grid power at the record's samples, default) or\n"
          "                         oscillation (its dominant period and amplitude)\n"
          "  -r, --refine N         golden-section steps per parameter (default 8, 0 = none)\n"
          "  -s, --set PATH=VALUE   override a scenario value in every run\n"
          "  -o, --out FILE         write the fitted scenario (JSON) to FILE\n"
          "  -q, --quiet            no progress lines\n"
          "  -h, --help             this text\n",
          out);
}

static int cmd_fit(int argc, char **argv)
{
    static const struct option opts[] = {{"field", required_argument, NULL, 'f'},
                                         {"param", required_argument, NULL, 'p'},
                                         {"target", required_argument, NULL, 'T'},
                                         {"refine", required_argument, NULL, 'r'},
                                         {"set", required_argument, NULL, 's'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    static struct fit_opts fo;
    static struct load_opts lo;
    const char *out = NULL;
    char err[1024];
    int c, quiet = 0;
    fo.progress = stderr;
    while ((c = getopt_long(argc, argv, "f:p:T:r:s:o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            fo.field_csv = optarg;
            break;
        case 'p':
            if (fo.n == FIT_MAX_PARAMS) {
                fprintf(stderr, "der-sim fit: at most %d --param\n", FIT_MAX_PARAMS);
                return 2;
            }
            if (fit_param_parse(optarg, &fo.p[fo.n++], err, sizeof err)) {
                fprintf(stderr, "der-sim fit: %s\n", err);
                return 2;
            }
            break;
        case 'T':
            if (strcmp(optarg, "rmse") && strcmp(optarg, "oscillation")) {
                fprintf(stderr, "der-sim fit: --target must be rmse or oscillation, got \"%s\"\n",
                        optarg);
                return 2;
            }
            fo.target = strcmp(optarg, "rmse") ? FIT_OSCILLATION : FIT_RMSE;
            break;
        case 'r': {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end || n < 0 || n > 100) {
                fprintf(stderr, "der-sim fit: --refine wants an integer in [0, 100], got \"%s\"\n",
                        optarg);
                return 2;
            }
            fo.refine = n ? (int)n : -1;
            break;
        }
        case 's':
            if (add_set(&lo, optarg) || lo.n_sets > FIT_MAX_SETS)
                return 2;
            break;
        case 'o':
            out = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage_fit(stdout);
            return 0;
        default:
            usage_fit(stderr);
            return 2;
        }
    }
    if (argc - optind != 1 || fo.n == 0) {
        usage_fit(stderr);
        return 2;
    }
    fo.scenario = argv[optind];
    fo.sets = lo.sets;
    fo.n_sets = lo.n_sets;
    if (quiet)
        fo.progress = NULL;
    struct fit_result res;
    if (fit_run(&fo, &res, err, sizeof err)) {
        fprintf(stderr, "der-sim fit: %s\n", err);
        return 1;
    }
    printf("best after %d runs: cost=%.6g", res.runs, res.cost);
    for (size_t i = 0; i < fo.n; i++) {
        if (fo.p[i].duration)
            printf(" %s=%lldms", fo.p[i].path, (long long)res.best[i]);
        else
            printf(" %s=%.10g", fo.p[i].path, res.best[i]);
    }
    putchar('\n');
    static const int shown[] = {KPI_FIELD_GRID_RMSE_W,     KPI_FIELD_GRID_CORR,
                                KPI_FIELD_OSC_PERIOD_S,    KPI_FIELD_REPLAY_OSC_PERIOD_S,
                                KPI_FIELD_OSC_AMPLITUDE_W, KPI_FIELD_REPLAY_OSC_AMPLITUDE_W};
    for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
        printf("%s%s=%.*f", i ? " " : "", kpi_def(shown[i])->name, kpi_def(shown[i])->precision,
               res.kpis.v[shown[i]]);
    putchar('\n');
    if (out) {
        if (fit_write_scenario(&fo, &res, out, err, sizeof err)) {
            fprintf(stderr, "der-sim fit: %s\n", err);
            return 1;
        }
        printf("wrote %s\n", out);
    }
    return 0;
}

static void usage_import(FILE *out)
{
    fputs("usage: der-sim import [OPTIONS] --out DIR RECORDS.csv\n"
          "\n"
          "Turns field records (a CSV: time, grid_w, pv_w, battery_w or <battery>_w, soc or\n"
          "<battery>_soc, evse_w, boiler_w, load_w) into DIR/scenario.json, its profile CSVs and\n"
          "DIR/field.csv (the records, for overlays). docs/incidents.md.\n"
          "\n"
          "options:\n"
          "  -o, --out DIR            where to write (created if missing)\n"
          "      --name NAME          the scenario's name (default import)\n"
          "      --tz ZONE            IANA zone of time stamps without an offset (Europe/Berlin)\n"
          "      --time-format F      auto (default), iso, unix_s or unix_ms\n"
          "      --step DURATION      the run's step (default 1s)\n"
          "      --linear-gap DURATION gaps up to this are interpolated, longer ones held (60s)\n"
          "      --max-gap DURATION   a longer gap is an error (default: none)\n"
          "      --capacity-kwh X     every battery's capacity (default: estimated from SoC)\n"
          "      --strategy NAME      the replay's gateway strategy (default net_zero)\n"
          "      --site-json FILE     a der-headend export's site.json: asset ids, ratings,\n"
          "                           dispatches and offline spans (with its records.csv)\n"
          "  -h, --help               this text\n",
          out);
}

static int cmd_import(int argc, char **argv)
{
    enum { O_NAME = 256, O_TZ, O_FMT, O_STEP, O_LIN, O_MAX, O_CAP, O_STRAT, O_SITE };
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"name", required_argument, NULL, O_NAME},
                                         {"tz", required_argument, NULL, O_TZ},
                                         {"time-format", required_argument, NULL, O_FMT},
                                         {"step", required_argument, NULL, O_STEP},
                                         {"linear-gap", required_argument, NULL, O_LIN},
                                         {"max-gap", required_argument, NULL, O_MAX},
                                         {"capacity-kwh", required_argument, NULL, O_CAP},
                                         {"strategy", required_argument, NULL, O_STRAT},
                                         {"site-json", required_argument, NULL, O_SITE},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct import_opts io = {.step_ms = 1000, .linear_gap_ms = 60000};
    char err[1024], *end;
    int c;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        int64_t *dur = NULL;
        switch (c) {
        case 'o':
            io.out_dir = optarg;
            break;
        case O_NAME:
            io.name = optarg;
            break;
        case O_TZ:
            io.tz = optarg;
            break;
        case O_FMT:
            io.time_format = optarg;
            break;
        case O_STEP:
            dur = &io.step_ms;
            break;
        case O_LIN:
            dur = &io.linear_gap_ms;
            break;
        case O_MAX:
            dur = &io.max_gap_ms;
            break;
        case O_CAP:
            io.capacity_kwh = strtod(optarg, &end);
            if (*end || !(io.capacity_kwh > 0)) {
                fprintf(stderr, "der-sim: --capacity-kwh wants a number > 0, got \"%s\"\n", optarg);
                return 2;
            }
            break;
        case O_STRAT:
            io.strategy = optarg;
            break;
        case O_SITE:
            io.site_json = optarg;
            break;
        case 'h':
            usage_import(stdout);
            return 0;
        default:
            usage_import(stderr);
            return 2;
        }
        if (dur && (duration_parse(optarg, dur) || *dur < 0)) {
            fprintf(stderr, "der-sim: --%s wants a duration (\"10s\"), got \"%s\"\n",
                    opts[c == O_STEP  ? 4
                         : c == O_LIN ? 5
                                      : 6]
                        .name,
                    optarg);
            return 2;
        }
    }
    if (optind != argc - 1 || !io.out_dir) {
        usage_import(stderr);
        return 2;
    }
    io.csv = argv[optind];
    int rc = import_records(&io, stdout, err, sizeof err);
    if (rc) {
        fprintf(stderr, "der-sim: import: %s\n", rc == -ENOMEM ? "out of memory" : err);
        return 1;
    }
    return 0;
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
        if (argc > 2 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help")))
            fputs("usage: der-sim version\n\nPrints the build's version and commit.\n", stdout);
        else
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
    if (!strcmp(cmd, "demo"))
        return cmd_demo(argc, argv);
    if (!strcmp(cmd, "inventory"))
        return cmd_inventory(argc, argv);
    if (!strcmp(cmd, "registers"))
        return cmd_registers(argc, argv);
    if (!strcmp(cmd, "kpis"))
        return cmd_kpis(argc, argv);
    if (!strcmp(cmd, "compare"))
        return cmd_compare(argc, argv);
    if (!strcmp(cmd, "sweep"))
        return cmd_sweep(argc, argv);
    if (!strcmp(cmd, "fit"))
        return cmd_fit(argc, argv);
    if (!strcmp(cmd, "import"))
        return cmd_import(argc, argv);
    fprintf(stderr, "der-sim: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
