# The libraries `idp` must not load at start (DT_NEEDED): each costs every command its
# loading time. libsecret (with GLib, GIO, …) is loaded at first keychain use instead.
# cmake -DBINARY=<idp> -DFORBIDDEN="libsecret;libglib" -P check_needed.cmake
execute_process(COMMAND readelf -d ${BINARY} OUTPUT_VARIABLE dyn RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readelf -d ${BINARY} failed (${rc})")
endif()
if(NOT dyn MATCHES "NEEDED")
  message(FATAL_ERROR "readelf -d ${BINARY} lists no NEEDED library: not a dynamic executable?")
endif()
foreach(lib IN LISTS FORBIDDEN)
  if(dyn MATCHES "NEEDED[^\n]*\\[${lib}")
    message(FATAL_ERROR "${BINARY} needs ${lib} at start; load it where it is used (dlopen)")
  endif()
endforeach()
message(STATUS "${BINARY}: none of ${FORBIDDEN} is needed at start")
