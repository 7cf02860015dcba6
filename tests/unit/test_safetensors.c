/* test_safetensors.c: the safetensors reader and writer, against files written by the Python safetensors
 * package (an independent implementation) and against malformed files, which must be refused with a message
 * naming the file and the problem. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "test.h"

#define OUT "build/test-out/safetensors"

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

static void test_round_trip(void) {
    float a[6] = {1, -2, 3.5f, 0, 1e-30f, -7};
    uint8_t b[3] = {1, 0, 1};
    int64_t sa[2] = {2, 3}, sb[1] = {3};
    st_writer w;
    st_writer_init(&w);
    st_writer_add(&w, "layer.weight", ST_F32, 2, sa, a);
    st_writer_add(&w, "mask", ST_U8, 1, sb, b);
    st_writer_meta(&w, "format", "mvd-test");
    mvd_err err;
    REQUIRE(st_writer_save(&w, OUT "/rt.safetensors", &err) == 0, "%s", err.msg);
    st_writer_free(&w);

    st_file f;
    REQUIRE(st_open(&f, OUT "/rt.safetensors", &err) == 0, "%s", err.msg);
    const st_tensor *t = st_find(&f, "layer.weight");
    REQUIRE(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3 && t->dtype == ST_F32, "bad tensor entry");
    float back[6];
    CHECK(st_read_f32(&f, t, back, &err) == 0 && memcmp(a, back, sizeof a) == 0, "values differ");
    const st_tensor *m = st_find(&f, "mask");
    uint8_t mb[3];
    CHECK(m && st_read_raw(&f, m, mb, &err) == 0 && memcmp(mb, b, 3) == 0, "u8 values differ");
    CHECK(st_meta(&f, "format") && strcmp(st_meta(&f, "format"), "mvd-test") == 0, "metadata lost");
    CHECK(st_find(&f, "absent") == NULL, "found a tensor that does not exist");
    st_close(&f);
}

/* The Python package writes F32, F16 and BF16 tensors from formulas; the C reader must return them exactly. */
static void test_reads_python_file(void) {
    const char *cmd =
        "build/venv/bin/python -c \""
        "import numpy as np, torch\n"
        "from safetensors.torch import save_file\n"
        "x = torch.arange(-20, 20, dtype=torch.float32) / 7\n"
        "save_file({'f32': x.reshape(5, 8), 'f16': x.half(), 'bf16': x.bfloat16()}, '" OUT "/py.safetensors',"
        " metadata={'who': 'python'})\n\"";
    REQUIRE(system(cmd) == 0, "python safetensors could not write the file (is build/venv installed?)");
    st_file f;
    mvd_err err;
    REQUIRE(st_open(&f, OUT "/py.safetensors", &err) == 0, "%s", err.msg);
    float v[40];
    double worst16 = 0, worstbf = 0;
    const st_tensor *t = st_find(&f, "f32");
    REQUIRE(t && st_read_f32(&f, t, v, &err) == 0, "f32 missing");
    for (int i = 0; i < 40; i++) CHECK(v[i] == (float)(i - 20) / 7.0f, "f32[%d] = %g", i, v[i]);
    t = st_find(&f, "f16");
    REQUIRE(t && t->dtype == ST_F16 && st_read_f32(&f, t, v, &err) == 0, "f16 missing");
    for (int i = 0; i < 40; i++) worst16 = fmax(worst16, fabs(v[i] - (i - 20) / 7.0));
    t = st_find(&f, "bf16");
    REQUIRE(t && t->dtype == ST_BF16 && st_read_f32(&f, t, v, &err) == 0, "bf16 missing");
    for (int i = 0; i < 40; i++) worstbf = fmax(worstbf, fabs(v[i] - (i - 20) / 7.0));
    test_report("max |f16 - exact| = %.3g (half ulp at 3: 9.8e-4), max |bf16 - exact| = %.3g (half ulp: 7.8e-3)",
                worst16, worstbf);
    CHECK(worst16 <= 0.5 * 0x1p-9 && worstbf <= 0.5 * 0x1p-6, "conversion outside half an ulp");
    CHECK(st_meta(&f, "who") && strcmp(st_meta(&f, "who"), "python") == 0, "metadata lost");
    st_close(&f);
}

static void expect_refused(const char *name, const void *bytes, size_t n, const char *needle) {
    char path[256];
    snprintf(path, sizeof path, OUT "/%s.safetensors", name);
    write_bytes(path, bytes, n);
    st_file f;
    mvd_err err = {{0}};
    int rc = st_open(&f, path, &err);
    CHECK(rc != 0, "%s: malformed file was accepted", name);
    if (rc == 0) st_close(&f);
    CHECK(strstr(err.msg, path) != NULL, "%s: message does not name the file: %s", name, err.msg);
    CHECK(strstr(err.msg, needle) != NULL, "%s: message lacks '%s': %s", name, needle, err.msg);
}

static void make_file(char *buf, size_t *n, const char *json, size_t data_bytes) {
    uint64_t h = strlen(json);
    for (int i = 0; i < 8; i++) buf[i] = (char)(h >> (8 * i));
    memcpy(buf + 8, json, h);
    memset(buf + 8 + h, 0, data_bytes);
    *n = 8 + h + data_bytes;
}

static void test_malformed_files(void) {
    char buf[512];
    size_t n;
    expect_refused("short", "abc", 3, "too short");
    make_file(buf, &n, "{}", 0);
    buf[5] = 0x7f; /* header length far beyond the file */
    expect_refused("hugeheader", buf, n, "header length");
    make_file(buf, &n, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 8);
    expect_refused("pastend", buf, n, "outside");
    make_file(buf, &n, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16);
    expect_refused("sizemismatch", buf, n, "do not match");
    make_file(buf, &n, "{\"w\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2);
    expect_refused("dtype", buf, n, "dtype");
    make_file(buf, &n, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4);
    expect_refused("negdim", buf, n, "dimension");
    make_file(buf, &n, "[1,2]", 0);
    expect_refused("notobject", buf, n, "JSON object");
}

int main(void) {
    if (system("mkdir -p " OUT) != 0) return 1;
    RUN(test_round_trip);
    RUN(test_reads_python_file);
    RUN(test_malformed_files);
    return test_summary();
}
