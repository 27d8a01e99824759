# Build options that prove the code rather than ship it: sanitizers, -Werror, libFuzzer.
# Included from the top-level CMakeLists.txt before any target is defined, so the flags
# reach every library, test and tool alike (a sanitizer needs the whole program built
# with it to see across calls into our own libraries).

set(IDP_SANITIZE "" CACHE STRING
    "Sanitizers for every target, as for -fsanitize= (e.g. address,undefined or thread); empty = none")
option(IDP_WERROR "Treat compiler warnings as errors (CI builds)" OFF)
option(IDP_FUZZ "Build the libFuzzer targets in fuzz/ (clang only)" OFF)

if(IDP_WERROR)
  add_compile_options(-Werror)
endif()

if(IDP_SANITIZE)
  string(REPLACE "," ";" _idp_sanitizers "${IDP_SANITIZE}")
  if("thread" IN_LIST _idp_sanitizers AND ("address" IN_LIST _idp_sanitizers OR "leak" IN_LIST _idp_sanitizers))
    message(FATAL_ERROR "IDP_SANITIZE: thread cannot be combined with address or leak (got \"${IDP_SANITIZE}\")")
  endif()
  set(_idp_san_flags -fsanitize=${IDP_SANITIZE} -fno-omit-frame-pointer)
  if("undefined" IN_LIST _idp_sanitizers)
    # A UBSan report is a test failure, not a line in a log nobody reads: abort on the
    # first one (ASan always aborts).
    list(APPEND _idp_san_flags -fno-sanitize-recover=undefined)
  endif()
  add_compile_options(${_idp_san_flags})
  add_link_options(${_idp_san_flags})
endif()

if(IDP_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "IDP_FUZZ needs clang's libFuzzer: configure with -DCMAKE_CXX_COMPILER=clang++ "
                        "(got ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER})")
  endif()
  # Coverage instrumentation for every library the fuzz targets call into; the fuzz targets
  # themselves link with -fsanitize=fuzzer (libFuzzer's main). Tests built in the same tree
  # are unaffected apart from the (small) cost of the counters.
  add_compile_options(-fsanitize=fuzzer-no-link)
  add_link_options(-fsanitize=fuzzer-no-link)
endif()
