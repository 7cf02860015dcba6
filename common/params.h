/* params.h: flat tables of named tensors, and the arena used to lay out one allocation per class of memory.
 *
 * A model's parameters live in ONE device buffer; a param_table names every tensor in it (the reference
 * state_dict key, its shape, its offset) in a fixed order. Gradients and the AdamW moments use the same
 * layout (same offsets, same total), so the optimiser, gradient all-reduce and checkpoints walk one table.
 * Frozen tensors (the fixed position tables) sit in the same buffer, marked trainable = 0: their gradient
 * slots stay zero and the optimiser skips them.
 *
 * Loading is strict: every tensor the table names must be in the file with the same shape; a file key the
 * table does not name is an error unless the caller lists it as ignored (teachers: MAE's pos_embed,
 * VideoMAE's decoder). Errors name the tensor and the file. */
#ifndef MVD_PARAMS_H
#define MVD_PARAMS_H

#include <stdint.h>

#include "safetensors.h"
#include "util.h"

#define PARAM_NAME_MAX 96
#define PARAM_MAX_DIMS 5

typedef struct {
    char name[PARAM_NAME_MAX]; /* reference state_dict key, e.g. "blocks.0.attn.qkv.weight" */
    int ndim;
    int64_t shape[PARAM_MAX_DIMS];
    int64_t numel;
    int64_t offset;            /* in floats, from the start of the buffer */
    int trainable;             /* 0: frozen (position tables) */
    int decay;                 /* 1: weight decay applies (reference parameter groups) */
} param_entry;

typedef struct {
    int64_t count, cap;
    param_entry *e;
    int64_t total; /* floats */
} param_table;

void ptab_init(param_table *t);
void ptab_free(param_table *t);
/* Appends a tensor; returns its offset. decay follows the reference rule: none for 1-D tensors, names ending
 * in ".bias" and the exact names pos_embed / cls_token / mask_token. */
int64_t ptab_add(param_table *t, const char *name, int trainable, int ndim, const int64_t *shape);
const param_entry *ptab_find(const param_table *t, const char *name);
/* The total number of trainable floats. */
int64_t ptab_trainable_numel(const param_table *t);

/* Reads every tensor of the table from a safetensors file into the device buffer buf (t->total floats).
 * ignore(name) returning 1 marks a file key as deliberately unused (listed with mvd_info); any other
 * unknown, missing or mis-shaped tensor fails with a message naming it. ignore may be NULL. */
typedef int (*ptab_ignore_fn)(const char *name);
int ptab_load(const param_table *t, float *buf, const char *path, ptab_ignore_fn ignore, mvd_err *err);
/* Writes every tensor (trainable or not) of buf with its name and shape; meta: NULL-terminated key/value
 * pairs (may be NULL). Atomic (st_writer_save). */
int ptab_save(const param_table *t, const float *buf, const char *path, const char *const *meta, mvd_err *err);

/* Arena: lays out many tensors in one allocation. Run a layout function twice: first on an arena with
 * base NULL (it only counts), then on one whose base is the allocation of the counted size. Every tensor
 * starts on a 64-byte boundary. */
typedef struct {
    float *base;
    int64_t used; /* floats */
} arena;
float *arena_take(arena *a, int64_t n);
int32_t *arena_take_i32(arena *a, int64_t n);

/* Initialisers (host side, into a host buffer of the tensor's numel), as pure functions of a seed and the
 * tensor's name, so adding a tensor never changes the others. */
uint64_t param_name_key(uint64_t seed, const char *name);
void init_uniform(float *x, int64_t n, double bound, uint64_t key);        /* U(-bound, bound) */
void init_trunc_normal(float *x, int64_t n, double std, double a, double b, uint64_t key); /* N(0,std) in [a,b] */
void init_normal(float *x, int64_t n, double std, uint64_t key);
void init_const(float *x, int64_t n, float value);
/* The reference's _init_weights for the tensors every model shares: 2-D ".weight" xavier-uniform (Linear),
 * 1-D ".weight" one (LayerNorm), ".bias" / q_bias / v_bias zero. Returns -1 for any other tensor, which the
 * model initialises by its own rule. x is a host buffer of e->numel floats. */
int param_init_default(float *x, const param_entry *e, uint64_t seed);

#endif
