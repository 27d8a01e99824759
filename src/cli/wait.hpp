#pragma once
// Waiting for an environment to reach a phase, printing phases as they pass.

#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/api_client.hpp"

namespace idp::cli {

// Polls the environment until its phase is in `done` (and, with min_generation, the engine
// has acted on that generation), printing each new phase and message to stderr when
// `verbose`. Returns the last environment JSON. timeout → ErrorCode::timeout.
Expected<nlohmann::json> wait_for_phase(ApiClient& client, const std::string& name, const std::set<std::string>& done,
                                        long long timeout_ms, bool verbose, long long min_generation = 0);

} // namespace idp::cli
