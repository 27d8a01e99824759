#include "drivers/local/cgroups.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <unistd.h>

#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"

namespace idp::drivers::local {
namespace {

using idp::testing::TempDir;

// Real cgroup v1 hierarchies we may write to (this machine's CI); else the test skips.
bool v1_writable() {
  return ::access("/sys/fs/cgroup/cpu/cgroup.procs", W_OK) == 0 &&
         ::access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) == 0 &&
         !util::path_exists("/sys/fs/cgroup/cgroup.controllers");
}

std::string unique_home_id() { return "t" + util::random_hex(5); }

TEST(CgroupsTest, V1LimitsAreWrittenAndRemoved) {
  if (!v1_writable()) {
    GTEST_SKIP() << "no writable cgroup v1 cpu/memory hierarchy";
  }
  Cgroups cg("/sys/fs/cgroup", unique_home_id());
  auto p = cg.create("env-a.1", {512, 1024, 64});
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->version, 1);
  // cpuacct as a hierarchy of its own (not mounted with cpu): a group for accounting too.
  const bool cpuacct = util::path_exists("/sys/fs/cgroup/cpuacct/cgroup.procs") &&
                       std::filesystem::weakly_canonical("/sys/fs/cgroup/cpuacct") !=
                           std::filesystem::weakly_canonical("/sys/fs/cgroup/cpu");
  const size_t groups = cpuacct ? 4u : 3u;
  ASSERT_EQ(p->dirs.size(), groups) << "cpu, memory, pids (and cpuacct)";
  ASSERT_EQ(p->procs_files.size(), groups);
  if (cpuacct) {
    EXPECT_TRUE(util::path_exists(p->dirs[3] + "/cpuacct.usage")) << "CPU time is counted (idp cost)";
  }
  EXPECT_EQ(util::trim(*util::read_file(p->dirs[2] + "/pids.max")), "64");
  EXPECT_EQ(p->pids_max, 64);
  EXPECT_EQ(p->pids_warning, "");
  EXPECT_EQ(util::trim(*util::read_file(p->dirs[0] + "/cpu.cfs_quota_us")), "50000");
  EXPECT_EQ(util::trim(*util::read_file(p->dirs[0] + "/cpu.cfs_period_us")), "100000");
  EXPECT_EQ(util::trim(*util::read_file(p->dirs[1] + "/memory.limit_in_bytes")), std::to_string(1024LL << 20));
  EXPECT_EQ(p->cpu_quota_us, 50000);
  EXPECT_EQ(p->memory_bytes, 1024LL << 20);
  EXPECT_EQ(cg.list("env-a.").size(), groups);
  EXPECT_TRUE(cg.list("env-b.").empty());
  cg.remove(p->dirs);
  for (const auto& d : p->dirs) {
    EXPECT_FALSE(util::path_exists(d));
    EXPECT_FALSE(util::path_exists(d.substr(0, d.rfind('/')))) << "the per-home parent goes with its last group";
  }
  cg.remove(p->dirs); // idempotent
}

// The per-home parents go once they hold no group: remove_empty_parents() (the daemon's
// start and clean stop) removes them when a crash left them empty, and keeps one that
// still holds a revision's group.
TEST(CgroupsTest, EmptyParentsAreRemovedAndUsedOnesKept) {
  if (!v1_writable()) {
    GTEST_SKIP() << "no writable cgroup v1 cpu/memory hierarchy";
  }
  Cgroups cg("/sys/fs/cgroup", unique_home_id());
  auto p = cg.create("env-a.1", {512, 256, 64});
  ASSERT_TRUE(p.has_value()) << p.error().message;
  std::vector<std::string> parents;
  for (const auto& d : p->dirs) {
    parents.push_back(d.substr(0, d.rfind('/')));
  }
  EXPECT_TRUE(cg.remove_empty_parents().empty()) << "each parent holds the revision's group";
  for (const auto& parent : parents) {
    EXPECT_TRUE(util::is_directory(parent)) << parent;
  }
  // A crash between a group's removal and its parent's: the parents are left empty.
  for (const auto& d : p->dirs) {
    ASSERT_EQ(::rmdir(d.c_str()), 0) << d;
  }
  EXPECT_EQ(cg.remove_empty_parents(), parents);
  for (const auto& parent : parents) {
    EXPECT_FALSE(util::path_exists(parent)) << parent;
  }
  EXPECT_TRUE(cg.remove_empty_parents().empty()) << "idempotent";
}

TEST(CgroupsTest, NoHierarchyIsAnErrorWithTheReason) {
  TempDir dir;
  Cgroups cg(dir.path(), unique_home_id());
  auto p = cg.create("env-a.1", {256, 512});
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message.find("no cgroup v2 or v1 cpu, memory or pids hierarchy"), std::string::npos)
      << p.error().message;
  EXPECT_TRUE(cg.list("").empty());
}

TEST(CgroupsTest, V2WithoutAnyControllerIsAnErrorWithTheReason) {
  TempDir dir;
  ASSERT_TRUE(util::write_file_atomic(dir.sub("cgroup.controllers"), "io\n"));
  Cgroups cg(dir.path(), unique_home_id());
  auto p = cg.create("env-a.1", {256, 512});
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message.find("lacks the cpu, memory and pids controllers"), std::string::npos)
      << p.error().message;
}

// Each controller on its own: a hierarchy with pids but neither cpu nor memory still bounds
// the processes (a fork bomb); it once gave up on all three.
TEST(CgroupsTest, V2WithOnlyPidsStillGetsPidsMax) {
  TempDir dir;
  ASSERT_TRUE(util::write_file_atomic(dir.sub("cgroup.controllers"), "pids io\n"));
  ASSERT_TRUE(util::write_file_atomic(dir.sub("cgroup.subtree_control"), ""));
  std::string id = unique_home_id();
  std::string parent = dir.sub("idp-" + id);
  ASSERT_TRUE(util::ensure_dir(parent + "/env-a.1"));
  ASSERT_TRUE(util::write_file_atomic(parent + "/cgroup.subtree_control", ""));
  for (const char* f : {"pids.max", "cgroup.procs"}) {
    ASSERT_TRUE(util::write_file_atomic(parent + "/env-a.1/" + f, ""));
  }
  Cgroups cg(dir.path(), id);
  auto p = cg.create("env-a.1", {256, 512, 64});
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(*util::read_file(parent + "/env-a.1/pids.max"), "64");
  EXPECT_EQ(p->pids_max, 64);
  EXPECT_EQ(p->pids_warning, "");
  EXPECT_EQ(p->cpu_quota_us, 0);
  EXPECT_EQ(p->memory_bytes, 0);
  EXPECT_NE(p->cpu_memory_warning.find("lacks the cpu controller"), std::string::npos) << p->cpu_memory_warning;
  EXPECT_NE(p->cpu_memory_warning.find("lacks the memory controller"), std::string::npos) << p->cpu_memory_warning;
  EXPECT_EQ(p->procs_files, std::vector<std::string>{parent + "/env-a.1/cgroup.procs"});
}

// The same on v1: a pids hierarchy without cpu and memory ones.
TEST(CgroupsTest, V1PidsHierarchyAloneStillGetsPidsMax) {
  TempDir dir;
  ASSERT_TRUE(util::ensure_dir(dir.sub("pids")));
  ASSERT_TRUE(util::write_file_atomic(dir.sub("pids/cgroup.procs"), ""));
  std::string id = unique_home_id();
  // The daemon's own pids group, as /proc/self/cgroup names it, under the fake mount.
  std::string own = "/";
  for (const auto& line : util::split(util::read_file("/proc/self/cgroup").value_or(""), '\n')) {
    auto parts = util::split(line, ':');
    if (parts.size() >= 3 && parts[1] == "pids") {
      own = line.substr(parts[0].size() + parts[1].size() + 2);
    }
  }
  std::string base = dir.sub("pids") + (own == "/" ? "" : own);
  ASSERT_TRUE(util::ensure_dir(base));
  std::string group = base + "/idp-" + id + "/env-a.1";
  ASSERT_TRUE(util::ensure_dir(group));
  for (const char* f : {"pids.max", "cgroup.procs"}) {
    ASSERT_TRUE(util::write_file_atomic(group + "/" + f, ""));
  }
  Cgroups cg(dir.path(), id);
  auto p = cg.create("env-a.1", {256, 512, 32});
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->version, 1);
  EXPECT_EQ(p->dirs, std::vector<std::string>{group});
  EXPECT_EQ(*util::read_file(group + "/pids.max"), "32");
  EXPECT_EQ(p->pids_max, 32);
  EXPECT_NE(p->cpu_memory_warning.find("no cgroup v1 cpu hierarchy"), std::string::npos) << p->cpu_memory_warning;
  EXPECT_NE(p->cpu_memory_warning.find("no cgroup v1 memory hierarchy"), std::string::npos) << p->cpu_memory_warning;
}

TEST(CgroupsTest, V2GroupGetsCpuMaxAndMemoryMax) {
  // A directory laid out like a cgroup2 mount: the files the kernel would create.
  TempDir dir;
  ASSERT_TRUE(util::write_file_atomic(dir.sub("cgroup.controllers"), "cpu memory pids\n"));
  ASSERT_TRUE(util::write_file_atomic(dir.sub("cgroup.subtree_control"), ""));
  std::string id = unique_home_id();
  std::string parent = dir.sub("idp-" + id);
  ASSERT_TRUE(util::ensure_dir(parent + "/env-a.1"));
  for (const char* f : {"cgroup.subtree_control"}) {
    ASSERT_TRUE(util::write_file_atomic(parent + "/" + f, ""));
  }
  for (const char* f : {"cpu.max", "memory.max", "pids.max", "cgroup.procs"}) {
    ASSERT_TRUE(util::write_file_atomic(parent + "/env-a.1/" + f, ""));
  }
  Cgroups cg(dir.path(), id);
  auto p = cg.create("env-a.1", {2048, 4096, 100});
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(p->version, 2);
  EXPECT_EQ(*util::read_file(parent + "/env-a.1/cpu.max"), "200000 100000");
  EXPECT_EQ(*util::read_file(parent + "/env-a.1/memory.max"), std::to_string(4096LL << 20));
  EXPECT_EQ(*util::read_file(parent + "/env-a.1/pids.max"), "100");
  EXPECT_EQ(p->pids_max, 100);
  // Each write replaces the fake file's content: the pids controller is enabled last, alone.
  EXPECT_EQ(*util::read_file(parent + "/cgroup.subtree_control"), "+pids");
  EXPECT_EQ(*util::read_file(dir.sub("cgroup.subtree_control")), "+pids");
  EXPECT_EQ(p->procs_files, std::vector<std::string>{parent + "/env-a.1/cgroup.procs"});
}

TEST(CgroupsTest, V2WithoutPidsMaxKeepsCpuAndMemoryAndSaysWhy) {
  TempDir dir;
  ASSERT_TRUE(util::write_file_atomic(dir.sub("cgroup.controllers"), "cpu memory\n"));
  ASSERT_TRUE(util::write_file_atomic(dir.sub("cgroup.subtree_control"), ""));
  std::string id = unique_home_id();
  std::string parent = dir.sub("idp-" + id);
  ASSERT_TRUE(util::ensure_dir(parent + "/env-a.1"));
  ASSERT_TRUE(util::write_file_atomic(parent + "/cgroup.subtree_control", ""));
  for (const char* f : {"cpu.max", "memory.max", "cgroup.procs"}) { // no pids.max: no pids controller
    ASSERT_TRUE(util::write_file_atomic(parent + "/env-a.1/" + f, ""));
  }
  Cgroups cg(dir.path(), id);
  auto p = cg.create("env-a.1", {1024, 512, 100});
  ASSERT_TRUE(p.has_value()) << p.error().message;
  EXPECT_EQ(*util::read_file(parent + "/env-a.1/memory.max"), std::to_string(512LL << 20));
  EXPECT_EQ(p->pids_max, 0);
  EXPECT_NE(p->pids_warning.find("lacks the pids controller"), std::string::npos) << p->pids_warning;
  EXPECT_EQ(p->cpu_memory_warning, "");
}

} // namespace
} // namespace idp::drivers::local
