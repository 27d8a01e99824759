#include "util/proc.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <dirent.h>
#include <thread>
#include <unistd.h>

#include "util/fs.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::util {

namespace {
// Fields of /proc/PID/stat after the ")" that closes comm.
std::optional<std::vector<std::string>> stat_fields(pid_t pid) {
  auto s = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!s) {
    return std::nullopt;
  }
  auto close = s->rfind(')');
  if (close == std::string::npos) {
    return std::nullopt;
  }
  std::vector<std::string> out;
  for (auto& f : split(trim(s->substr(close + 1)), ' ')) {
    out.push_back(f);
  }
  return out; // out[0] = state (field 3), out[k] = field k+3
}
} // namespace

bool process_alive(pid_t pid) {
  if (pid <= 0) {
    return false;
  }
  auto f = stat_fields(pid);
  return f && !f->empty() && (*f)[0] != "Z" && (*f)[0] != "X";
}

std::optional<uint64_t> process_start_time(pid_t pid) {
  auto f = stat_fields(pid);
  if (!f || f->size() < 20 || (*f)[0] == "Z") {
    return std::nullopt;
  }
  auto v = parse_int<uint64_t>((*f)[19]);
  return v ? std::optional<uint64_t>(*v) : std::nullopt;
}

std::optional<pid_t> process_group_of(pid_t pid) {
  auto f = stat_fields(pid);
  if (!f || f->size() < 3) {
    return std::nullopt;
  }
  auto v = parse_int<pid_t>((*f)[2]);
  return v ? std::optional<pid_t>(*v) : std::nullopt;
}

std::optional<std::string> process_env_value(pid_t pid, std::string_view key) {
  auto s = read_file("/proc/" + std::to_string(pid) + "/environ");
  if (!s) {
    return std::nullopt;
  }
  std::string prefix = std::string(key) + "=";
  size_t start = 0;
  while (start < s->size()) {
    size_t end = s->find('\0', start);
    if (end == std::string::npos) {
      end = s->size();
    }
    std::string_view kv(s->data() + start, end - start);
    if (starts_with(kv, prefix)) {
      return std::string(kv.substr(prefix.size()));
    }
    start = end + 1;
  }
  return std::nullopt;
}

namespace {
template <typename Pred>
std::vector<pid_t> scan_proc(Pred pred) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (!d) {
    return out;
  }
  pid_t self = ::getpid();
  while (auto* ent = ::readdir(d)) {
    auto v = parse_int<pid_t>(ent->d_name, 1);
    if (!v || *v == self) {
      continue;
    }
    pid_t pid = *v;
    if (pred(pid) && process_alive(pid)) {
      out.push_back(pid);
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}
} // namespace

std::vector<pid_t> find_processes_with_env(std::string_view key, std::string_view value) {
  return scan_proc([&](pid_t pid) {
    auto v = process_env_value(pid, key);
    return v && *v == value;
  });
}

std::vector<pid_t> find_processes_with_env_prefix(std::string_view key, std::string_view prefix) {
  return scan_proc([&](pid_t pid) {
    auto v = process_env_value(pid, key);
    return v && starts_with(*v, prefix);
  });
}

std::vector<pid_t> processes_in_group(pid_t pgid) {
  return scan_proc([&](pid_t pid) {
    auto g = process_group_of(pid);
    return g && *g == pgid;
  });
}

bool wait_group_empty(pid_t pgid, int64_t timeout_ms) {
  int64_t deadline = steady_ms() + timeout_ms;
  while (!processes_in_group(pgid).empty()) {
    if (steady_ms() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

bool terminate_group(pid_t pgid, int64_t grace_ms) {
  if (pgid <= 1) {
    return true;
  }
  if (::kill(-pgid, SIGTERM) != 0 && errno == ESRCH) {
    return processes_in_group(pgid).empty();
  }
  if (wait_group_empty(pgid, grace_ms)) {
    return true;
  }
  ::kill(-pgid, SIGKILL);
  return wait_group_empty(pgid, k_kill_wait_ms);
}

bool terminate_processes(const std::vector<pid_t>& pids, int64_t grace_ms) {
  for (pid_t p : pids) {
    ::kill(p, SIGTERM);
  }
  auto all_gone = [&] { return std::none_of(pids.begin(), pids.end(), [](pid_t p) { return process_alive(p); }); };
  int64_t deadline = steady_ms() + grace_ms;
  while (steady_ms() < deadline) {
    if (all_gone()) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (pid_t p : pids) {
    if (process_alive(p)) {
      ::kill(p, SIGKILL);
    }
  }
  int64_t kill_deadline = steady_ms() + k_kill_wait_ms;
  while (steady_ms() < kill_deadline && !all_gone()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return all_gone();
}

} // namespace idp::util
