/* strat_null: the Null strategy, the baseline every run is compared with. It asks for
 * nothing: the arbiter's defaults apply (batteries 0 W, every other device keeps its own
 * behaviour), so the site behaves as if it had no controller. */
#include "gateway/strategies/strategy.h"

static int null_decide(void *state, const struct procimg *img, int64_t now_ms, struct decision *dm)
{
    return 0;
}

const struct strategy_ops strategy_null_ops = {
    .name = "null",
    .summary = "No control: batteries idle at 0 W, other devices keep their own behaviour.",
    .source = DSRC_OPTIMISATION,
    .decide = null_decide,
};
