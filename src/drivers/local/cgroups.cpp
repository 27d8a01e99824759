#include "drivers/local/cgroups.hpp"

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

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
    bool cpu = std::find(words.begin(), words.end(), "cpu") != words.end();
    bool mem = std::find(words.begin(), words.end(), "memory") != words.end();
    if (!cpu || !mem) {
      l.why_not = "cgroup v2 at " + util::quote(m_root) + " lacks the " +
                  std::string(!cpu && !mem ? "cpu and memory controllers"
                              : !cpu       ? "cpu controller"
                                           : "memory controller");
      return l;
    }
    l.version = 2;
    l.parents = {util::path_join(m_root, group)};
    return l;
  }
  std::string cpu = util::path_join(m_root, "cpu");
  std::string mem = util::path_join(m_root, "memory");
  if (util::path_exists(util::path_join(cpu, "cgroup.procs")) &&
      util::path_exists(util::path_join(mem, "cgroup.procs"))) {
    l.version = 1;
    for (auto [mount, controller] : {std::pair{cpu, "cpu"}, std::pair{mem, "memory"}}) {
      std::string own = own_v1_group(controller);
      std::string base = mount + (own == "/" ? "" : own);
      if (!util::is_directory(base)) {
        base = mount; // our group is not visible in this mount namespace
      }
      l.parents.push_back(util::path_join(base, group));
    }
    std::string pids = util::path_join(m_root, "pids");
    if (util::path_exists(util::path_join(pids, "cgroup.procs"))) {
      std::string own = own_v1_group("pids");
      std::string base = pids + (own == "/" ? "" : own);
      l.pids_parent = util::path_join(util::is_directory(base) ? base : pids, group);
    }
    return l;
  }
  l.why_not = "no cgroup v2 or v1 cpu/memory hierarchy under " + util::quote(m_root);
  return l;
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
  p.cpu_quota_us = limits.cpu_units > 0 ? int64_t{limits.cpu_units} * k_cpu_period_us / 1024 : 0;
  p.memory_bytes = int64_t{limits.memory_mib} * 1024 * 1024;
  const std::string pids_value = limits.pids_max > 0 ? std::to_string(limits.pids_max) : "max";
  auto fail = [&](const Error& e) -> Expected<CgroupPlacement> {
    for (auto it = p.dirs.rbegin(); it != p.dirs.rend(); ++it) {
      ::rmdir(it->c_str());
    }
    return Unexpected(e);
  };
  if (l.version == 2) {
    const std::string& parent = l.parents[0];
    if (auto r = write_value(util::path_join(m_root, "cgroup.subtree_control"), "+cpu +memory"); !r) {
      return fail(r.error().with_context("cannot enable the cpu and memory controllers"));
    }
    if (auto r = make_dir(parent); !r) {
      return fail(r.error());
    }
    if (auto r = write_value(util::path_join(parent, "cgroup.subtree_control"), "+cpu +memory"); !r) {
      return fail(r.error().with_context("cannot enable the cpu and memory controllers"));
    }
    // Separately: a hierarchy without the pids controller still gets cpu and memory.
    auto pids_on = write_value(util::path_join(m_root, "cgroup.subtree_control"), "+pids");
    if (pids_on) {
      pids_on = write_value(util::path_join(parent, "cgroup.subtree_control"), "+pids");
    }
    std::string dir = util::path_join(parent, name);
    if (auto r = make_dir(dir); !r) {
      return fail(r.error());
    }
    p.dirs.push_back(dir);
    std::string cpu_max = p.cpu_quota_us > 0 ? std::to_string(p.cpu_quota_us) + " " + std::to_string(k_cpu_period_us)
                                             : "max " + std::to_string(k_cpu_period_us);
    if (auto r = write_value(util::path_join(dir, "cpu.max"), cpu_max); !r) {
      return fail(r.error());
    }
    if (auto r = write_value(util::path_join(dir, "memory.max"),
                             p.memory_bytes > 0 ? std::to_string(p.memory_bytes) : "max");
        !r) {
      return fail(r.error());
    }
    if (!pids_on) {
      p.pids_warning = pids_on.error().with_context("cannot enable the pids controller").message;
    } else if (auto r = write_value(util::path_join(dir, "pids.max"), pids_value); !r) {
      p.pids_warning = r.error().message;
    } else {
      p.pids_max = limits.pids_max;
    }
    p.procs_files.push_back(util::path_join(dir, "cgroup.procs"));
    return p;
  }
  // v1: the parent may have been removed by a concurrent remove(); mkdir both levels.
  for (size_t i = 0; i < l.parents.size(); ++i) {
    if (auto r = make_dir(l.parents[i]); !r) {
      return fail(r.error());
    }
    std::string dir = util::path_join(l.parents[i], name);
    if (auto r = make_dir(dir); !r) {
      return fail(r.error());
    }
    p.dirs.push_back(dir);
    if (i == 0) {
      if (auto r = write_value(util::path_join(dir, "cpu.cfs_period_us"), std::to_string(k_cpu_period_us)); !r) {
        return fail(r.error());
      }
      if (auto r = write_value(util::path_join(dir, "cpu.cfs_quota_us"),
                               p.cpu_quota_us > 0 ? std::to_string(p.cpu_quota_us) : "-1");
          !r) {
        return fail(r.error());
      }
    } else if (p.memory_bytes > 0) {
      if (auto r = write_value(util::path_join(dir, "memory.limit_in_bytes"), std::to_string(p.memory_bytes)); !r) {
        return fail(r.error());
      }
    }
    p.procs_files.push_back(util::path_join(dir, "cgroup.procs"));
  }
  if (l.pids_parent.empty()) {
    p.pids_warning = "no cgroup v1 pids hierarchy under " + util::quote(m_root);
    return p;
  }
  std::string dir = util::path_join(l.pids_parent, name);
  auto made = make_dir(l.pids_parent);
  if (made) {
    made = make_dir(dir);
  }
  if (!made) {
    p.pids_warning = made.error().message;
    return p;
  }
  p.dirs.push_back(dir);
  if (auto r = write_value(util::path_join(dir, "pids.max"), pids_value); !r) {
    p.pids_warning = r.error().message;
  } else {
    p.pids_max = limits.pids_max;
  }
  p.procs_files.push_back(util::path_join(dir, "cgroup.procs"));
  return p;
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

std::vector<std::string> Cgroups::list(const std::string& prefix) const {
  std::vector<std::string> out;
  Layout l = detect();
  if (!l.pids_parent.empty()) {
    l.parents.push_back(l.pids_parent);
  }
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
