# The test suite: C unit tests of the core, Lua tests run by shmhost itself, interop tests
# against C peers written the classic way, and end-to-end command-line tests. Every file that
# matches a pattern below is a test; adding one needs no change here.

set(SHMHOST_TEST_ENV
  "SHMHOST=$<TARGET_FILE:shmhost>"
  "SHMHOST_SRC=${CMAKE_CURRENT_SOURCE_DIR}"
  "SHMHOST_BUILD=${CMAKE_CURRENT_BINARY_DIR}"
  "SHMHOST_PATH="
  "LUA_PATH=${CMAKE_CURRENT_SOURCE_DIR}/tests/lua/?.lua;;"
  # ASan takes SIGBUS and SIGSEGV for itself; the segment guard needs SIGBUS (tests say why).
  "ASAN_OPTIONS=handle_sigbus=0:detect_leaks=1:abort_on_error=0"
  "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")

# The leak check: a snapshot of /dev/shm, System V segments and semaphores, and socket paths
# under /tmp before the suite, compared after it; anything new fails the suite.
add_test(NAME leakcheck/before COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/leakcheck.sh before ${CMAKE_CURRENT_BINARY_DIR}/leakcheck.snap)
add_test(NAME leakcheck/after COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/tests/leakcheck.sh after ${CMAKE_CURRENT_BINARY_DIR}/leakcheck.snap)
set_tests_properties(leakcheck/before PROPERTIES FIXTURES_SETUP leakcheck)
set_tests_properties(leakcheck/after PROPERTIES FIXTURES_CLEANUP leakcheck)

function(shmhost_test name)
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "${SHMHOST_TEST_ENV}"
    FIXTURES_REQUIRED leakcheck
    # A test that cannot run here (a tool it needs is missing) exits 77 and shows as skipped.
    SKIP_RETURN_CODE 77
    TIMEOUT 300)
endfunction()

# C unit tests of the core: one executable per file; its cases run each in a forked child
# with a deadline (tests/unit/check.h).
file(GLOB SHMHOST_UNIT_TESTS CONFIGURE_DEPENDS tests/unit/test_*.c)
foreach(src ${SHMHOST_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(unit_${name} ${src})
  target_include_directories(unit_${name} PRIVATE tests/unit)
  target_link_libraries(unit_${name} PRIVATE shmhost_core)
  add_test(NAME unit/${name} COMMAND unit_${name})
  shmhost_test(unit/${name})
  set_tests_properties(unit/${name} PROPERTIES LABELS unit)
endforeach()

# C peers and baselines that tests and benchmarks run (interop writer/reader, etc.).
file(GLOB SHMHOST_C_PEERS CONFIGURE_DEPENDS tests/interop/*.c)
foreach(src ${SHMHOST_C_PEERS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_link_libraries(${name} PRIVATE shmhost_core Threads::Threads rt)
endforeach()

# Lua tests of the bindings, run by shmhost as a user would run a script.
file(GLOB SHMHOST_LUA_TESTS CONFIGURE_DEPENDS tests/lua/test_*.lua)
foreach(src ${SHMHOST_LUA_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME lua/${name} COMMAND shmhost ${src})
  shmhost_test(lua/${name})
  set_tests_properties(lua/${name} PROPERTIES LABELS lua)
endforeach()

# Interop and end-to-end command-line tests: shell scripts that drive real processes.
foreach(layer interop cli)
  file(GLOB tests CONFIGURE_DEPENDS tests/${layer}/test_*.sh)
  foreach(src ${tests})
    get_filename_component(name ${src} NAME_WE)
    add_test(NAME ${layer}/${name} COMMAND bash ${src})
    shmhost_test(${layer}/${name})
    set_tests_properties(${layer}/${name} PROPERTIES LABELS ${layer})
  endforeach()
endforeach()
