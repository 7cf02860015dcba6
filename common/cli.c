/* cli.c: see cli.h. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *cli_program = "mvd";

void cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cli_program);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help'.\n", cli_program);
    exit(1);
}

int cli_int(const char *option, const char *value, long min, long max) {
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end || v < min || v > max)
        cli_usage_error("--%s: '%s' is not an integer in [%ld, %ld]", option, value, min, max);
    return (int)v;
}

uint64_t cli_u64(const char *option, const char *value) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || end == value || *end || value[0] == '-')
        cli_usage_error("--%s: '%s' is not a non-negative integer", option, value);
    return (uint64_t)v;
}

double cli_double(const char *option, const char *value, double min, double max) {
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !(v >= min && v <= max))
        cli_usage_error("--%s: '%s' is not a number in [%g, %g]", option, value, min, max);
    return v;
}

int cli_choice(const char *option, const char *value, const char *const *choices) {
    char list[512] = "";
    for (int i = 0; choices[i]; i++) {
        if (strcmp(value, choices[i]) == 0) return i;
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, choices[i], sizeof list - strlen(list) - 1);
    }
    cli_usage_error("--%s: '%s' is not one of: %s", option, value, list);
}

void cli_prefer_passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    /* Under valgrind /proc/self/exe is valgrind's own tool, which refuses to be run directly. */
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload")) return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* exec failed (no /proc): go on with the default policy, only slower */
}
