/* checkpoint.h: the trainer's resumable state beside the student checkpoint.
 *
 * A run folder holds checkpoint.safetensors (the student alone, with the MVD student key names, loadable by
 * PyTorch with strict=True) and checkpoint-state.safetensors (AdamW's moments as exp_avg.<name> and
 * exp_avg_sq.<name>, and in its metadata the step, the seed and the settings that decide the data order and
 * the schedule). Both are written atomically, the state first; both record the step, so a pair torn by a
 * crash between the two renames is detected at resume instead of silently mixing steps. */
#ifndef MVD_CHECKPOINT_H
#define MVD_CHECKPOINT_H

#include <stdint.h>

#include "optim.h"
#include "student.h"
#include "util.h"

#define CHECKPOINT_STUDENT_FILE "checkpoint.safetensors"
#define CHECKPOINT_STATE_FILE "checkpoint-state.safetensors"

/* What must agree for a resumed run to continue the same run bit for bit (besides the model's shape, which
 * loading checks). */
typedef struct {
    int64_t step;            /* optimiser updates done */
    uint64_t seed;
    int64_t batch, accum;
    int64_t total_steps, warmup_steps;
    char settings[512];      /* the remaining settings as text, compared verbatim */
} train_position;

/* Writes both files into dir. meta: extra student metadata (NULL-terminated pairs, may be NULL). */
int checkpoint_save(const char *dir, const student *s, const adamw_state *o, const train_position *pos,
                    mvd_err *err);
/* Loads the moments and the position from dir into o and pos, checking them against the student and the
 * student file's step; the student itself is loaded with student_load. */
int checkpoint_load_state(const char *dir, const student *s, adamw_state *o, train_position *pos, mvd_err *err);
/* The step recorded in a student checkpoint's metadata, or -1. */
int64_t checkpoint_student_step(const char *path, mvd_err *err);

#endif
