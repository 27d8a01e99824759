#include "cli/wait.hpp"

#include <algorithm>
#include <cstdio>
#include <thread>

#include "cli/output/table.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::cli {

Expected<nlohmann::json> wait_for_phase(ApiClient& client, const std::string& name, const std::set<std::string>& done,
                                        long long timeout_ms, bool verbose, long long min_generation) {
  long long deadline = util::steady_ms() + timeout_ms;
  std::string last_line;
  // Each request waits on the server until the environment's record changes (a long poll:
  // ?since= the state it last saw); `idp create` returns as soon as the environment serves.
  // A server that does not wait (no X-Idp-State, or no stream slot free) is polled: fast at
  // first, then backing off for long operations.
  long long started = util::steady_ms();
  int poll_ms = 10;
  std::string state;
  const std::string path = "/api/v1/environments/" + util::url_encode(name);
  while (true) {
    long long asked = util::steady_ms();
    long long wait_ms = std::clamp<long long>(deadline - asked, 0, 10000);
    IDP_TRY_ASSIGN(auto got,
                   client.get_with_header(state.empty() || wait_ms == 0 ? path
                                                                        : path + "?since=" + util::url_encode(state) +
                                                                              "&wait_ms=" + std::to_string(wait_ms),
                                          "x-idp-state"));
    auto& [env, now_state] = got;
    const bool waited = !now_state.empty() && (now_state != state || util::steady_ms() - asked >= wait_ms);
    state = now_state;
    std::string phase = env.value("phase", "");
    std::string msg = env.value("message", "");
    if (msg == phase) {
      msg.clear(); // "destroying: destroying" says nothing twice
    }
    std::string line = phase + (msg.empty() ? "" : ": " + msg);
    if (verbose && line != last_line) {
      std::fprintf(stderr, "  %s\n",
                   (output::color(phase, output::phase_color(phase)) + (msg.empty() ? "" : ": " + msg)).c_str());
      last_line = line;
    }
    if (done.count(phase) && env.value("observed_generation", 0LL) >= min_generation) {
      return env;
    }
    if (util::steady_ms() >= deadline) {
      // Say what it is waiting for (the engine's current step, e.g. the last health answer):
      // "still provisioning" alone does not tell a health path typo from a slow build.
      return make_error(ErrorCode::timeout, "environment " + util::quote(name) + " is still " + phase + " after " +
                                                util::format_duration(timeout_ms) + (msg.empty() ? "" : ": " + msg) +
                                                " (it keeps going: see idp status " + name + ")");
    }
    if (waited) {
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
    if (util::steady_ms() - started > 3000) {
      poll_ms = std::min(poll_ms * 2, 250);
    }
  }
}

} // namespace idp::cli
