/* der-headend: placeholder until the headend lands (issue 5). */
#include <stdio.h>

int main(void)
{
    fputs("der-headend: not built yet (issue 5)\n", stderr);
    return 2;
}
