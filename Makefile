# Thin forwarder to Meson/Ninja. Every target installs missing Debian
# packages first (scripts/install-deps is quiet when all are present).
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan

.PHONY: all run test test-asan test-tsan bench bench-copy fuzz clean deps

all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

deps:
	@scripts/install-deps

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD) --buildtype=debugoptimized -Dwerror=true

$(ASAN_BUILD)/build.ninja: | deps
	meson setup $(ASAN_BUILD) --buildtype=debug -Dwerror=true \
		-Db_sanitize=address,undefined -Db_lundef=false

run: deps $(BUILD)/build.ninja
	ninja -C $(BUILD) todo
	./$(BUILD)/todo serve

test: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)
	scripts/run-tests $(BUILD)

test-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	scripts/run-tests $(ASAN_BUILD)

# ThreadSanitizer: the e2e suite (SQLite, PostgreSQL, PgBouncer) against a
# TSan-built server; any report fails (scripts/run-tests-tsan sets up
# $(TSAN_BUILD) itself and builds the e2e binary in $(BUILD)).
test-tsan: deps
	scripts/run-tests-tsan $(TSAN_BUILD) $(BUILD)

bench: deps
	scripts/bench

# `todo db copy` of 1M todos SQLite -> PostgreSQL against psql \copy and
# pgloader (scripts/bench-copy; docs/PERFORMANCE.md "todo db copy").
bench-copy: deps
	scripts/bench-copy

# libFuzzer targets (clang): FUZZ_SECONDS per target, default 10.
fuzz:
	@scripts/install-deps --fuzz
	scripts/fuzz

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-bench
