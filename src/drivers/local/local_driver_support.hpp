#pragma once
// Helpers the local driver's units share (local_driver.cpp, recovery.cpp,
// revision_launcher.cpp, components.cpp, apply.cpp, local_exec.cpp): names, paths, the
// content hash of a deploy and small readers of /proc and revision files. Internal to
// src/drivers/local; none of them keeps state.

#include <map>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "drivers/driver.hpp"
#include "drivers/local/env_state.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

// Output lines searched for the cause of a failure (common::pick_cause_lines): enough to
// reach past a long help text printed after the reason (npm prints ~90 lines).
inline constexpr size_t k_cause_scan_lines = 200;
// The shim's own program, built and installed beside idp (src/drivers/local/helper_main.cpp).
inline constexpr const char* k_helper_program = "idp-shim";
inline constexpr int64_t k_exec_timeout_ms = 60000;
// Health checks read only the status; the body an app sends is cut here (it may be endless).
inline constexpr size_t k_health_body_max = 64 * 1024;

// Variables of the daemon's environment that apps and builds inherit. Everything else
// (the daemon's tokens and credentials) stays out of them.
const std::vector<std::string>& passthrough_variables();

// Lowercase letters, digits and '-', 1-63 characters, no '-' at either end.
bool valid_env_name(std::string_view name);
// invalid_argument naming the environment when !valid_env_name(name).
Expected<void> check_env_name(std::string_view name);

bool vector_has(const std::vector<std::string>& v, std::string_view x);
// What a spec runs: "web", "static", "job" (schedule alone) or "none".
std::string kind_for(const DeploySpec& spec);
// A seed path must stay inside the checkout: relative, with no "..".
bool safe_relative_path(const std::string& p);
// What makes two deployments the same for this runtime: equal hash, no restart.
std::string content_hash(const DeploySpec& spec);

// "3s", "1.5s".
std::string format_secs(int64_t ms);
util::Millis wall_now_ms();
// /proc/self/exe ("idp" when unreadable).
std::string self_exe_path();
// The program that runs the shim and the network sandbox: `idp-shim` in the directory of
// `self_exe` when it is an executable file there (it starts in a fraction of idp's time),
// else `self_exe` itself (its hidden `__shim` and `__netns` commands do the same).
std::string helper_exe_for(const std::string& self_exe);
// One spelling per home ("/x/home", "/x/home/" and a symlink to it are the same home), so
// a restarted daemon recognises its processes whatever path it was given.
std::string canonical_home(const std::string& home);

// Names of the directories in `dir`, sorted; empty when it cannot be read.
std::vector<std::string> subdirs(const std::string& dir);
// A process's initial environment (/proc/<pid>/environ); empty when unreadable.
std::map<std::string, std::string> process_environment(pid_t pid);
// How the app of the revision in `dir` ended, from the shim's exit.json.
std::string exit_description(const std::string& dir);
// A git failure as a driver error: permanent unless retrying may help (transient).
Error git_error(const Error& e);
// "<dir>/cgroup.procs" of each of the instance's cgroups.
std::vector<std::string> procs_files_of(const InstanceRecord& inst);

} // namespace idp::drivers::local
