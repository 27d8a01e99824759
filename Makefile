# mini-idp: `make run` (install, build, serve the example app), `make test` (install, build, every
# test: the plain build with -Werror, the ASan+UBSan suites and short fuzz runs; what CI runs).
# `make test-plain` runs the plain suite alone.
BUILD ?= build
JOBS ?= $(shell nproc)
TEST_JOBS ?= $(shell echo $$(( $$(nproc) * 2 )))
# ON in CI: a new warning fails the build.
WERROR ?= OFF
# lines (-g1): stack traces and sanitizer reports keep function names and lines, and a
# clean build is about a quarter faster than with full (-g), which a debugger wants.
DEBUG_INFO ?= lines
# Sanitizer and fuzz builds (clang: libFuzzer needs it; g++ works for IDP_SANITIZE alone).
SAN_CXX ?= clang++-14
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
FUZZ_SECONDS ?= 600
FUZZ_RUNS ?= 1000000
FUZZ_CI_SECONDS ?= 15
FUZZ_TARGETS := $(notdir $(wildcard fuzz/corpus/*))
LAUNCHER := $(if $(shell command -v ccache 2>/dev/null),-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

.PHONY: all deps configure build run test test-plain bench clean ci asan asan-test tsan fuzz fuzz-runs fuzz-ci check-format

all: build

deps:
	./scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DIDP_DEBUG_INFO=$(DEBUG_INFO) -DIDP_WERROR=$(WERROR) $(LAUNCHER)

# TARGET: one target instead of all (scripts/ci-test.sh builds ci_plain).
build: configure
	cmake --build $(BUILD) -j $(JOBS) $(if $(TARGET),--target $(TARGET))

run: build
	./scripts/run-demo.sh $(BUILD)/src/idp

test-plain: build
	ctest --test-dir $(BUILD) -j $(TEST_JOBS) --output-on-failure --timeout 900

bench: build
	./scripts/bench.sh $(BUILD)

# Everything CI checks (scripts/ci-test.sh): the plain build with -Werror of idp, the
# benchmarks and the soak, and the tests labelled `plain` (the soak, the Terraform module
# tests, the browser tests, the subprocess tests unsanitized), while the ASan+UBSan build
# compiles; then every other suite under ASan+UBSan; then each fuzz target for FUZZ_CI_SECONDS.
test:
	MAKE="$(MAKE)" BUILD=$(BUILD) ASAN_BUILD=$(ASAN_BUILD) JOBS=$(JOBS) TEST_JOBS=$(TEST_JOBS) \
	  ASAN_LABELS_EXCLUDE='$(ASAN_LABELS_EXCLUDE)' ./scripts/ci-test.sh

ci: test

# ASan+UBSan build (also the libFuzzer build: IDP_FUZZ=ON), benchmarks off; with
# ASAN_INTEGRATION=OFF without the suites that start a real daemon.
ASAN_INTEGRATION ?= ON
asan: deps
	cmake -S . -B $(ASAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=$(SAN_CXX) \
	  -DIDP_SANITIZE=address,undefined -DIDP_FUZZ=ON -DIDP_BUILD_BENCH=OFF -DIDP_WERROR=$(WERROR) -DIDP_DEBUG_INFO=$(DEBUG_INFO) \
	  -DIDP_INTEGRATION_TESTS=$(ASAN_INTEGRATION) \
	  -DIDP_FUZZ_CI_SECONDS=$(FUZZ_CI_SECONDS) $(LAUNCHER)
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# The unit, contract, CLI, kubernetes and integration suites under ASan+UBSan (a real idp
# serve, its shims and the CLI sanitized); a sanitizer report in any process fails it.
# Never the tests labelled `plain`: the soak (its RSS figures are the plain build's), the
# browser tests and `terraform test` of the modules (no C++ in it).
ASAN_LABELS_EXCLUDE ?= fuzz|plain
asan-test: asan
	./scripts/sanitized-ctest.sh $(ASAN_BUILD) -LE '$(ASAN_LABELS_EXCLUDE)' -j $(TEST_JOBS) \
	  --output-on-failure --timeout 1800

# TSan build of the engine, sources and local-driver tests only (the threaded code; the
# integration suites would take too long under TSan), run with every race reported.
tsan: deps
	cmake -S . -B $(TSAN_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=$(SAN_CXX) \
	  -DIDP_SANITIZE=thread -DIDP_BUILD_BENCH=OFF -DIDP_DEBUG_INFO=$(DEBUG_INFO) $(LAUNCHER)
	cmake --build $(TSAN_BUILD) -j $(JOBS) --target engine_test sources_test driver_local_test
	./scripts/sanitized-ctest.sh $(TSAN_BUILD) -LE 'fuzz|integration|contract|cli|terraform' -E '_NOT_BUILT$$' \
	  -j $(JOBS) --output-on-failure --timeout 1800

# Each fuzz target for FUZZ_SECONDS (default 10 min); new inputs go to $(ASAN_BUILD)/fuzz-work.
fuzz: asan
	@for t in $(FUZZ_TARGETS); do ./fuzz/run_fuzz.sh $(ASAN_BUILD) $$t -max_total_time=$(FUZZ_SECONDS) || exit 1; done

# Each fuzz target for FUZZ_RUNS executions (the figures in fuzz/RESULTS.md).
fuzz-runs: asan
	@for t in $(FUZZ_TARGETS); do ./fuzz/run_fuzz.sh $(ASAN_BUILD) $$t -runs=$(FUZZ_RUNS) || exit 1; done

# CI's bounded fuzzing: ctest label "fuzz", FUZZ_CI_SECONDS per target.
fuzz-ci: asan
	ctest --test-dir $(ASAN_BUILD) -L fuzz -j $(JOBS) --output-on-failure

check-format:
	./scripts/format.sh --check

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD)
