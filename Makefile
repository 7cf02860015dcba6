# One flat Makefile: the library (common/ + kernels/cpu/), the tools, the HDF5 zstd plugin, the tests, the
# benchmarks and the demo.
#
#   make            build/mvd-extract, build/mvd-train, build/plugins/libh5zstd.so (the HDF5 zstd plugin)
#   make demo       fetch the sample videos, build a cache, train a student on it
#   make test       the whole test suite (C unit tests, PyTorch reference comparisons, end-to-end runs)
#   make sanitize   the C unit tests under ASan + UBSan
#   make bench      benchmarks against the PyTorch reference (docs/PERFORMANCE.md)

CC       ?= gcc
BUILD    ?= build
PKGS     := libavformat libavcodec libswscale libavutil hdf5 libzstd libcjson libcrypto openblas
OPT      ?= -O2
CFLAGS   += -std=c11 -D_GNU_SOURCE -g $(OPT) -Wall -Wextra -fopenmp -Icommon -Ikernels \
            $(shell pkg-config --cflags $(PKGS))
LDLIBS   += $(shell pkg-config --libs $(PKGS)) -fopenmp -lm -lpthread

COMMON_SRC := $(wildcard common/*.c)
KERNEL_SRC := $(wildcard kernels/cpu/*.c)
LIB_OBJ    := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRC) $(KERNEL_SRC))
LIB        := $(BUILD)/libmvd.a
TOOLS      := $(BUILD)/mvd-extract $(BUILD)/mvd-train
PLUGIN     := $(BUILD)/plugins/libh5zstd.so
TEST_SRC   := $(wildcard tests/unit/test_*.c)
TEST_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(TEST_SRC))
BENCH_BIN  := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(wildcard tests/bench/*.c))

.PHONY: all tools tests demo test sanitize clean bench
all: tools $(PLUGIN)
tools: $(TOOLS)
tests: $(TEST_BIN) $(PLUGIN)

$(BUILD)/obj/%.o: %.c $(wildcard common/*.h kernels/*.h kernels/cpu/*.h train/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Each tool is its folder's objects linked with the library.
$(BUILD)/mvd-extract: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard extract/*.c)) $(LIB)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/mvd-train: $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard train/*.c)) $(LIB)
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# A dynamic HDF5 filter plugin for zstd (id 32015), so h5dump and other HDF5 programs read the caches.
$(PLUGIN): common/h5zstd.c common/h5zstd.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared -DMVD_H5ZSTD_PLUGIN $< -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/test.h tests/unit/test_files.h $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $< $(LIB) -o $@ $(LDLIBS)

$(BUILD)/bench/%: tests/bench/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(LIB) -o $@ $(LDLIBS)

# Benchmarks: the C models beside the PyTorch reference on the same sizes, with the ratio (docs/PERFORMANCE.md).
bench: all $(BENCH_BIN)
	bash scripts/bench.sh

demo: all
	bash scripts/demo.sh

test: all tests
	bash tests/run.sh

sanitize: $(PLUGIN)
	$(MAKE) BUILD=build/sanitize OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer" \
	    LDLIBS="$(LDLIBS) -fsanitize=address,undefined" tests
	bash tests/run.sh --unit-only build/sanitize

clean:
	rm -rf $(BUILD)/obj $(BUILD)/tests $(BUILD)/mvd-* $(BUILD)/libmvd.a $(BUILD)/plugins $(BUILD)/bench
