// Runs the Driver contract (driver_contract.cpp) against every driver. The binary doubles
// as the local driver's shim (`<binary> __shim …`, like `idp __shim`).

#include <climits>
#include <string_view>
#include <unistd.h>

#include "contract/driver_contract.hpp"
#include "drivers/local/local_driver_factory.hpp"
#include "drivers/local/shim.hpp"
#include "util/subprocess.hpp"

namespace idp::testing {
namespace {

std::string self_exe() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return std::string(buf, static_cast<size_t>(n > 0 ? n : 0));
}

DriverContractSetup make_local(const std::string& tmpdir) {
  DriverContractSetup s;
  auto repo = std::make_shared<GitRepo>(make_example_repo(tmpdir + "/repo"));
  s.resources = repo;
  drivers::DriverContext ctx;
  ctx.home = tmpdir + "/home";
  ctx.router_port = util::find_free_port().value_or(0);
  ctx.self_exe = self_exe();
  ctx.options = {{"health_timeout_ms", 2000}, {"stop_grace_ms", 2000}};
  auto d = drivers::local::local_driver_factory().create(ctx);
  if (!d) {
    ADD_FAILURE() << d.error().full_message();
    return s;
  }
  s.driver = std::move(*d);
  s.healthy.env.name = "contract";
  s.healthy.env.repo = repo->path();
  s.healthy.env.commit = repo->head();
  s.healthy.revision_id = 1;
  s.healthy.config.local.start = "node server.js";
  s.healthy.config.health_check_path = "/health";
  // Runs, but never listens: the health check cannot pass.
  s.unhealthy = s.healthy;
  s.unhealthy.revision_id = 2;
  s.unhealthy.config.local.start = "node -e \"setInterval(() => {}, 1000)\"";
  return s;
}

} // namespace

INSTANTIATE_TEST_SUITE_P(Local, DriverContract, ::testing::Values(DriverContractFactory{"local", make_local}),
                         driver_contract_name);

} // namespace idp::testing

int main(int argc, char** argv) {
  if (argc > 1 && std::string_view(argv[1]) == "__shim") {
    return idp::drivers::local::run_shim(argc, argv);
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
