#include "util/memory.hpp"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace idp::util {

void limit_malloc_arenas(int n) {
#if defined(__GLIBC__)
  (void)::mallopt(M_ARENA_MAX, n);
#else
  (void)n;
#endif
}

bool release_free_memory() {
#if defined(__GLIBC__)
  return ::malloc_trim(0) == 1;
#else
  return false;
#endif
}

} // namespace idp::util
