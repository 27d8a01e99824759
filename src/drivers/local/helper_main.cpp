// idp-shim: the small program the local driver starts for each revision, beside `idp`.
// It is `idp __shim` (the revision's supervisor, shim.hpp) and `idp __netns` (the untrusted
// profile's network sandbox, netns_sandbox.hpp) without the rest of idp: it links only libc
// and the C++ runtime, so it starts in about a millisecond where `idp` takes tens (56 shared
// libraries to map and relocate), and every deploy and every wake waits for that start.
#include <string_view>

#include "drivers/local/netns_sandbox.hpp"
#include "drivers/local/shim.hpp"

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "__netns") {
    return idp::drivers::local::run_netns(argc, argv);
  }
  return idp::drivers::local::run_shim(argc, argv);
}
