# Self-test of check_layering.cmake: the bad fixture must fail with exactly its planted
# violations (each reported with file and line), the good one must pass. Guards against a
# checker that silently accepts everything.
# Usage: cmake -P self_test.cmake
cmake_minimum_required(VERSION 3.22)
set(here "${CMAKE_CURRENT_LIST_DIR}")

execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${here}/fixtures/good/src -P ${here}/check_layering.cmake
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "good fixture rejected (exit ${rc}):\n${out}${err}")
endif()

execute_process(COMMAND ${CMAKE_COMMAND} -DSRC=${here}/fixtures/bad/src -P ${here}/check_layering.cmake
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
if(rc EQUAL 0)
  message(FATAL_ERROR "bad fixture accepted:\n${all}")
endif()
set(expected
  "core/uses_engine.cpp:2: core/ includes \"engine/controller.hpp\""
  "cli/uses_store.cpp:2: cli/ includes \"store/state_store.hpp\""
  "cli/uses_daemon.hpp:1: cli/ includes \"daemon/daemon.hpp\""
  "drivers/local/uses_terraform.cpp:2: drivers/ includes \"drivers/terraform/terraform_driver.hpp\""
  "util/spaced.cpp:2: util/ includes \"core/x.hpp\""
  "engine/uses_sources.cpp:1: engine/ includes \"sources/poller.hpp\""
  "check_layering: 6 layering violation(s)")
foreach(e IN LISTS expected)
  string(FIND "${all}" "${e}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "bad fixture: expected a report containing\n  ${e}\ngot:\n${all}")
  endif()
endforeach()
message("check_layering self-test: good fixture passes, bad fixture fails with its 6 violations")
