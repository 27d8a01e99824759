#pragma once
// CPU and memory limits for local revisions through Linux cgroups.
//
// cgroup v2 when "<root>/cgroup.controllers" exists: the group is
// "<root>/idp-<home id>/<name>" with cpu.max, memory.max and pids.max (each controller
// enabled in the subtree_control of <root> and of the idp-<home id> parent).
// Otherwise cgroup v1: one group per controller hierarchy that exists,
// "<root>/<controller><daemon's own group>/idp-<home id>/<name>", with
// cpu.cfs_quota_us/cpu.cfs_period_us, memory.limit_in_bytes and pids.max. Nesting under the
// daemon's own v1 group keeps apps inside whatever limits the daemon itself runs under
// (a systemd slice, a container).
// Each controller is tried on its own: one that is missing or refused costs its own limit
// (CgroupPlacement::cpu_memory_warning, pids_warning say why), not the others'; above all
// pids.max (a fork bomb stays inside its revision) is had whenever the pids controller is.
// create() fails only when no group at all can be made; the caller then runs without
// cgroups and warns (and falls back to RLIMIT_NPROC for the process limit).
// The per-home parents go when their last group does, and remove_empty_parents() removes
// them when empty (the daemon's start and clean stop).

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
  int64_t memory_bytes = 0;       // 0 = unlimited
  int64_t pids_max = 0;           // applied process limit; 0 = none
  std::string pids_warning;       // why a wanted pids_max is not applied, "" when it is
  std::string cpu_memory_warning; // why the cpu or memory limit is not applied, "" when both are

  nlohmann::json to_json() const;
};

class Cgroups {
public:
  // `root` is where cgroup filesystems are mounted ("/sys/fs/cgroup"); groups of this home
  // live under "idp-<home_id>".
  Cgroups(std::string root, std::string home_id);

  // Creates the group(s) `name` (unique per revision) with `limits`, each controller on its
  // own (the placement's warnings say which limits are missing and why). Error (io_error
  // or permanent) when no group can be made, saying why. Thread-safe.
  Expected<CgroupPlacement> create(const std::string& name, const CgroupLimits& limits);
  // Sets the cpu limit of groups create() made (`dirs`): `quota_us` per `period_us`, 0 =
  // unlimited. Groups without a cpu controller are left alone (nothing to do, no error).
  // The startup boost (LocalOptions::startup_cpu_boost) lifts the limit while an app
  // starts and puts it back once the app is healthy.
  static Expected<void> set_cpu_quota(const std::vector<std::string>& dirs, int64_t quota_us, int64_t period_us);
  // Removes groups created by create() once their processes are gone; retries briefly
  // while exiting processes still count as members. Missing groups are fine. Thread-safe.
  void remove(const std::vector<std::string>& dirs);
  // Groups of this home (under the current parents) whose name starts with `prefix`.
  std::vector<std::string> list(const std::string& prefix) const;
  // Removes this home's parent groups ("…/idp-<home id>") that hold no group any more;
  // returns those removed. Thread-safe.
  std::vector<std::string> remove_empty_parents();

private:
  // Parents ("…/idp-<home id>") for the detected version; empty when unusable.
  struct Layout {
    int version = 0;                  // 0: nothing usable (why_not)
    std::vector<std::string> parents; // v2: one; v1: one per hierarchy found (cpu, memory, pids)
    bool v2_cpu = false;              // v2: controllers the root offers
    bool v2_memory = false;
    bool v2_pids = false;
    std::string cpu_parent; // v1: the parent in each hierarchy, "" when it does not exist
    std::string memory_parent;
    std::string pids_parent;
    // v1 cpuacct when it is a hierarchy of its own (not mounted with cpu): accounting only
    // (CPU time for idp cost), no limit.
    std::string cpuacct_parent;
    std::string why_not; // when version == 0
  };
  Layout detect() const;
  std::vector<std::string> remove_empty_parents_locked(const Layout& l);

  std::string m_root;
  std::string m_home_id;
  std::mutex m_mutex;
};

} // namespace idp::drivers::local
