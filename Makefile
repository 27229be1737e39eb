# A thin wrapper over CMake, in the way Neovim's is: CMake configures once (a stamp is the
# cache file), every target below builds through it.
BUILD      ?= build
ASAN_BUILD ?= build-asan
CMAKE_FLAGS ?=
CTEST_FLAGS ?= --output-on-failure -j2
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all setup shmhost test demo bench asan asan-build distclean clean install

all: shmhost

setup:
	@bash tools/setup.sh

$(BUILD)/CMakeCache.txt: | setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS)

shmhost: setup $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

test: shmhost
	cd $(BUILD) && ctest $(CTEST_FLAGS)

demo: shmhost
	@bash tools/demo.sh $(BUILD)/shmhost

bench: shmhost
	$(BUILD)/shmhost bench

$(ASAN_BUILD)/CMakeCache.txt: | setup
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSHMHOST_SANITIZE=ON $(CMAKE_FLAGS)

asan-build: setup $(ASAN_BUILD)/CMakeCache.txt
	cmake --build $(ASAN_BUILD) -j $(JOBS)

# The whole suite again, built with AddressSanitizer and UndefinedBehaviorSanitizer.
asan: asan-build
	cd $(ASAN_BUILD) && ctest $(CTEST_FLAGS) -LE no-asan

install: shmhost
	cmake --install $(BUILD)

clean:
	-cmake --build $(BUILD) --target clean

distclean:
	rm -rf $(BUILD) $(ASAN_BUILD)
