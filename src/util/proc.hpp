#pragma once
// Process inspection through /proc and termination of process groups: how the daemon finds
// and stops what it started, also after a restart (pid + start time as identity).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace idp::util {

// True when the process exists and is not a zombie.
bool process_alive(pid_t pid);
// Start time in clock ticks since boot (/proc/PID/stat field 22): with the pid, an identity
// that survives pid reuse. nullopt when the process is gone.
std::optional<uint64_t> process_start_time(pid_t pid);
std::optional<pid_t> process_group_of(pid_t pid);
// The value of `key` in the process's initial environment.
std::optional<std::string> process_env_value(pid_t pid, std::string_view key);
// Every live process whose environment has key=value.
std::vector<pid_t> find_processes_with_env(std::string_view key, std::string_view value);
// Every live process whose environment has key with a value starting with `prefix`.
std::vector<pid_t> find_processes_with_env_prefix(std::string_view key, std::string_view prefix);
// Every live process in process group `pgid`.
std::vector<pid_t> processes_in_group(pid_t pgid);

// Polls until process group `pgid` has no live member (zombies count as gone), at most
// timeout_ms. True when it is empty.
bool wait_group_empty(pid_t pgid, int64_t timeout_ms);
// How long a SIGKILLed process or group may take to be gone (not instant on a loaded machine).
inline constexpr int64_t k_kill_wait_ms = 5000;

// TERM to the group, wait up to grace_ms for it to be empty, then KILL and wait again.
// Returns true when nothing of the group is left.
bool terminate_group(pid_t pgid, int64_t grace_ms);
// TERM to each pid, wait up to grace_ms, then KILL. True when all are gone.
bool terminate_processes(const std::vector<pid_t>& pids, int64_t grace_ms);

} // namespace idp::util
