# Checks that no src/ folder includes a folder above it in the layer list (STYLE.md,
# docs/ARCHITECTURE.md):
#   util → core → store → drivers → engine → sources → api → cli / daemon
# A file in src/<folder>/ may include "<other>/..." only when <other> is at or below its
# own layer, with three narrower rules:
#   - cli talks HTTP: it may include only cli/, core/ and util/ (the API client is cli/);
#   - cli and daemon share the top layer, but only daemon may include the other;
#   - one driver (store) implementation never includes another: drivers/<a>/ may include
#     drivers/<a>/, drivers/common/ and drivers/*.hpp, not drivers/<b>/ (same for store/).
# Quoted includes only ("x/y.hpp"); <system> headers are not ours. Includes without a
# folder ("version.hpp") stay in the including folder.
#
# Usage: cmake -DSRC=<path to a src/ tree> -P check_layering.cmake
# Prints every violation as "file:line: <folder> includes \"path\" (<why>)" and fails
# (non-zero exit) when there is any.

cmake_minimum_required(VERSION 3.22)
set(k_layers util core store drivers engine sources api cli daemon)
set(k_rank_util 0)
set(k_rank_core 1)
set(k_rank_store 2)
set(k_rank_drivers 3)
set(k_rank_engine 4)
set(k_rank_sources 5)
set(k_rank_api 6)
set(k_rank_cli 7)
set(k_rank_daemon 7)

if(NOT DEFINED SRC OR NOT IS_DIRECTORY "${SRC}")
  message(FATAL_ERROR "check_layering: pass -DSRC=<src directory> (got \"${SRC}\")")
endif()
get_filename_component(SRC "${SRC}" ABSOLUTE)

file(GLOB_RECURSE files RELATIVE "${SRC}" "${SRC}/*.cpp" "${SRC}/*.hpp" "${SRC}/*.h" "${SRC}/*.cc")
list(SORT files)
set(violations 0)
set(checked 0)
foreach(rel IN LISTS files)
  string(REPLACE "/" ";" parts "${rel}")
  list(LENGTH parts depth)
  if(depth LESS 2)
    continue() # src/main.cpp: the executable, above every layer
  endif()
  list(GET parts 0 top)
  set(sub "")
  if(depth GREATER 2)
    list(GET parts 1 sub)
  endif()
  if(NOT top IN_LIST k_layers)
    message(SEND_ERROR "${rel}: folder \"${top}\" is not in the layer list (${k_layers}); add it to tests/layering/check_layering.cmake")
    math(EXPR violations "${violations} + 1")
    continue()
  endif()
  math(EXPR checked "${checked} + 1")
  file(STRINGS "${SRC}/${rel}" lines)
  set(lineno 0)
  foreach(line IN LISTS lines)
    math(EXPR lineno "${lineno} + 1")
    if(NOT line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]+)\"")
      continue()
    endif()
    set(inc "${CMAKE_MATCH_1}")
    if(NOT inc MATCHES "/")
      continue()
    endif()
    string(REPLACE "/" ";" iparts "${inc}")
    list(GET iparts 0 itop)
    list(LENGTH iparts idepth)
    set(isub "")
    if(idepth GREATER 2)
      list(GET iparts 1 isub)
    endif()
    if(NOT itop IN_LIST k_layers)
      continue() # not a src/ folder (e.g. a generated header's own path)
    endif()
    set(why "")
    if(top STREQUAL "cli" AND NOT itop MATCHES "^(cli|core|util)$")
      set(why "cli may include only cli/, core/ and util/: it talks to the daemon over HTTP")
    elseif(${k_rank_${itop}} GREATER ${k_rank_${top}})
      set(why "${itop}/ is above ${top}/ in util → core → store → drivers → engine → sources → api → cli/daemon")
    elseif(top MATCHES "^(drivers|store)$" AND itop STREQUAL top AND NOT sub STREQUAL "" AND NOT isub STREQUAL ""
           AND NOT isub STREQUAL sub AND NOT isub STREQUAL "common")
      set(why "one ${top} implementation (${sub}/) includes another (${isub}/)")
    endif()
    if(why)
      message("${SRC}/${rel}:${lineno}: ${top}/ includes \"${inc}\" (${why})")
      math(EXPR violations "${violations} + 1")
    endif()
  endforeach()
endforeach()

if(checked EQUAL 0)
  message(FATAL_ERROR "check_layering: no source files under ${SRC}")
endif()
if(violations GREATER 0)
  message(FATAL_ERROR "check_layering: ${violations} layering violation(s) in ${SRC}")
endif()
message("check_layering: ${checked} files under ${SRC}, no layering violation")
