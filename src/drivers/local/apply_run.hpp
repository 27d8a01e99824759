#pragma once
// One LocalDriver::apply in progress, handed from step to step (apply.cpp):
//   prepare   records loaded, a half-started revision retired, the new one chosen and
//             recorded as pending (or the answer when the same deployment already serves)
//   bring up  checkout, database, cgroups, build, start and health check
//   switch    route, then the record that the new revision is active
//   retire    the old revision stopped after the drain; the schedule follows the new one
// A step that fails after pending was recorded abandons the new revision (the old one
// keeps serving). Only the thread holding the environment's lock uses it.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "drivers/common/log_files.hpp"
#include "drivers/local/env_state.hpp"
#include "drivers/local/local_driver.hpp"
#include "drivers/local/local_secrets.hpp"

namespace idp::drivers::local {

struct LocalDriver::ApplyRun {
  ApplyRun(const DeploySpec& s, Progress& p) : spec(s), progress(p), env(s.env.name) {}

  const DeploySpec& spec;
  Progress& progress;
  const std::string env;
  EnvPaths paths;
  std::unique_ptr<common::LogWriter> log;
  EnvState state;   // the records as this apply changes them
  std::string kind; // kind_for(spec)
  std::string hash; // content_hash(spec)
  bool wants_database = false;
  bool wants_schedule = false;
  std::vector<std::string> warnings; // added to the result
  ResolvedSecrets secrets;
  InstanceRecord inst;               // the new revision (pending until the switch)
  bool shares_active_dir = false;    // inst restarts the active revision in its directory
  std::optional<InstanceRecord> old; // the revision the switch replaced
};

} // namespace idp::drivers::local
