/* Unit tests for sim/wire/regimage.c: the request checks that guard modbus_reply. */
#include <CUnit/CUnit.h>

#include "sim/wire/regimage.h"

static int refuse_over_1000(void *ctx, uint16_t addr, uint16_t n, const uint16_t *v)
{
    int *calls = ctx;
    (*calls)++;
    for (uint16_t i = 0; i < n; i++)
        if (v[i] > 1000)
            return 3;
    return 0;
}

static void test_new_and_layout(void)
{
    struct regimage *img = regimage_new(40000, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    CU_ASSERT_EQUAL(img->map->start_registers, 40000);
    CU_ASSERT_EQUAL(img->map->nb_registers, 100);
    CU_ASSERT_EQUAL(img->map->nb_bits, 0);
    CU_ASSERT_EQUAL(img->map->nb_input_registers, 0);
    regimage_regs(img)[99] = 0xBEEF;
    CU_ASSERT_EQUAL(img->map->tab_registers[99], 0xBEEF);
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(img->writable[i], 0);
    CU_ASSERT_EQUAL(img->writes, 0);
    regimage_free(img);
    regimage_free(NULL);
    /* The block must fit the 16-bit address space. */
    CU_ASSERT_PTR_NULL(regimage_new(65500, 100));
    CU_ASSERT_PTR_NULL(regimage_new(0, 0));
    img = regimage_new(65535, 1);
    CU_ASSERT_PTR_NOT_NULL(img);
    regimage_free(img);
}

static void test_check_read(void)
{
    struct regimage *img = regimage_new(40000, 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    CU_ASSERT_EQUAL(regimage_check_read(img, 40000, 1), 0);
    CU_ASSERT_EQUAL(regimage_check_read(img, 40000, 125), 0);
    CU_ASSERT_EQUAL(regimage_check_read(img, 40199, 1), 0);
    CU_ASSERT_EQUAL(regimage_check_read(img, 40075, 125), 0);
    CU_ASSERT_EQUAL(regimage_check_read(img, 40000, 0), 2);
    CU_ASSERT_EQUAL(regimage_check_read(img, 40000, 126), 2);
    CU_ASSERT_EQUAL(regimage_check_read(img, 39999, 1), 2);
    CU_ASSERT_EQUAL(regimage_check_read(img, 39999, 2), 2);
    CU_ASSERT_EQUAL(regimage_check_read(img, 40199, 2), 2);
    CU_ASSERT_EQUAL(regimage_check_read(img, 40200, 1), 2);
    CU_ASSERT_EQUAL(regimage_check_read(img, 65535, 125), 2); /* wraps in 16 bits */
    CU_ASSERT_EQUAL(regimage_check_read(img, 0, 10), 2);
    regimage_free(img);
}

static void test_check_write(void)
{
    struct regimage *img = regimage_new(1000, 50);
    CU_ASSERT_PTR_NOT_NULL_FATAL(img);
    for (int i = 10; i < 20; i++)
        img->writable[i] = 1;
    uint16_t v[130] = {0};
    CU_ASSERT_EQUAL(regimage_check_write(img, 1010, 10, v), 0);
    CU_ASSERT_EQUAL(regimage_check_write(img, 1019, 1, v), 0);
    CU_ASSERT_EQUAL(regimage_check_write(img, 1009, 1, v), 2); /* read-only */
    CU_ASSERT_EQUAL(regimage_check_write(img, 1009, 2, v), 2); /* one read-only among them */
    CU_ASSERT_EQUAL(regimage_check_write(img, 1019, 2, v), 2);
    CU_ASSERT_EQUAL(regimage_check_write(img, 1010, 0, v), 2);
    CU_ASSERT_EQUAL(regimage_check_write(img, 999, 1, v), 2);
    CU_ASSERT_EQUAL(regimage_check_write(img, 1050, 1, v), 2);

    int calls = 0;
    img->validate = refuse_over_1000;
    img->ctx = &calls;
    v[3] = 1001;
    CU_ASSERT_EQUAL(regimage_check_write(img, 1010, 4, v), 3);
    CU_ASSERT_EQUAL(calls, 1);
    CU_ASSERT_EQUAL(regimage_check_write(img, 1010, 3, v), 0);
    CU_ASSERT_EQUAL(calls, 2);
    /* The validator only sees writes that passed the range and writability checks. */
    CU_ASSERT_EQUAL(regimage_check_write(img, 1009, 4, v), 2);
    CU_ASSERT_EQUAL(calls, 2);
    regimage_free(img);

    struct regimage *big = regimage_new(0, 200);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    for (int i = 0; i < 200; i++)
        big->writable[i] = 1;
    CU_ASSERT_EQUAL(regimage_check_write(big, 0, 123, v), 0);
    CU_ASSERT_EQUAL(regimage_check_write(big, 0, 124, v), 2);
    regimage_free(big);
}

void test_register_regimage(void)
{
    CU_pSuite s = CU_add_suite("regimage", NULL, NULL);
    CU_add_test(s, "new and layout", test_new_and_layout);
    CU_add_test(s, "check read", test_check_read);
    CU_add_test(s, "check write", test_check_write);
}
