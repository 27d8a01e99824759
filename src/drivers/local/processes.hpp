#pragma once
// The processes of local revisions: finding them by their marker variables, checking
// that a recorded shim is still the same process, and stopping a revision.
//
// Every process the driver starts for an environment (build, shim, app and the app's
// children, which inherit the environment) carries IDP_HOME_ID=<home id>,
// IDP_ENVIRONMENT=<env> and IDP_REVISION=<instance key>, so a restarted daemon finds
// them in /proc even when its records are gone.

#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "drivers/local/env_state.hpp"

namespace idp::drivers::local {

inline constexpr const char* k_marker_home = "IDP_HOME_ID";
inline constexpr const char* k_marker_env = "IDP_ENVIRONMENT";
inline constexpr const char* k_marker_revision = "IDP_REVISION";

struct MarkedProcess {
  pid_t pid = 0;
  std::string env;
  std::string revision;
};

// Every live process of this home.
std::vector<MarkedProcess> find_marked_processes(const std::string& home_id);

// True when the recorded shim still runs (same pid and start time).
bool shim_alive(const InstanceRecord& inst);
// The app's pid from <dir>/app.pid; 0 when unknown.
pid_t read_app_pid(const std::string& dir);
// True when the shim and the app it started both still run.
bool instance_running(const InstanceRecord& inst);

// Stops every process of one instance: TERM to the shim (which forwards it to the app),
// or to each marked process when the shim is gone; after `grace_ms`, KILL. Returns true
// when nothing of the instance is left.
bool stop_instance_processes(const std::string& home_id, const std::string& env, const InstanceRecord& inst,
                             int64_t grace_ms);
// Every live process whose real, effective or saved uid is `uid` (from /proc/<pid>/status).
// An isolated environment's uid is its own: these are all its processes, also those
// that cleared their marker variables or left the shim's process group. A zombie (dead,
// not yet reaped by its parent or by init) is not one: nothing is left to stop.
std::vector<pid_t> processes_of_uid(uid_t uid);
// The tasks (threads included) whose real uid is `uid`: what the kernel holds against
// that user's RLIMIT_NPROC.
size_t tasks_of_uid(uid_t uid);

// TERM, then KILL after grace_ms, to the given processes and their process groups when
// they lead one. True when all are gone.
bool stop_marked_processes(const std::vector<MarkedProcess>& procs, int64_t grace_ms);

} // namespace idp::drivers::local
