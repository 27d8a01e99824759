#include "drivers/local/processes.hpp"

#include <algorithm>
#include <csignal>
#include <dirent.h>
#include <functional>
#include <thread>

#include "util/fs.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

std::vector<MarkedProcess> find_marked_processes(const std::string& home_id) {
  std::vector<MarkedProcess> out;
  for (pid_t pid : util::find_processes_with_env(k_marker_home, home_id)) {
    MarkedProcess p;
    p.pid = pid;
    p.env = util::process_env_value(pid, k_marker_env).value_or("");
    p.revision = util::process_env_value(pid, k_marker_revision).value_or("");
    out.push_back(std::move(p));
  }
  return out;
}

bool shim_alive(const InstanceRecord& inst) {
  if (inst.shim_pid <= 0) {
    return false;
  }
  auto st = util::process_start_time(inst.shim_pid);
  return st && *st == inst.shim_start_time;
}

pid_t read_app_pid(const std::string& dir) {
  auto text = util::read_file(util::path_join(dir, "app.pid"));
  if (!text) {
    return 0;
  }
  return util::parse_int<pid_t>(util::trim(*text), 1).value_or(0);
}

bool instance_running(const InstanceRecord& inst) {
  if (!shim_alive(inst)) {
    return false;
  }
  pid_t app = read_app_pid(inst.dir);
  if (app <= 0) {
    return false;
  }
  auto group = util::process_group_of(app);
  return util::process_alive(app) && group && *group == inst.shim_pid;
}

namespace {

// Members of the instance: its marked processes, plus the shim's process group when the
// recorded shim is still the same process.
std::vector<pid_t> instance_members(const std::string& home_id, const std::string& env, const InstanceRecord& inst,
                                    bool shim_ok) {
  std::vector<pid_t> out;
  for (const auto& p : find_marked_processes(home_id)) {
    if (p.env == env && p.revision == inst.key) {
      out.push_back(p.pid);
    }
  }
  if (shim_ok) {
    for (pid_t p : util::processes_in_group(inst.shim_pid)) {
      out.push_back(p);
    }
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool wait_gone(const std::function<std::vector<pid_t>()>& members, int64_t timeout_ms) {
  int64_t deadline = util::steady_ms() + timeout_ms;
  int sleep_ms = 5;
  while (true) {
    if (members().empty()) {
      return true;
    }
    if (util::steady_ms() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    sleep_ms = std::min(sleep_ms * 2, 50);
  }
}

} // namespace

bool stop_instance_processes(const std::string& home_id, const std::string& env, const InstanceRecord& inst,
                             int64_t grace_ms) {
  bool shim_ok = shim_alive(inst);
  auto members = [&] { return instance_members(home_id, env, inst, shim_ok && shim_alive(inst)); };
  auto first = members();
  if (first.empty()) {
    return true;
  }
  if (shim_ok) {
    ::kill(inst.shim_pid, SIGTERM); // the shim forwards TERM to the app and logs its exit
  } else {
    for (pid_t p : first) {
      ::kill(p, SIGTERM);
    }
  }
  if (wait_gone(members, grace_ms)) {
    return true;
  }
  if (shim_ok) {
    // While any member is left the group id cannot be reused, so this reaches only ours.
    ::kill(-inst.shim_pid, SIGKILL);
  }
  for (pid_t p : members()) {
    ::kill(p, SIGKILL);
  }
  // The shim's group may also hold processes that dropped their environment.
  return wait_gone(members, 5000);
}

namespace {

// Calls fn(pid, uids, threads, zombie) for each process: its real, effective and saved uid
// (from /proc/<pid>/status), its task count, and whether it has exited and only waits to
// be reaped. Processes gone meanwhile are skipped.
void for_each_process_uids(const std::function<void(pid_t, const std::vector<uid_t>&, size_t, bool)>& fn) {
  DIR* d = ::opendir("/proc");
  if (!d) {
    return;
  }
  while (auto* ent = ::readdir(d)) {
    auto pid = util::parse_int<pid_t>(ent->d_name, 1);
    if (!pid) {
      continue;
    }
    auto status = util::read_file("/proc/" + std::to_string(*pid) + "/status");
    if (!status) {
      continue; // gone meanwhile
    }
    std::vector<uid_t> uids;
    size_t threads = 1;
    bool zombie = false;
    for (const auto& line : util::split(*status, '\n')) {
      if (util::starts_with(line, "State:")) {
        std::string state = util::trim(line.substr(6));
        zombie = util::starts_with(state, "Z") || util::starts_with(state, "X");
      } else if (util::starts_with(line, "Uid:")) {
        auto words = util::split(util::trim(line.substr(4)), '\t');
        for (size_t i = 0; i < words.size() && i < 3; ++i) {
          uids.push_back(util::parse_int<uid_t>(util::trim(words[i])).value_or(static_cast<uid_t>(-1)));
        }
      } else if (util::starts_with(line, "Threads:")) {
        threads = util::parse_int<size_t>(util::trim(line.substr(8)), 1).value_or(1);
      }
    }
    fn(*pid, uids, threads, zombie);
  }
  ::closedir(d);
}

} // namespace

size_t tasks_of_uid(uid_t uid) {
  size_t n = 0;
  for_each_process_uids([&](pid_t, const std::vector<uid_t>& uids, size_t threads, bool) {
    // The real uid: what RLIMIT_NPROC counts, zombies included (until they are reaped).
    n += !uids.empty() && uids[0] == uid ? threads : 0;
  });
  return n;
}

std::vector<pid_t> processes_of_uid(uid_t uid) {
  std::vector<pid_t> out;
  for_each_process_uids([&](pid_t pid, const std::vector<uid_t>& uids, size_t, bool zombie) {
    if (!zombie && std::find(uids.begin(), uids.end(), uid) != uids.end()) {
      out.push_back(pid);
    }
  });
  return out;
}

bool stop_marked_processes(const std::vector<MarkedProcess>& procs, int64_t grace_ms) {
  std::vector<pid_t> pids;
  for (const auto& p : procs) {
    pids.push_back(p.pid);
  }
  return util::terminate_processes(pids, grace_ms);
}

} // namespace idp::drivers::local
