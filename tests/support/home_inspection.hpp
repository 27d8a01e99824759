#pragma once
// What a daemon's home holds, read from the outside: Caddy's live routes, the processes,
// revision directories and git worktrees of environments. The crash campaign and the soak
// test compare these with the environments that should exist to find orphans.

#include <set>
#include <string>
#include <vector>

#include "support/daemon_process.hpp"

namespace idp::testing {

// Caddy's live routes (their @id) through its admin API ({} when Caddy does not answer).
std::set<std::string> caddy_routes(const std::string& home);
// "IDP_REVISION" of each live process of environment `env` started by daemon `d`.
std::multiset<std::string> process_revisions(const DaemonProcess& d, const std::string& env);
// Environments ("IDP_ENVIRONMENT") of the live processes started by daemon `d`.
std::set<std::string> process_environments(const DaemonProcess& d);
// Revision directories (<home>/envs/<env>/rev-*) of `env`.
std::vector<std::string> revision_dirs(const std::string& home, const std::string& env);
// The worktrees registered in the home's git mirrors (not the mirrors themselves). The
// driver's checkouts are plain directories: none, unless an earlier version left some.
std::vector<std::string> git_worktrees(const std::string& home);
// The checkouts of the home (<home>/envs/*/rev-*/src), of every environment.
std::vector<std::string> checkouts(const std::string& home);

// Resident memory (kB) and open file descriptors of a live process (0 when unreadable).
long process_rss_kb(pid_t pid);
long process_fd_count(pid_t pid);
// What the process's fds point to, one line per target, counted ("3 x socket").
std::string process_fd_targets(pid_t pid);

} // namespace idp::testing
