# mini-idp: `make run` (install, build, serve the example app), `make test` (install, build, every test).
BUILD ?= build
JOBS ?= $(shell nproc)
TEST_JOBS ?= $(shell echo $$(( $$(nproc) * 2 )))

.PHONY: all deps configure build run test bench clean

all: build

deps:
	./scripts/install-deps.sh

configure: deps
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	./scripts/run-demo.sh $(BUILD)/src/idp

test: build
	ctest --test-dir $(BUILD) -j $(TEST_JOBS) --output-on-failure --timeout 900

bench: build
	./scripts/bench.sh $(BUILD)

clean:
	rm -rf $(BUILD)
