#include "engine/retention.hpp"

#include <gtest/gtest.h>

#include "fakes/fake_clock.hpp"
#include "fakes/in_memory_store.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/subprocess.hpp"

using namespace idp;
using namespace idp::testing;

namespace {

constexpr util::Millis k_day = 86'400'000;

core::Environment make_env(const std::string& name, const std::string& repo) {
  core::Environment e;
  e.name = name;
  e.repo = repo;
  e.branch = "main";
  e.commit = "c0ffee";
  return e;
}

core::Event event_at(const std::string& env, util::Millis at) {
  core::Event ev;
  ev.env = env;
  ev.at = at;
  ev.actor = "test";
  ev.action = "note";
  return ev;
}

} // namespace

// Outside the anonymous namespace: in a unity build the TEST_F classes deriving from it
// would otherwise trip -Wsubobject-linkage.
class RetentionTest : public ::testing::Test {
protected:
  RetentionTest() : m_tmp("idp-retention") {
    m_options.event_retention = 90 * k_day;
    m_options.destroyed_retention = 30 * k_day;
    m_options.mirror_retention = 7 * k_day;
  }

  engine::Retention retention() { return engine::Retention(m_store, m_clock, m_tmp.sub("git"), m_options); }

  // A directory that looks like the mirror GitMirror would use for `repo`.
  std::string fake_mirror(const std::string& repo) {
    std::string path = util::GitMirror(m_tmp.sub("git"), repo).path();
    EXPECT_TRUE(util::ensure_dir(path));
    EXPECT_TRUE(util::write_file_atomic(util::path_join(path, "HEAD"), "ref: refs/heads/main\n"));
    return path;
  }

  TempDir m_tmp;
  InMemoryStore m_store;
  FakeClock m_clock;
  engine::EngineOptions m_options;
};

TEST_F(RetentionTest, PrunesEventsOlderThanTheRetention) {
  util::Millis now = m_clock.now_ms();
  ASSERT_TRUE(m_store.insert_environment(make_env("a", "/src/a"), {event_at("a", now - 91 * k_day)}));
  ASSERT_TRUE(m_store.append_event(event_at("a", now - 89 * k_day)));
  ASSERT_TRUE(m_store.append_event(event_at("a", now)));
  auto swept = retention().sweep();
  ASSERT_TRUE(swept) << swept.error().full_message();
  EXPECT_EQ(swept->events, 1u);
  auto left = m_store.list_events(store::EventQuery{});
  ASSERT_EQ(left->size(), 2u);
  EXPECT_EQ((*left)[0].at, now - 89 * k_day);
  // 0 keeps them forever.
  m_options.event_retention = 0;
  m_clock.advance(365 * k_day);
  EXPECT_EQ(retention().sweep()->events, 0u);
  EXPECT_EQ(m_store.list_events(store::EventQuery{})->size(), 2u);
}

TEST_F(RetentionTest, PurgesEnvironmentsDestroyedLongerAgoThanTheRetention) {
  util::Millis now = m_clock.now_ms();
  for (const char* name : {"long-gone", "just-gone", "live"}) {
    ASSERT_TRUE(m_store.insert_environment(make_env(name, std::string("/src/") + name), {}));
  }
  auto destroyed_at = [&](const std::string& name, util::Millis at) {
    return m_store.update_environment(name, [at](core::Environment& e, std::vector<core::Event>&) -> Expected<void> {
      e.phase = core::Phase::destroyed;
      e.destroyed_at = at;
      return {};
    });
  };
  ASSERT_TRUE(destroyed_at("long-gone", now - 31 * k_day));
  ASSERT_TRUE(destroyed_at("just-gone", now - 29 * k_day));
  auto swept = retention().sweep();
  ASSERT_TRUE(swept) << swept.error().full_message();
  EXPECT_EQ(swept->environments, 1u);
  EXPECT_FALSE(m_store.get_environment("long-gone"));
  EXPECT_TRUE(m_store.get_environment("just-gone"));
  EXPECT_TRUE(m_store.get_environment("live"));
}

TEST_F(RetentionTest, RemovesGitMirrorsNoLiveEnvironmentUsesOnceUnfetchedForTheRetention) {
  std::string used = fake_mirror("/src/used");
  std::string unused = fake_mirror("/src/unused");
  std::string destroyed = fake_mirror("/src/destroyed");
  ASSERT_TRUE(m_store.insert_environment(make_env("used", "/src/used"), {}));
  ASSERT_TRUE(m_store.insert_environment(make_env("destroyed", "/src/destroyed"), {}));
  ASSERT_TRUE(
      m_store.update_environment("destroyed", [](core::Environment& e, std::vector<core::Event>&) -> Expected<void> {
        e.phase = core::Phase::destroyed;
        return {};
      }));
  // Just fetched: kept, used or not.
  m_clock.set(util::SystemClock().now_ms());
  EXPECT_EQ(retention().sweep()->mirrors, 0u);
  EXPECT_TRUE(util::is_directory(unused));
  // Eight days later: the unused ones go, the one a live environment uses stays.
  m_clock.set(util::SystemClock().now_ms() + 8 * k_day);
  auto swept = retention().sweep();
  ASSERT_TRUE(swept) << swept.error().full_message();
  EXPECT_EQ(swept->mirrors, 2u);
  EXPECT_TRUE(util::is_directory(used));
  EXPECT_FALSE(util::path_exists(unused));
  EXPECT_FALSE(util::path_exists(destroyed));
}

TEST_F(RetentionTest, AMirrorBeingFetchedIsKept) {
  std::string mirror = fake_mirror("/src/busy");
  auto lock = util::FileLock::acquire(mirror.substr(0, mirror.size() - 4) + ".lock");
  ASSERT_TRUE(lock);
  m_clock.set(util::SystemClock().now_ms() + 8 * k_day);
  EXPECT_EQ(retention().sweep()->mirrors, 0u);
  EXPECT_TRUE(util::is_directory(mirror));
}

// The deploy path's fetches skip git's automatic maintenance; a sweep runs it on the
// mirrors of live environments (here: more packs than gc.autoPackLimit → one pack).
TEST_F(RetentionTest, ASweepRunsGitMaintenanceOnTheMirrorsOfLiveEnvironments) {
  GitRepo repo(m_tmp.sub("repo"));
  repo.write_file("a", "0\n");
  repo.commit("zero");
  util::GitMirror mirror(m_tmp.sub("git"), repo.path());
  ASSERT_TRUE(mirror.fetch());
  auto git = [&](std::vector<std::string> args) {
    util::Command c;
    c.argv = {"git", "--git-dir", mirror.path()};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    auto r = util::run(c);
    return r && r->exit_code == 0 ? r->out : std::string("git failed");
  };
  ASSERT_EQ(git({"config", "fetch.unpackLimit", "1"}), "");
  ASSERT_EQ(git({"config", "gc.autoPackLimit", "2"}), "");
  for (int i = 1; i <= 3; ++i) {
    repo.write_file("a", std::to_string(i) + "\n");
    repo.commit("change");
    ASSERT_TRUE(mirror.fetch_branch("main"));
  }
  auto packs = [&] {
    std::string out = git({"count-objects", "-v"});
    size_t at = out.find("packs: ");
    return at == std::string::npos ? -1 : std::atoi(out.c_str() + at + 7);
  };
  ASSERT_GT(packs(), 2);
  ASSERT_TRUE(m_store.insert_environment(make_env("live", repo.path()), {}));
  m_clock.set(util::SystemClock().now_ms());
  auto swept = retention().sweep();
  ASSERT_TRUE(swept) << swept.error().full_message();
  EXPECT_EQ(packs(), 1);
}
