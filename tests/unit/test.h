/* test.h: a minimal test harness for the C tests.
 *
 * A test program defines test functions, lists them in main with RUN(fn), and returns test_summary(), which
 * prints the closing line "N passed, N failed" and gives the exit status. CHECK records one failure with file,
 * line and a message but lets the test go on; REQUIRE also returns from the test function. Measured errors are
 * printed with test_report so a reader sees the margin, not only pass/fail. */
#ifndef MVD_TEST_H
#define MVD_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int test_passed_count, test_failed_count, test_current_failed;
static const char *test_current_name;

#define CHECK(cond, ...)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "  FAIL %s (%s:%d): ", test_current_name, __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                                \
            fputc('\n', stderr);                                                         \
            test_current_failed = 1;                                                     \
        }                                                                                \
    } while (0)

#define REQUIRE(cond, ...)          \
    do {                            \
        if (!(cond)) {              \
            CHECK(cond, __VA_ARGS__); \
            return;                 \
        }                           \
    } while (0)

#define RUN(fn)                                                   \
    do {                                                          \
        test_current_name = #fn;                                  \
        test_current_failed = 0;                                  \
        fn();                                                     \
        if (test_current_failed) {                                \
            test_failed_count++;                                  \
            fprintf(stderr, "not ok  %s\n", #fn);                 \
        } else {                                                  \
            test_passed_count++;                                  \
            fprintf(stderr, "ok      %s\n", #fn);                 \
        }                                                         \
    } while (0)

#define test_report(...)                 \
    do {                                 \
        fprintf(stderr, "        ");     \
        fprintf(stderr, __VA_ARGS__);    \
        fputc('\n', stderr);             \
    } while (0)

static inline int test_summary(void) {
    fflush(stderr);
    printf("%d passed, %d failed\n", test_passed_count, test_failed_count);
    return test_failed_count == 0 && test_passed_count > 0 ? 0 : 1;
}

#endif
