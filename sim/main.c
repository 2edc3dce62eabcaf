/* der-sim: the simulator's command line. */
#include <stdio.h>

int main(void)
{
    puts("der-sim: under construction");
    return 0;
}
