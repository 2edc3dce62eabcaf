/* regdoc: the register maps of the simulated devices as Markdown (the text of
 * docs/registers.md, `der-sim registers`), printed from the tables the simulator serves and the
 * gateway decodes with. */
#ifndef DERLOOP_REGDOC_H
#define DERLOOP_REGDOC_H

#include <stdio.h>

/* Writes docs/registers.md to out. Returns 0 or -errno. */
int regdoc_markdown(FILE *out);

#endif
