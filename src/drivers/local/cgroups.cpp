#include "drivers/local/cgroups.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <filesystem>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

namespace {

constexpr int64_t k_cpu_period_us = 100000;

std::string errno_text() { return std::strerror(errno); }

// The daemon's own group in the v1 hierarchy of `controller` ("/" when unknown).
std::string own_v1_group(const std::string& controller) {
  auto text = util::read_file("/proc/self/cgroup");
  if (!text) {
    return "/";
  }
  for (const auto& line : util::split(*text, '\n')) {
    auto parts = util::split(line, ':');
    if (parts.size() < 3) {
      continue;
    }
    for (const auto& c : util::split(parts[1], ',')) {
      if (c == controller) {
        std::string path = line.substr(parts[0].size() + parts[1].size() + 2);
        return path.empty() ? "/" : path;
      }
    }
  }
  return "/";
}

Expected<void> write_value(const std::string& file, const std::string& value) {
  if (!util::path_exists(file)) {
    return make_error(ErrorCode::permanent, util::quote(file) + " does not exist (not a cgroup hierarchy?)");
  }
  // Control files are written in place, never through a temporary file and rename.
  FILE* f = std::fopen(file.c_str(), "we");
  if (!f) {
    return make_error(ErrorCode::io_error, "cannot open " + util::quote(file) + ": " + errno_text());
  }
  bool ok = std::fputs(value.c_str(), f) >= 0;
  ok = std::fflush(f) == 0 && ok;
  int e = errno;
  std::fclose(f);
  if (!ok) {
    return make_error(ErrorCode::io_error,
                      "cannot write " + util::quote(value) + " to " + util::quote(file) + ": " + std::strerror(e));
  }
  return {};
}

Expected<void> make_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return make_error(ErrorCode::io_error, "cannot create cgroup " + util::quote(dir) + ": " + errno_text());
  }
  return {};
}

bool remove_dir_retrying(const std::string& dir) {
  int64_t deadline = util::steady_ms() + 2000;
  while (true) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) {
      return true;
    }
    if (errno != EBUSY || util::steady_ms() >= deadline) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

} // namespace

nlohmann::json CgroupPlacement::to_json() const {
  nlohmann::json j = {{"version", version}, {"paths", dirs}};
  j["cpu_quota_us"] = cpu_quota_us;
  j["cpu_period_us"] = cpu_period_us;
  j["memory_limit_bytes"] = memory_bytes;
  j["pids_max"] = pids_max;
  return j;
}

Cgroups::Cgroups(std::string root, std::string home_id) : m_root(std::move(root)), m_home_id(std::move(home_id)) {}

Cgroups::Layout Cgroups::detect() const {
  Layout l;
  std::string group = "idp-" + m_home_id;
  if (util::path_exists(util::path_join(m_root, "cgroup.controllers"))) {
    auto ctl = util::read_file(util::path_join(m_root, "cgroup.controllers"));
    auto words = util::split(util::trim(ctl ? *ctl : ""), ' ');
    auto has = [&](const char* c) { return std::find(words.begin(), words.end(), c) != words.end(); };
    l.version = 2;
    l.v2_cpu = has("cpu");
    l.v2_memory = has("memory");
    l.v2_pids = has("pids");
    l.parents = {util::path_join(m_root, group)};
    if (!l.v2_cpu && !l.v2_memory && !l.v2_pids) {
      l.version = 0;
      l.why_not = "cgroup v2 at " + util::quote(m_root) + " lacks the cpu, memory and pids controllers";
    }
    return l;
  }
  // v1: each controller is a hierarchy of its own; whichever exist are used.
  auto parent_in = [&](const std::string& controller) -> std::string {
    std::string mount = util::path_join(m_root, controller);
    if (!util::path_exists(util::path_join(mount, "cgroup.procs"))) {
      return "";
    }
    std::string own = own_v1_group(controller);
    std::string base = mount + (own == "/" ? "" : own);
    if (!util::is_directory(base)) {
      base = mount; // our group is not visible in this mount namespace
    }
    return util::path_join(base, group);
  };
  l.cpu_parent = parent_in("cpu");
  l.memory_parent = parent_in("memory");
  l.pids_parent = parent_in("pids");
  l.cpuacct_parent = parent_in("cpuacct");
  if (!l.cpuacct_parent.empty() && !l.cpu_parent.empty()) {
    // Mounted together ("cpu,cpuacct", with cpu and cpuacct links to it): the cpu group
    // counts already.
    std::error_code ec1;
    std::error_code ec2;
    auto a = std::filesystem::weakly_canonical(util::path_join(m_root, "cpu"), ec1);
    auto b = std::filesystem::weakly_canonical(util::path_join(m_root, "cpuacct"), ec2);
    if (!ec1 && !ec2 && a == b) {
      l.cpuacct_parent.clear();
    }
  }
  for (const std::string* p : {&l.cpu_parent, &l.memory_parent, &l.pids_parent, &l.cpuacct_parent}) {
    if (!p->empty()) {
      l.parents.push_back(*p);
    }
  }
  if (l.parents.empty()) {
    l.why_not = "no cgroup v2 or v1 cpu, memory or pids hierarchy under " + util::quote(m_root);
    return l;
  }
  l.version = 1;
  return l;
}

Expected<void> Cgroups::set_cpu_quota(const std::vector<std::string>& dirs, int64_t quota_us, int64_t period_us) {
  for (const auto& dir : dirs) {
    if (std::string v2 = util::path_join(dir, "cpu.max"); util::path_exists(v2)) {
      return write_value(v2, (quota_us > 0 ? std::to_string(quota_us) : "max") + " " + std::to_string(period_us));
    }
    if (std::string v1 = util::path_join(dir, "cpu.cfs_quota_us"); util::path_exists(v1)) {
      return write_value(v1, quota_us > 0 ? std::to_string(quota_us) : "-1");
    }
  }
  return {};
}

Expected<CgroupPlacement> Cgroups::create(const std::string& name, const CgroupLimits& limits) {
  std::lock_guard<std::mutex> g(m_mutex);
  Layout l = detect();
  if (l.version == 0) {
    return make_error(ErrorCode::permanent, l.why_not);
  }
  CgroupPlacement p;
  p.version = l.version;
  p.cpu_period_us = k_cpu_period_us;
  const int64_t cpu_quota = limits.cpu_units > 0 ? int64_t{limits.cpu_units} * k_cpu_period_us / 1024 : 0;
  const int64_t memory_bytes = int64_t{limits.memory_mib} * 1024 * 1024;
  const std::string pids_value = limits.pids_max > 0 ? std::to_string(limits.pids_max) : "max";
  // Each controller on its own: one that cannot be had (missing, not delegated, a write
  // refused) costs its own limit and a reason, never the others' (pids.max above all).
  std::vector<std::string> cpu_memory_missing;
  auto cpu_memory_lost = [&](const std::string& why) { cpu_memory_missing.push_back(why); };
  auto finish = [&]() -> Expected<CgroupPlacement> {
    if (!cpu_memory_missing.empty()) {
      p.cpu_memory_warning = util::join(cpu_memory_missing, "; ");
    }
    if (p.procs_files.empty()) {
      std::string why = util::join(cpu_memory_missing, "; ");
      if (!p.pids_warning.empty()) {
        why += (why.empty() ? "" : "; ") + p.pids_warning;
      }
      remove_empty_parents_locked(l);
      return make_error(ErrorCode::permanent, why.empty() ? "no cgroup could be created" : why);
    }
    return p;
  };
  if (l.version == 2) {
    const std::string& parent = l.parents[0];
    // Enabled one by one at the root and in the parent: "+cpu +memory" fails as a whole when
    // one of them cannot be enabled.
    auto enable = [&](const char* controller) -> Expected<void> {
      std::string word = std::string("+") + controller;
      IDP_TRY(write_value(util::path_join(m_root, "cgroup.subtree_control"), word));
      IDP_TRY(make_dir(parent));
      return write_value(util::path_join(parent, "cgroup.subtree_control"), word);
    };
    // True when `controller` is enabled; else why not, in `why`.
    auto try_enable = [&](const char* controller, bool offered, std::string& why) {
      if (!offered) {
        why = "cgroup v2 at " + util::quote(m_root) + " lacks the " + controller + " controller";
        return false;
      }
      auto r = enable(controller);
      if (!r) {
        why = r.error().with_context(std::string("cannot enable the ") + controller + " controller").message;
      }
      return r.has_value();
    };
    std::string why;
    bool cpu = try_enable("cpu", l.v2_cpu, why);
    if (!cpu) {
      cpu_memory_lost(why);
    }
    bool memory = try_enable("memory", l.v2_memory, why);
    if (!memory) {
      cpu_memory_lost(why);
    }
    bool pids = try_enable("pids", l.v2_pids, p.pids_warning);
    if (!cpu && !memory && !pids) {
      return finish();
    }
    std::string dir = util::path_join(parent, name);
    if (auto r = make_dir(parent); !r) {
      return Unexpected(r.error());
    }
    if (auto r = make_dir(dir); !r) {
      remove_empty_parents_locked(l);
      return Unexpected(r.error());
    }
    p.dirs.push_back(dir);
    p.procs_files.push_back(util::path_join(dir, "cgroup.procs"));
    if (cpu) {
      std::string cpu_max = cpu_quota > 0 ? std::to_string(cpu_quota) + " " + std::to_string(k_cpu_period_us)
                                          : "max " + std::to_string(k_cpu_period_us);
      if (auto r = write_value(util::path_join(dir, "cpu.max"), cpu_max); !r) {
        cpu_memory_lost(r.error().message);
      } else {
        p.cpu_quota_us = cpu_quota;
      }
    }
    if (memory) {
      if (auto r =
              write_value(util::path_join(dir, "memory.max"), memory_bytes > 0 ? std::to_string(memory_bytes) : "max");
          !r) {
        cpu_memory_lost(r.error().message);
      } else {
        p.memory_bytes = memory_bytes;
      }
    }
    if (pids) {
      if (auto r = write_value(util::path_join(dir, "pids.max"), pids_value); !r) {
        p.pids_warning = r.error().message;
      } else {
        p.pids_max = limits.pids_max;
      }
    }
    return finish();
  }
  // v1: a group per hierarchy. The parent may have been removed by a concurrent remove():
  // mkdir both levels. A group whose limit cannot be written is removed again.
  auto group_in = [&](const std::string& parent,
                      const std::vector<std::pair<std::string, std::string>>& values) -> Expected<void> {
    IDP_TRY(make_dir(parent));
    std::string dir = util::path_join(parent, name);
    IDP_TRY(make_dir(dir));
    for (const auto& [file, value] : values) {
      if (auto r = write_value(util::path_join(dir, file), value); !r) {
        ::rmdir(dir.c_str());
        return r;
      }
    }
    p.dirs.push_back(dir);
    p.procs_files.push_back(util::path_join(dir, "cgroup.procs"));
    return {};
  };
  if (l.cpu_parent.empty()) {
    cpu_memory_lost("no cgroup v1 cpu hierarchy under " + util::quote(m_root));
  } else if (auto r = group_in(l.cpu_parent, {{"cpu.cfs_period_us", std::to_string(k_cpu_period_us)},
                                              {"cpu.cfs_quota_us", cpu_quota > 0 ? std::to_string(cpu_quota) : "-1"}});
             !r) {
    cpu_memory_lost(r.error().message);
  } else {
    p.cpu_quota_us = cpu_quota;
  }
  std::vector<std::pair<std::string, std::string>> memory_values;
  if (memory_bytes > 0) {
    memory_values.emplace_back("memory.limit_in_bytes", std::to_string(memory_bytes));
  }
  if (l.memory_parent.empty()) {
    cpu_memory_lost("no cgroup v1 memory hierarchy under " + util::quote(m_root));
  } else if (auto r = group_in(l.memory_parent, memory_values); !r) {
    cpu_memory_lost(r.error().message);
  } else {
    p.memory_bytes = memory_bytes;
  }
  if (l.pids_parent.empty()) {
    p.pids_warning = "no cgroup v1 pids hierarchy under " + util::quote(m_root);
  } else if (auto r = group_in(l.pids_parent, {{"pids.max", pids_value}}); !r) {
    p.pids_warning = r.error().message;
  } else {
    p.pids_max = limits.pids_max;
  }
  if (!l.cpuacct_parent.empty() && !p.dirs.empty()) {
    // Accounting only: without it idp cost has no measured CPU time, nothing else is lost.
    if (auto r = group_in(l.cpuacct_parent, {}); !r) {
      spdlog::debug("cgroups: no cpuacct group for {}: {}", name, r.error().message);
    }
  }
  return finish();
}

void Cgroups::remove(const std::vector<std::string>& dirs) {
  std::lock_guard<std::mutex> g(m_mutex);
  for (const auto& dir : dirs) {
    if (dir.empty() || !util::is_directory(dir)) {
      continue;
    }
    remove_dir_retrying(dir);
    // The per-home parent goes when its last group does (fails while others remain).
    std::string parent = dir.substr(0, dir.rfind('/'));
    if (util::starts_with(parent.substr(parent.rfind('/') + 1), "idp-")) {
      ::rmdir(parent.c_str());
    }
  }
}

std::vector<std::string> Cgroups::remove_empty_parents() {
  std::lock_guard<std::mutex> g(m_mutex);
  return remove_empty_parents_locked(detect());
}

std::vector<std::string> Cgroups::remove_empty_parents_locked(const Layout& l) {
  // rmdir removes a cgroup only when it has no child group (and no process): a parent that
  // still holds a revision's group stays, whatever runs in it.
  std::vector<std::string> removed;
  for (const auto& parent : l.parents) {
    if (::rmdir(parent.c_str()) == 0) {
      removed.push_back(parent);
    }
  }
  return removed;
}

std::vector<std::string> Cgroups::list(const std::string& prefix) const {
  std::vector<std::string> out;
  Layout l = detect();
  for (const auto& parent : l.parents) {
    DIR* d = ::opendir(parent.c_str());
    if (!d) {
      continue;
    }
    while (auto* ent = ::readdir(d)) {
      std::string n = ent->d_name;
      if (n != "." && n != ".." && util::starts_with(n, prefix) && ent->d_type == DT_DIR) {
        out.push_back(util::path_join(parent, n));
      }
    }
    ::closedir(d);
  }
  return out;
}

} // namespace idp::drivers::local
