/* The unit-test runner: every tests/unit/test_*.c registers its suites through a function
 * `void test_register_NAME(void)` that the Makefile lists in unit_suites.h.
 * Usage: unit-tests [SUITE_SUBSTRING]  (runs the suites whose name contains it). */
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "unit_suites.h"

int main(int argc, char **argv)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
#define X(f) f();
    UNIT_SUITES
#undef X
    if (argc > 1) {
        for (CU_pSuite s = CU_get_registry()->pSuite; s; s = s->pNext)
            if (!strstr(s->pName, argv[1]))
                CU_set_suite_active(s, CU_FALSE);
    }
    CU_basic_set_mode(CU_BRM_NORMAL);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed ? 1 : 0;
}
