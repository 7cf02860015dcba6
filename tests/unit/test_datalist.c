/* test_datalist.c: list-file parsing: paths with spaces, comments, blank lines, labels as the last field, and
 * errors that name file:line. */
#include <string.h>

#include "datalist.h"
#include "test.h"

#define OUT_DIR "build/test-out"

static const char *write_list(const char *name, const char *text) {
    static char path[512];
    mvd_err err;
    snprintf(path, sizeof path, OUT_DIR "/%s", name);
    if (mkdir_p(OUT_DIR, &err) != 0 || write_file_atomic(path, text, strlen(text), &err) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, err.msg);
        exit(1);
    }
    return path;
}

static void test_spaces_comments_blanks(void) {
    const char *path = write_list("list_ok.txt",
                                  "# a comment line\n"
                                  "a/b.mp4 3\n"
                                  "\n"
                                  "   \t\n"
                                  "dir with space/my video.avi 12\n"
                                  "  indented.mkv\t7  \r\n"
                                  "   # indented comment\n"
                                  "last_no_newline.mp4 0");
    datalist list;
    mvd_err err;
    REQUIRE(datalist_read(path, &list, &err) == 0, "read failed: %s", err.msg);
    REQUIRE(list.count == 4, "expected 4 entries, got %lld", (long long)list.count);
    CHECK(strcmp(list.entries[0].path, "a/b.mp4") == 0 && strcmp(list.entries[0].label, "3") == 0, "entry 0");
    CHECK(list.entries[0].line == 2, "entry 0 line %lld", (long long)list.entries[0].line);
    CHECK(strcmp(list.entries[1].path, "dir with space/my video.avi") == 0, "path with spaces: '%s'",
          list.entries[1].path);
    CHECK(strcmp(list.entries[1].label, "12") == 0 && list.entries[1].line == 5, "entry 1 label/line");
    CHECK(strcmp(list.entries[2].path, "indented.mkv") == 0 && strcmp(list.entries[2].label, "7") == 0,
          "tab separated, CRLF: '%s' '%s'", list.entries[2].path, list.entries[2].label);
    CHECK(strcmp(list.entries[3].path, "last_no_newline.mp4") == 0 && list.entries[3].line == 8, "last line");
    datalist_free(&list);
    CHECK(list.count == 0 && list.entries == NULL, "free resets");
}

static void test_missing_label_names_line(void) {
    const char *path = write_list("list_bad.txt", "ok.mp4 1\n# c\n\nlonely_path.mp4\nafter.mp4 2\n");
    datalist list;
    mvd_err err = {{0}};
    CHECK(datalist_read(path, &list, &err) != 0, "a line without a label must fail");
    CHECK(strstr(err.msg, "list_bad.txt:4") != NULL, "error should name file:line, got: %s", err.msg);
    CHECK(list.count == 0 && list.entries == NULL, "nothing returned on failure");
    test_report("message: %s", err.msg);
}

static void test_missing_file(void) {
    datalist list;
    mvd_err err = {{0}};
    CHECK(datalist_read(OUT_DIR "/no_such_list.txt", &list, &err) != 0, "missing list must fail");
    CHECK(strstr(err.msg, "no_such_list.txt") != NULL, "error names the file: %s", err.msg);
}

static void test_empty_list(void) {
    const char *path = write_list("list_empty.txt", "# only comments\n\n");
    datalist list;
    mvd_err err;
    CHECK(datalist_read(path, &list, &err) == 0 && list.count == 0, "an empty list is valid (count 0)");
    datalist_free(&list);
}

/* Lists saved by some editors start with a UTF-8 byte-order mark; it is not part of the first path. */
static void test_byte_order_mark(void) {
    const char *path = write_list("list_bom.txt", "\xEF\xBB\xBF" "first.mp4 1\nsecond.mp4 2\n");
    datalist list;
    mvd_err err;
    REQUIRE(datalist_read(path, &list, &err) == 0, "read failed: %s", err.msg);
    REQUIRE(list.count == 2, "expected 2 entries, got %lld", (long long)list.count);
    CHECK(strcmp(list.entries[0].path, "first.mp4") == 0, "first path '%s'", list.entries[0].path);
    datalist_free(&list);
}

static void test_sample_list(void) {
    datalist list;
    mvd_err err;
    REQUIRE(datalist_read("examples/data/list.txt", &list, &err) == 0,
            "%s (run bash scripts/fetch-sample-data.sh)", err.msg);
    CHECK(list.count == 4, "sample list has %lld entries", (long long)list.count);
    datalist_free(&list);
}

int main(void) {
    RUN(test_spaces_comments_blanks);
    RUN(test_missing_label_names_line);
    RUN(test_missing_file);
    RUN(test_empty_list);
    RUN(test_byte_order_mark);
    RUN(test_sample_list);
    return test_summary();
}
