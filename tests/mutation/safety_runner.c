/* The safety tests alone, for the mutation check (tests/integration/test_safety_mutants.sh):
 * runs the suites of tests/unit/test_safety*.c, listed in safety_suites.h that the script
 * generates the way the Makefile generates unit_suites.h. Exits 1 when a test fails. */
#include <stdio.h>

#include <CUnit/Basic.h>

#include "safety_suites.h"

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
#define X(f) f();
    SAFETY_SUITES
#undef X
    CU_basic_set_mode(CU_BRM_NORMAL);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed() + CU_get_number_of_suites_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    return failed || ran == 0 ? 1 : 0;
}
