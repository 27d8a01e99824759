#pragma once
// The daemon's memory, as the kernel counts it (RSS). glibc's malloc gives a thread that
// finds the arenas busy an arena of its own (up to 8 per core), and keeps what is freed
// there for reuse instead of returning it: a daemon with 50 threads that built and threw
// away a large answer keeps the pages. Measured with 200 static sites (bench_scale): 84 MB
// of RSS with 4.7 MB in use; 36 MB with two arenas.
#include <cstddef>

namespace idp::util {

// At most `n` malloc arenas for the threads created from now on (glibc; no-op elsewhere).
// Call before the process starts its threads.
void limit_malloc_arenas(int n);
// Returns the free memory of every arena to the kernel (glibc's malloc_trim); true when
// some was. No-op (false) elsewhere.
bool release_free_memory();

} // namespace idp::util
