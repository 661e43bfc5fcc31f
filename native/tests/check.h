/*
 * check.h — assertions shared by the C tests in native/tests/.
 *
 * Each test program is one translation unit that includes this header once:
 * CHECK(cond) and CHECK_STATUS(expr, want) count a failure in `failures` and
 * print where it happened (the first CHECK_PRINT_LIMIT failures only, so a
 * broken loop does not flood the log), and the test's main() exits non-zero
 * when `failures` is not 0. Plain C11 that MSVC also compiles.
 */
#ifndef MC_TEST_CHECK_H
#define MC_TEST_CHECK_H

#include <stdio.h>

#include "mediacore.h"

#ifndef CHECK_PRINT_LIMIT
#define CHECK_PRINT_LIMIT 50
#endif

static int failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (failures < CHECK_PRINT_LIMIT)                                                      \
                fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);           \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define CHECK_STATUS(expr, want)                                                                   \
    do {                                                                                           \
        mc_status got_ = (expr);                                                                   \
        if (got_ != (want)) {                                                                      \
            if (failures < CHECK_PRINT_LIMIT)                                                      \
                fprintf(stderr, "%s:%d: %s = %s, want %s\n", __FILE__, __LINE__, #expr,            \
                        mc_status_name(got_), mc_status_name(want));                               \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#define CHECK_OK(expr) CHECK_STATUS((expr), MC_OK)

#endif /* MC_TEST_CHECK_H */
