/* cli.h: checked parsing of command-line values. A bad value is a usage error: the message names the option and
 * the accepted range, and the tool exits with status 1 before doing any work. */
#ifndef MVD_CLI_H
#define MVD_CLI_H

#include <stdint.h>

/* The tool name used in messages; each main sets it first. */
extern const char *cli_program;

int cli_int(const char *option, const char *value, long min, long max);
uint64_t cli_u64(const char *option, const char *value);
double cli_double(const char *option, const char *value, double min, double max);
/* Returns the index of value in choices (NULL-terminated), or exits naming the choices. */
int cli_choice(const char *option, const char *value, const char *const *choices);
/* OpenMP threads that spin between parallel regions steal the cores OpenBLAS's own threads need (a 3x slower
 * training step on 2 cores) and burn CPU while a video decodes. libgomp reads OMP_WAIT_POLICY once, before
 * main, so when it is unset this sets it to PASSIVE and re-executes the program; a user's own setting wins.
 * Under valgrind it does nothing (set OMP_WAIT_POLICY=PASSIVE yourself there). */
void cli_prefer_passive_openmp(char **argv);
/* Exits with status 1 after printing "program: message" and a pointer to --help. */
void cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
