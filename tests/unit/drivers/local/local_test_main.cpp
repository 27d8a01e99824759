// The driver test binary doubles as the shim (`<binary> __shim …`), like `idp __shim`.
#include <gtest/gtest.h>
#include <string_view>

#include "drivers/local/shim.hpp"

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "__shim") {
    return idp::drivers::local::run_shim(argc, argv);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
