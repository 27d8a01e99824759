#pragma once
// CPU and memory limits for local revisions through Linux cgroups.
//
// cgroup v2 when "<root>/cgroup.controllers" exists: the group is
// "<root>/idp-<home id>/<name>" with cpu.max and memory.max (the cpu and memory controllers
// are enabled in the subtree_control of <root> and of the idp-<home id> parent).
// Otherwise cgroup v1 when "<root>/cpu" and "<root>/memory" are hierarchies: one group per
// controller, "<root>/<controller><daemon's own group>/idp-<home id>/<name>", with
// cpu.cfs_quota_us/cpu.cfs_period_us and memory.limit_in_bytes. Nesting under the
// daemon's own v1 group keeps apps inside whatever limits the daemon itself runs under
// (a systemd slice, a container). Anything else is reported as an error carrying the
// reason, and the caller runs without limits and warns.
// pids.max (a fork bomb stays inside its revision) comes from the pids controller: enabled
// beside cpu and memory in v2, the "<root>/pids" hierarchy in v1. Without it the group is
// still created and CgroupPlacement::pids_warning says why the process limit is missing.

#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/expected.hpp"

namespace idp::drivers::local {

struct CgroupLimits {
  int cpu_units = 0;    // 1024 = one CPU; 0 = no cpu limit
  int memory_mib = 0;   // 0 = no memory limit
  int64_t pids_max = 0; // 0 = no process limit
};

// Where a revision's processes go and what was applied.
struct CgroupPlacement {
  int version = 0;                      // 1 or 2
  std::vector<std::string> dirs;        // the groups created (remove() them when done)
  std::vector<std::string> procs_files; // "<dir>/cgroup.procs" files the shim enters
  int64_t cpu_quota_us = 0;             // per cpu_period_us; 0 = unlimited
  int64_t cpu_period_us = 100000;
  int64_t memory_bytes = 0; // 0 = unlimited
  int64_t pids_max = 0;     // applied process limit; 0 = none
  std::string pids_warning; // why a wanted pids_max is not applied, "" when it is

  nlohmann::json to_json() const;
};

class Cgroups {
public:
  // `root` is where cgroup filesystems are mounted ("/sys/fs/cgroup"); groups of this home
  // live under "idp-<home_id>".
  Cgroups(std::string root, std::string home_id);

  // Creates the group(s) `name` (unique per revision) with `limits`. Error (io_error or
  // permanent) whose message says why limits cannot be enforced here. Thread-safe.
  Expected<CgroupPlacement> create(const std::string& name, const CgroupLimits& limits);
  // Removes groups created by create() once their processes are gone; retries briefly
  // while exiting processes still count as members. Missing groups are fine. Thread-safe.
  void remove(const std::vector<std::string>& dirs);
  // Groups of this home (under the current parents) whose name starts with `prefix`.
  std::vector<std::string> list(const std::string& prefix) const;

private:
  // Parents ("…/idp-<home id>") for the detected version; empty when unusable.
  struct Layout {
    int version = 0;
    std::vector<std::string> parents; // v2: one; v1: cpu then memory
    std::string pids_parent;          // v1: under the pids hierarchy, "" when there is none
    std::string why_not;              // when version == 0
  };
  Layout detect() const;

  std::string m_root;
  std::string m_home_id;
  std::mutex m_mutex;
};

} // namespace idp::drivers::local
