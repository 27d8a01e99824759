// The StateStore contract: what every store must do, whatever it is built on.
// Instantiated per store in store_contract_test.cpp.

#include "contract/store_contract.hpp"

#include <algorithm>
#include <atomic>
#include <latch>
#include <thread>
#include <vector>

namespace idp::testing {

namespace {

using core::Desired;
using core::Environment;
using core::Event;
using core::JobRun;
using core::Lease;
using core::Phase;
using core::Revision;
using core::RevisionStatus;
using store::EventQuery;

// Every field set to something other than its default, with text that trips up naive
// escaping (quotes, backslashes, newlines, non-ASCII) and timestamps beyond 32 bits.
Environment full_environment() {
  Environment e;
  e.name = "pr-42";
  e.repo = "https://example.com/acme/shop.git";
  e.branch = "feature/ünïcödé-🚀";
  e.template_name = "api-database";
  e.runtime = "terraform";
  e.owner = "алиса";
  e.source_key = "https://example.com/acme/shop.git\nfeature/ünïcödé-🚀";
  e.phase = Phase::degraded;
  e.desired = Desired::absent;
  e.recreate = true;
  e.commit = "0123456789abcdef0123456789abcdef01234567";
  e.redeploy_ref = "abc1234";
  e.profile = "untrusted";
  e.freeze = core::Freeze{"cli:алиса", "QA \"sign-off\"", 1'700'000'000'500, 0, {"abc", "def"}};
  e.sleep = core::Sleep{core::Sleep::State::asleep, "idle", "no request for 30m \"ü\"", 1'700'000'000'700};
  e.deployed_commit = "fedcba9876543210fedcba9876543210fedcba98";
  e.generation = 7;
  e.observed_generation = 6;
  e.url = "http://pr-42.localhost:8080/";
  e.pr_number = 42;
  e.config_json = R"({"template":"api-database","ttl":"48h","environment":{"GREETING":"héllo"}})";
  e.outputs_json = R"({"pid":1234,"port":40123})";
  e.message = "health check failed: 503 \"Service Unavailable\"\nretrying";
  e.warnings = {"cpu is ignored by the local runtime", "quote \" backslash \\ and 日本語", ""};
  e.attempts = 3;
  e.next_attempt_at = 1'700'000'123'456;
  e.created_at = 1'700'000'000'001;
  e.expires_at = 1'700'172'800'001;
  e.updated_at = 1'700'000'100'002;
  e.destroyed_at = 9'000'000'000'000'000;
  return e;
}

Environment make_env(const std::string& name, const std::string& source_key = "") {
  Environment e;
  e.name = name;
  e.repo = "/src/" + name;
  e.branch = name;
  e.source_key = source_key;
  e.commit = "c0ffee";
  e.created_at = 1000;
  e.expires_at = 2000;
  return e;
}

Event make_event(const std::string& env, const std::string& action, util::Millis at = 1000) {
  Event ev;
  ev.env = env;
  ev.at = at;
  ev.actor = "cli:alice";
  ev.action = action;
  ev.reason = "because " + action;
  ev.from_phase = "pending";
  ev.to_phase = "ready";
  return ev;
}

void expect_same_environment(const Environment& want, const Environment& got) {
  EXPECT_EQ(got.name, want.name);
  EXPECT_EQ(got.repo, want.repo);
  EXPECT_EQ(got.branch, want.branch);
  EXPECT_EQ(got.template_name, want.template_name);
  EXPECT_EQ(got.runtime, want.runtime);
  EXPECT_EQ(got.owner, want.owner);
  EXPECT_EQ(got.source_key, want.source_key);
  EXPECT_EQ(core::phase_name(got.phase), core::phase_name(want.phase));
  EXPECT_EQ(core::desired_name(got.desired), core::desired_name(want.desired));
  EXPECT_EQ(got.recreate, want.recreate);
  EXPECT_EQ(got.commit, want.commit);
  EXPECT_EQ(got.redeploy_ref, want.redeploy_ref);
  EXPECT_EQ(got.profile, want.profile);
  ASSERT_EQ(got.freeze.has_value(), want.freeze.has_value());
  if (want.freeze) {
    EXPECT_EQ(got.freeze->by, want.freeze->by);
    EXPECT_EQ(got.freeze->reason, want.freeze->reason);
    EXPECT_EQ(got.freeze->at, want.freeze->at);
    EXPECT_EQ(got.freeze->until, want.freeze->until);
    EXPECT_EQ(got.freeze->waiting, want.freeze->waiting);
  }
  ASSERT_EQ(got.sleep.has_value(), want.sleep.has_value());
  if (want.sleep) {
    EXPECT_EQ(got.sleep->state, want.sleep->state);
    EXPECT_EQ(got.sleep->by, want.sleep->by);
    EXPECT_EQ(got.sleep->reason, want.sleep->reason);
    EXPECT_EQ(got.sleep->at, want.sleep->at);
  }
  EXPECT_EQ(got.deployed_commit, want.deployed_commit);
  EXPECT_EQ(got.generation, want.generation);
  EXPECT_EQ(got.observed_generation, want.observed_generation);
  EXPECT_EQ(got.url, want.url);
  EXPECT_EQ(got.pr_number, want.pr_number);
  EXPECT_EQ(got.config_json, want.config_json);
  EXPECT_EQ(got.outputs_json, want.outputs_json);
  EXPECT_EQ(got.message, want.message);
  EXPECT_EQ(got.warnings, want.warnings);
  EXPECT_EQ(got.attempts, want.attempts);
  EXPECT_EQ(got.next_attempt_at, want.next_attempt_at);
  EXPECT_EQ(got.created_at, want.created_at);
  EXPECT_EQ(got.expires_at, want.expires_at);
  EXPECT_EQ(got.updated_at, want.updated_at);
  EXPECT_EQ(got.destroyed_at, want.destroyed_at);
}

void expect_same_event(const Event& want, const Event& got) {
  EXPECT_EQ(got.env, want.env);
  EXPECT_EQ(got.at, want.at);
  EXPECT_EQ(got.actor, want.actor);
  EXPECT_EQ(got.action, want.action);
  EXPECT_EQ(got.reason, want.reason);
  EXPECT_EQ(got.from_phase, want.from_phase);
  EXPECT_EQ(got.to_phase, want.to_phase);
}

void expect_same_revision(const Revision& want, const Revision& got) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.env, want.env);
  EXPECT_EQ(got.commit, want.commit);
  EXPECT_EQ(got.generation, want.generation);
  EXPECT_EQ(core::revision_status_name(got.status), core::revision_status_name(want.status));
  EXPECT_EQ(got.message, want.message);
  EXPECT_EQ(got.log_tail, want.log_tail);
  EXPECT_EQ(got.created_at, want.created_at);
  EXPECT_EQ(got.finished_at, want.finished_at);
}

void expect_same_job_run(const JobRun& want, const JobRun& got) {
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.env, want.env);
  EXPECT_EQ(got.scheduled_at, want.scheduled_at);
  EXPECT_EQ(got.started_at, want.started_at);
  EXPECT_EQ(got.finished_at, want.finished_at);
  EXPECT_EQ(got.exit_code, want.exit_code);
  EXPECT_EQ(got.status, want.status);
  EXPECT_EQ(got.message, want.message);
}

std::vector<std::string> names_of(const std::vector<Environment>& envs) {
  std::vector<std::string> out;
  for (const auto& e : envs) {
    out.push_back(e.name);
  }
  return out;
}

std::vector<std::string> actions_of(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) {
    out.push_back(e.action);
  }
  return out;
}

std::vector<int64_t> ids_of(const std::vector<Event>& events) {
  std::vector<int64_t> out;
  for (const auto& e : events) {
    out.push_back(e.id);
  }
  return out;
}

// Sets the phase (and nothing else) through update_environment.
Expected<Environment> set_phase(store::StateStore& s, const std::string& name, Phase phase) {
  return s.update_environment(name, [phase](Environment& env, std::vector<Event>&) -> Expected<void> {
    env.phase = phase;
    return {};
  });
}

EventQuery events_of(const std::string& env) {
  EventQuery q;
  q.env = env;
  return q;
}

} // namespace

// --- Environments ---

TEST_P(StoreContract, NewStoreIsEmpty) {
  IDP_ASSERT_OK_ASSIGN(auto envs, store().list_environments(true));
  EXPECT_TRUE(envs.empty());
  IDP_ASSERT_OK_ASSIGN(auto events, store().list_events(EventQuery{}));
  EXPECT_TRUE(events.empty());
  IDP_ASSERT_OK_ASSIGN(auto leases, store().list_leases());
  EXPECT_TRUE(leases.empty());
}

TEST_P(StoreContract, InsertThenGetRoundTripsEveryField) {
  const Environment want = full_environment();
  IDP_ASSERT_OK_ASSIGN(auto inserted, store().insert_environment(want, {}));
  expect_same_environment(want, inserted);

  IDP_ASSERT_OK_ASSIGN(auto got, store().get_environment(want.name));
  expect_same_environment(want, got);

  IDP_ASSERT_OK_ASSIGN(auto listed, store().list_environments(false));
  ASSERT_EQ(listed.size(), 1u);
  expect_same_environment(want, listed[0]);

  IDP_ASSERT_OK_ASSIGN(auto found, store().find_by_source_key(want.source_key));
  ASSERT_TRUE(found.has_value());
  expect_same_environment(want, *found);
}

TEST_P(StoreContract, AbsentPrNumberStaysAbsentAndZeroStaysZero) {
  Environment none = make_env("no-pr");
  Environment zero = make_env("pr-zero");
  zero.pr_number = 0;
  IDP_ASSERT_OK(store().insert_environment(none, {}));
  IDP_ASSERT_OK(store().insert_environment(zero, {}));

  IDP_ASSERT_OK_ASSIGN(auto got_none, store().get_environment("no-pr"));
  EXPECT_FALSE(got_none.pr_number.has_value());
  EXPECT_TRUE(got_none.warnings.empty());
  expect_same_environment(none, got_none);

  IDP_ASSERT_OK_ASSIGN(auto got_zero, store().get_environment("pr-zero"));
  ASSERT_TRUE(got_zero.pr_number.has_value());
  EXPECT_EQ(*got_zero.pr_number, 0);
}

TEST_P(StoreContract, GetUnknownEnvironmentIsNotFound) {
  IDP_ASSERT_OK(store().insert_environment(make_env("known"), {}));
  auto got = store().get_environment("unknown");
  ASSERT_FALSE(got.has_value());
  EXPECT_EQ(got.error().code, ErrorCode::not_found);
  EXPECT_NE(got.error().message.find("unknown"), std::string::npos) << got.error().message;
}

TEST_P(StoreContract, InsertingALiveNameAgainIsAlreadyExists) {
  for (Phase live : {Phase::pending, Phase::ready, Phase::failed, Phase::destroying}) {
    SCOPED_TRACE(std::string(core::phase_name(live)));
    const std::string name = "env-" + std::string(core::phase_name(live));
    Environment first = make_env(name);
    first.phase = live;
    IDP_ASSERT_OK(store().insert_environment(first, {make_event("", "create")}));

    Environment second = make_env(name);
    second.repo = "/somewhere/else";
    auto r = store().insert_environment(second, {make_event("", "create-again")});
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code, ErrorCode::already_exists);

    IDP_ASSERT_OK_ASSIGN(auto got, store().get_environment(name));
    expect_same_environment(first, got);
    IDP_ASSERT_OK_ASSIGN(auto events, store().list_events(events_of(name)));
    EXPECT_EQ(actions_of(events), std::vector<std::string>{"create"});
  }
}

TEST_P(StoreContract, InsertingALiveSourceKeyAgainIsAlreadyExists) {
  IDP_ASSERT_OK(store().insert_environment(make_env("first", "repo\nmain"), {}));

  auto r = store().insert_environment(make_env("second", "repo\nmain"), {make_event("", "create")});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::already_exists);

  auto second = store().get_environment("second");
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code, ErrorCode::not_found);
  IDP_ASSERT_OK_ASSIGN(auto events, store().list_events(EventQuery{}));
  EXPECT_TRUE(events.empty());
  IDP_ASSERT_OK_ASSIGN(auto found, store().find_by_source_key("repo\nmain"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "first");
}

TEST_P(StoreContract, PinnedEnvironmentsShareTheEmptySourceKey) {
  IDP_ASSERT_OK(store().insert_environment(make_env("pinned-a"), {}));
  IDP_ASSERT_OK(store().insert_environment(make_env("pinned-b"), {}));
  IDP_ASSERT_OK_ASSIGN(auto envs, store().list_environments(false));
  EXPECT_EQ(names_of(envs), (std::vector<std::string>{"pinned-a", "pinned-b"}));
  IDP_ASSERT_OK_ASSIGN(auto found, store().find_by_source_key(""));
  EXPECT_FALSE(found.has_value());
}

TEST_P(StoreContract, DestroyedEnvironmentReleasesItsSourceKey) {
  IDP_ASSERT_OK(store().insert_environment(make_env("old", "repo\nfeature"), {}));
  IDP_ASSERT_OK(set_phase(store(), "old", Phase::destroyed));

  IDP_ASSERT_OK_ASSIGN(auto gone, store().find_by_source_key("repo\nfeature"));
  EXPECT_FALSE(gone.has_value());

  IDP_ASSERT_OK(store().insert_environment(make_env("new", "repo\nfeature"), {}));
  IDP_ASSERT_OK_ASSIGN(auto found, store().find_by_source_key("repo\nfeature"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->name, "new");

  // The destroyed one is still there, as history, with its key.
  IDP_ASSERT_OK_ASSIGN(auto old, store().get_environment("old"));
  EXPECT_EQ(old.phase, Phase::destroyed);
  EXPECT_EQ(old.source_key, "repo\nfeature");

  IDP_ASSERT_OK_ASSIGN(auto unknown, store().find_by_source_key("repo\nnever-seen"));
  EXPECT_FALSE(unknown.has_value());
}

TEST_P(StoreContract, InsertReplacesADestroyedEnvironmentAndKeepsItsEvents) {
  Environment first = make_env("reused", "repo\nb");
  first.pr_number = 5;
  first.warnings = {"old warning"};
  first.outputs_json = R"({"pid":1})";
  IDP_ASSERT_OK(store().insert_environment(first, {make_event("", "create")}));
  IDP_ASSERT_OK(store().update_environment("reused", [](Environment& env, std::vector<Event>& events) {
    env.phase = Phase::destroyed;
    env.destroyed_at = 5000;
    events.push_back(make_event("", "destroy"));
    return Expected<void>();
  }));

  Environment second = make_env("reused", "repo\nb");
  second.repo = "/second/incarnation";
  IDP_ASSERT_OK_ASSIGN(auto inserted, store().insert_environment(second, {make_event("", "recreate")}));
  expect_same_environment(second, inserted);

  // Every field comes from the new environment, none from the destroyed one.
  IDP_ASSERT_OK_ASSIGN(auto got, store().get_environment("reused"));
  expect_same_environment(second, got);
  IDP_ASSERT_OK_ASSIGN(auto all, store().list_environments(true));
  EXPECT_EQ(names_of(all), std::vector<std::string>{"reused"});

  IDP_ASSERT_OK_ASSIGN(auto events, store().list_events(events_of("reused")));
  EXPECT_EQ(actions_of(events), (std::vector<std::string>{"create", "destroy", "recreate"}));
}

TEST_P(StoreContract, InsertRecordsItsEventsInOrderForTheEnvironment) {
  Event implicit = make_event("", "create", 111);
  Event explicit_env = make_event("alpha", "plan", 222);
  IDP_ASSERT_OK(store().insert_environment(make_env("alpha"), {implicit, explicit_env}));

  IDP_ASSERT_OK_ASSIGN(auto events, store().list_events(events_of("alpha")));
  ASSERT_EQ(events.size(), 2u);
  implicit.env = "alpha"; // an event without env is about the environment being written
  expect_same_event(implicit, events[0]);
  expect_same_event(explicit_env, events[1]);
  EXPECT_GT(events[0].id, 0);
  EXPECT_LT(events[0].id, events[1].id);
}

TEST_P(StoreContract, ListIsOrderedByNameAndHidesDestroyedUnlessAsked) {
  for (const char* name : {"charlie", "alpha", "delta", "bravo"}) {
    IDP_ASSERT_OK(store().insert_environment(make_env(name), {}));
  }
  IDP_ASSERT_OK(set_phase(store(), "bravo", Phase::destroyed));

  IDP_ASSERT_OK_ASSIGN(auto live, store().list_environments(false));
  EXPECT_EQ(names_of(live), (std::vector<std::string>{"alpha", "charlie", "delta"}));
  IDP_ASSERT_OK_ASSIGN(auto all, store().list_environments(true));
  EXPECT_EQ(names_of(all), (std::vector<std::string>{"alpha", "bravo", "charlie", "delta"}));
}

TEST_P(StoreContract, UpdateWritesTheMutatedRowAndItsEvents) {
  Environment original = full_environment();
  IDP_ASSERT_OK(store().insert_environment(original, {}));

  Environment want = original;
  want.phase = Phase::ready;
  want.deployed_commit = want.commit;
  want.observed_generation = want.generation;
  want.url = "http://other.localhost/";
  want.pr_number.reset();
  want.warnings = {"new warning"};
  want.attempts = 0;
  want.message = "";
  want.updated_at = 1'800'000'000'000;

  Event phase_event = make_event("", "phase");
  auto updated = store().update_environment(original.name, [&](Environment& env, std::vector<Event>& events) {
    // The mutator sees the stored row.
    expect_same_environment(original, env);
    Environment keep_name = want;
    env = keep_name;
    events.push_back(phase_event);
    return Expected<void>();
  });
  ASSERT_TRUE(updated.has_value()) << updated.error().full_message();
  expect_same_environment(want, *updated);

  IDP_ASSERT_OK_ASSIGN(auto got, store().get_environment(original.name));
  expect_same_environment(want, got);

  IDP_ASSERT_OK_ASSIGN(auto events, store().list_events(events_of(original.name)));
  ASSERT_EQ(events.size(), 1u);
  phase_event.env = original.name;
  expect_same_event(phase_event, events[0]);
}

TEST_P(StoreContract, UpdateOfUnknownEnvironmentIsNotFound) {
  bool called = false;
  auto r = store().update_environment("ghost", [&](Environment&, std::vector<Event>&) {
    called = true;
    return Expected<void>();
  });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::not_found);
  EXPECT_FALSE(called);
}

TEST_P(StoreContract, MutatorErrorRollsBackTheRowAndItsEvents) {
  Environment original = make_env("stable");
  IDP_ASSERT_OK(store().insert_environment(original, {make_event("", "create")}));

  auto r = store().update_environment("stable", [](Environment& env, std::vector<Event>& events) -> Expected<void> {
    env.phase = Phase::failed;
    env.attempts = 99;
    env.message = "half-applied";
    events.push_back(make_event("", "should-not-appear"));
    return make_error(ErrorCode::conflict, "lease held by \"worker-2\"");
  });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::conflict);
  EXPECT_EQ(r.error().message, "lease held by \"worker-2\"");

  IDP_ASSERT_OK_ASSIGN(auto got, store().get_environment("stable"));
  expect_same_environment(original, got);
  IDP_ASSERT_OK_ASSIGN(auto events, store().list_events(EventQuery{}));
  EXPECT_EQ(actions_of(events), std::vector<std::string>{"create"});

  // The store is still usable: the next update goes through.
  IDP_ASSERT_OK(set_phase(store(), "stable", Phase::ready));
  IDP_ASSERT_OK_ASSIGN(auto after, store().get_environment("stable"));
  EXPECT_EQ(after.phase, Phase::ready);
}

TEST_P(StoreContract, MutatorMayNotRenameTheEnvironment) {
  Environment original = make_env("fixed-name");
  IDP_ASSERT_OK(store().insert_environment(original, {}));

  auto r = store().update_environment("fixed-name", [](Environment& env, std::vector<Event>& events) {
    env.name = "other-name";
    env.repo = "/changed";
    events.push_back(make_event("", "rename"));
    return Expected<void>();
  });
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::internal);

  IDP_ASSERT_OK_ASSIGN(auto got, store().get_environment("fixed-name"));
  expect_same_environment(original, got);
  auto renamed = store().get_environment("other-name");
  ASSERT_FALSE(renamed.has_value());
  EXPECT_EQ(renamed.error().code, ErrorCode::not_found);
  IDP_ASSERT_OK_ASSIGN(auto events, store().list_events(EventQuery{}));
  EXPECT_TRUE(events.empty());
}

TEST_P(StoreContract, MutatorTakingALiveSourceKeyIsAlreadyExists) {
  IDP_ASSERT_OK(store().insert_environment(make_env("a", "repo\na"), {}));
  Environment b = make_env("b", "repo\nb");
  IDP_ASSERT_OK(store().insert_environment(b, {}));

  auto take = [](std::string key) {
    return [key](Environment& env, std::vector<Event>&) -> Expected<void> {
      env.source_key = key;
      return {};
    };
  };
  auto r = store().update_environment("b", take("repo\na"));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::already_exists);
  IDP_ASSERT_OK_ASSIGN(auto got_b, store().get_environment("b"));
  expect_same_environment(b, got_b);

  // Keeping its own key is not a conflict with itself.
  IDP_ASSERT_OK(store().update_environment("b", take("repo\nb")));

  // Bringing a destroyed environment back to life while another holds its key is one too.
  IDP_ASSERT_OK(set_phase(store(), "a", Phase::destroyed));
  IDP_ASSERT_OK(store().update_environment("b", take("repo\na")));
  auto revive = set_phase(store(), "a", Phase::pending);
  ASSERT_FALSE(revive.has_value());
  EXPECT_EQ(revive.error().code, ErrorCode::already_exists);
  IDP_ASSERT_OK_ASSIGN(auto got_a, store().get_environment("a"));
  EXPECT_EQ(got_a.phase, Phase::destroyed);
}

TEST_P(StoreContract, ConcurrentUpdatesNeverLoseAnIncrement) {
  IDP_ASSERT_OK(store().insert_environment(make_env("counter"), {}));
  constexpr int k_threads = 8;
  constexpr int k_increments = 100;
  std::atomic<int> failures{0};
  std::latch start(k_threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < k_increments; ++i) {
        auto r = store().update_environment("counter", [](Environment& env, std::vector<Event>& events) {
          // Widens the read-modify-write window, so a store that is not atomic loses updates.
          int seen = env.attempts;
          std::this_thread::yield();
          env.attempts = seen + 1;
          events.push_back(make_event("", "increment"));
          return Expected<void>();
        });
        if (!r) {
          ++failures;
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(failures.load(), 0);
  IDP_ASSERT_OK_ASSIGN(auto got, store().get_environment("counter"));
  EXPECT_EQ(got.attempts, k_threads * k_increments);
  EventQuery q = events_of("counter");
  q.limit = 100000;
  IDP_ASSERT_OK_ASSIGN(auto events, store().list_events(q));
  EXPECT_EQ(events.size(), static_cast<size_t>(k_threads * k_increments));
}

TEST_P(StoreContract, ConcurrentInsertsOfOneNameOrSourceKeyLetExactlyOneWin) {
  constexpr int k_threads = 8;
  std::atomic<int> name_wins{0};
  std::atomic<int> key_wins{0};
  std::atomic<int> other_errors{0};
  std::latch start(k_threads);
  std::vector<std::thread> threads;
  for (int t = 0; t < k_threads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      auto count = [&](const Expected<Environment>& r, std::atomic<int>& wins) {
        if (r) {
          ++wins;
        } else if (r.error().code != ErrorCode::already_exists) {
          ++other_errors;
        }
      };
      count(store().insert_environment(make_env("contested"), {make_event("", "create")}), name_wins);
      count(store().insert_environment(make_env("key-" + std::to_string(t), "repo\ncontested"), {}), key_wins);
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(name_wins.load(), 1);
  EXPECT_EQ(key_wins.load(), 1);
  EXPECT_EQ(other_errors.load(), 0);
  IDP_ASSERT_OK_ASSIGN(auto events, store().list_events(events_of("contested")));
  EXPECT_EQ(events.size(), 1u);
  IDP_ASSERT_OK_ASSIGN(auto envs, store().list_environments(true));
  EXPECT_EQ(envs.size(), 2u);
}

// --- Events ---

TEST_P(StoreContract, EventsAreListedOldestFirstWithIncreasingIds) {
  std::vector<Event> appended;
  for (int i = 0; i < 5; ++i) {
    Event ev = make_event("env-" + std::to_string(i % 2), "action-" + std::to_string(i), 100 + i);
    IDP_ASSERT_OK_ASSIGN(ev.id, store().append_event(ev));
    appended.push_back(ev);
  }
  for (size_t i = 1; i < appended.size(); ++i) {
    EXPECT_GT(appended[i].id, appended[i - 1].id);
  }
  IDP_ASSERT_OK_ASSIGN(auto events, store().list_events(EventQuery{}));
  ASSERT_EQ(events.size(), appended.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].id, appended[i].id);
    expect_same_event(appended[i], events[i]);
  }
}

TEST_P(StoreContract, EventQueryFiltersByEnvironmentAfterIdAndLimit) {
  std::vector<int64_t> ids; // events alternate between "a" (even) and "b" (odd)
  for (int i = 0; i < 10; ++i) {
    IDP_ASSERT_OK_ASSIGN(int64_t id, store().append_event(make_event(i % 2 == 0 ? "a" : "b", std::to_string(i))));
    ids.push_back(id);
  }

  IDP_ASSERT_OK_ASSIGN(auto of_a, store().list_events(events_of("a")));
  EXPECT_EQ(ids_of(of_a), (std::vector<int64_t>{ids[0], ids[2], ids[4], ids[6], ids[8]}));

  EventQuery after;
  after.after_id = ids[3];
  IDP_ASSERT_OK_ASSIGN(auto tail, store().list_events(after));
  EXPECT_EQ(ids_of(tail), (std::vector<int64_t>(ids.begin() + 4, ids.end())));

  EventQuery combined = events_of("b");
  combined.after_id = ids[4];
  combined.limit = 2;
  IDP_ASSERT_OK_ASSIGN(auto page, store().list_events(combined));
  EXPECT_EQ(ids_of(page), (std::vector<int64_t>{ids[5], ids[7]}));

  EventQuery limited;
  limited.limit = 3;
  IDP_ASSERT_OK_ASSIGN(auto first3, store().list_events(limited));
  EXPECT_EQ(ids_of(first3), (std::vector<int64_t>{ids[0], ids[1], ids[2]}));

  limited.limit = 0;
  IDP_ASSERT_OK_ASSIGN(auto none, store().list_events(limited));
  EXPECT_TRUE(none.empty());

  EventQuery past_end;
  past_end.after_id = ids.back();
  IDP_ASSERT_OK_ASSIGN(auto nothing_new, store().list_events(past_end));
  EXPECT_TRUE(nothing_new.empty());

  IDP_ASSERT_OK_ASSIGN(auto of_unknown, store().list_events(events_of("c")));
  EXPECT_TRUE(of_unknown.empty());

  EventQuery newest = events_of("a");
  newest.newest_first = true;
  newest.limit = 2;
  IDP_ASSERT_OK_ASSIGN(auto latest_a, store().list_events(newest));
  EXPECT_EQ(ids_of(latest_a), (std::vector<int64_t>{ids[8], ids[6]}));
  EventQuery newest_all;
  newest_all.newest_first = true;
  newest_all.limit = 1;
  newest_all.after_id = ids[2];
  IDP_ASSERT_OK_ASSIGN(auto last, store().list_events(newest_all));
  EXPECT_EQ(ids_of(last), (std::vector<int64_t>{ids[9]}));
}

// --- Revisions ---

TEST_P(StoreContract, RevisionRoundTripsAndUpdates) {
  IDP_ASSERT_OK(store().insert_environment(make_env("web"), {}));
  Revision rev;
  rev.env = "web";
  rev.commit = "abc123";
  rev.generation = 3;
  rev.status = RevisionStatus::building;
  rev.message = "npm ci";
  rev.created_at = 1'700'000'000'000;
  IDP_ASSERT_OK_ASSIGN(rev.id, store().insert_revision(rev));
  EXPECT_GT(rev.id, 0);

  IDP_ASSERT_OK_ASSIGN(auto got, store().get_revision(rev.id));
  expect_same_revision(rev, got);

  rev.status = RevisionStatus::failed;
  rev.message = "exited with status 1";
  rev.log_tail = "Error: Cannot find module 'exprëss'\n    at main.js:1";
  rev.finished_at = 1'700'000'060'000;
  IDP_ASSERT_OK(store().update_revision(rev));
  IDP_ASSERT_OK_ASSIGN(auto updated, store().get_revision(rev.id));
  expect_same_revision(rev, updated);

  Revision unknown = rev;
  unknown.id = rev.id + 1000;
  auto u = store().update_revision(unknown);
  ASSERT_FALSE(u.has_value());
  EXPECT_EQ(u.error().code, ErrorCode::not_found);
  auto g = store().get_revision(unknown.id);
  ASSERT_FALSE(g.has_value());
  EXPECT_EQ(g.error().code, ErrorCode::not_found);
}

TEST_P(StoreContract, RevisionsAreListedNewestFirstPerEnvironment) {
  IDP_ASSERT_OK(store().insert_environment(make_env("a"), {}));
  IDP_ASSERT_OK(store().insert_environment(make_env("b"), {}));
  auto add = [&](const std::string& env, const std::string& commit) -> Expected<int64_t> {
    Revision r;
    r.env = env;
    r.commit = commit;
    r.created_at = 1000; // equal timestamps: order must come from insertion
    return store().insert_revision(r);
  };
  IDP_ASSERT_OK(add("a", "a1"));
  IDP_ASSERT_OK(add("b", "b1"));
  IDP_ASSERT_OK(add("a", "a2"));
  IDP_ASSERT_OK(add("a", "a3"));

  auto commits = [](const std::vector<Revision>& revs) {
    std::vector<std::string> out;
    for (const auto& r : revs) {
      out.push_back(r.commit);
    }
    return out;
  };
  IDP_ASSERT_OK_ASSIGN(auto of_a, store().list_revisions("a", 10));
  EXPECT_EQ(commits(of_a), (std::vector<std::string>{"a3", "a2", "a1"}));
  IDP_ASSERT_OK_ASSIGN(auto newest_two, store().list_revisions("a", 2));
  EXPECT_EQ(commits(newest_two), (std::vector<std::string>{"a3", "a2"}));
  IDP_ASSERT_OK_ASSIGN(auto of_b, store().list_revisions("b", 10));
  EXPECT_EQ(commits(of_b), std::vector<std::string>{"b1"});
  IDP_ASSERT_OK_ASSIGN(auto of_c, store().list_revisions("c", 10));
  EXPECT_TRUE(of_c.empty());
}

// Issue 16: users see revisions 1, 2, 3 of each environment, not a global counter.
TEST_P(StoreContract, RevisionsAreNumberedPerEnvironment) {
  IDP_ASSERT_OK(store().insert_environment(make_env("a"), {}));
  IDP_ASSERT_OK(store().insert_environment(make_env("b"), {}));
  std::vector<int64_t> ids;
  for (const std::string env : {"a", "b", "a", "a", "b"}) {
    Revision r;
    r.env = env;
    r.commit = env + std::to_string(ids.size());
    r.number = 77; // assigned by the store, whatever the caller says
    IDP_ASSERT_OK_ASSIGN(auto id, store().insert_revision(r));
    ids.push_back(id);
  }
  auto numbers = [&](const std::string& env) {
    std::vector<int64_t> out;
    auto revs = store().list_revisions(env, 10);
    EXPECT_TRUE(revs.has_value());
    for (const auto& r : revs.value_or(std::vector<Revision>{})) {
      out.push_back(r.number);
    }
    return out;
  };
  EXPECT_EQ(numbers("a"), (std::vector<int64_t>{3, 2, 1}));
  EXPECT_EQ(numbers("b"), (std::vector<int64_t>{2, 1}));
  IDP_ASSERT_OK_ASSIGN(auto third_of_a, store().get_revision(ids[3]));
  EXPECT_EQ(third_of_a.number, 3);
  // An update keeps the number.
  third_of_a.number = 99;
  third_of_a.status = RevisionStatus::serving;
  IDP_ASSERT_OK(store().update_revision(third_of_a));
  IDP_ASSERT_OK_ASSIGN(auto updated, store().get_revision(ids[3]));
  EXPECT_EQ(updated.number, 3);
  EXPECT_EQ(core::revision_status_name(updated.status), "serving");
}

TEST_P(StoreContract, RevisionOfUnknownEnvironmentIsNotFound) {
  Revision r;
  r.env = "nowhere";
  r.commit = "abc";
  auto id = store().insert_revision(r);
  ASSERT_FALSE(id.has_value());
  EXPECT_EQ(id.error().code, ErrorCode::not_found);
}

// --- Leases ---

TEST_P(StoreContract, LeaseIsExclusiveUntilItExpires) {
  IDP_ASSERT_OK_ASSIGN(bool first, store().try_acquire_lease("env", "worker-1", 1000, 500));
  EXPECT_TRUE(first);
  IDP_ASSERT_OK_ASSIGN(auto held, store().get_lease("env"));
  ASSERT_TRUE(held.has_value());
  EXPECT_EQ(held->env, "env");
  EXPECT_EQ(held->owner, "worker-1");
  EXPECT_EQ(held->expires_at, 1500);

  IDP_ASSERT_OK_ASSIGN(bool contended, store().try_acquire_lease("env", "worker-2", 1200, 500));
  EXPECT_FALSE(contended);
  IDP_ASSERT_OK_ASSIGN(bool just_before, store().try_acquire_lease("env", "worker-2", 1499, 500));
  EXPECT_FALSE(just_before);
  IDP_ASSERT_OK_ASSIGN(auto still, store().get_lease("env"));
  ASSERT_TRUE(still.has_value());
  EXPECT_EQ(still->owner, "worker-1");
  EXPECT_EQ(still->expires_at, 1500);

  // Expired at exactly expires_at.
  IDP_ASSERT_OK_ASSIGN(bool taken_over, store().try_acquire_lease("env", "worker-2", 1500, 500));
  EXPECT_TRUE(taken_over);
  IDP_ASSERT_OK_ASSIGN(auto now_held, store().get_lease("env"));
  ASSERT_TRUE(now_held.has_value());
  EXPECT_EQ(now_held->owner, "worker-2");
  EXPECT_EQ(now_held->expires_at, 2000);

  // Leases are per environment.
  IDP_ASSERT_OK_ASSIGN(bool other_env, store().try_acquire_lease("other", "worker-1", 1500, 500));
  EXPECT_TRUE(other_env);
}

TEST_P(StoreContract, HolderRenewsItsLease) {
  IDP_ASSERT_OK_ASSIGN(bool first, store().try_acquire_lease("env", "worker-1", 1000, 500));
  ASSERT_TRUE(first);
  IDP_ASSERT_OK_ASSIGN(bool renewed, store().try_acquire_lease("env", "worker-1", 1400, 500));
  EXPECT_TRUE(renewed);
  IDP_ASSERT_OK_ASSIGN(auto lease, store().get_lease("env"));
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->expires_at, 1900);
  // Without the renewal this would have succeeded (1600 > 1500).
  IDP_ASSERT_OK_ASSIGN(bool contended, store().try_acquire_lease("env", "worker-2", 1600, 500));
  EXPECT_FALSE(contended);
}

TEST_P(StoreContract, RenewExtendsOnlyALeaseTheOwnerStillHolds) {
  IDP_ASSERT_OK_ASSIGN(bool first, store().try_acquire_lease("env", "worker-1", 1000, 500));
  ASSERT_TRUE(first);
  IDP_ASSERT_OK_ASSIGN(bool renewed, store().renew_lease("env", "worker-1", 1400, 500));
  EXPECT_TRUE(renewed);
  IDP_ASSERT_OK_ASSIGN(auto lease, store().get_lease("env"));
  ASSERT_TRUE(lease.has_value());
  EXPECT_EQ(lease->expires_at, 1900);

  // Someone else's lease is neither renewed nor taken over.
  IDP_ASSERT_OK_ASSIGN(bool by_other, store().renew_lease("env", "worker-2", 1500, 500));
  EXPECT_FALSE(by_other);
  IDP_ASSERT_OK_ASSIGN(auto unchanged, store().get_lease("env"));
  ASSERT_TRUE(unchanged.has_value());
  EXPECT_EQ(unchanged->owner, "worker-1");
  EXPECT_EQ(unchanged->expires_at, 1900);

  // Past its expiry but not taken over: still the owner's, so it renews.
  IDP_ASSERT_OK_ASSIGN(bool late, store().renew_lease("env", "worker-1", 2000, 500));
  EXPECT_TRUE(late);
  IDP_ASSERT_OK_ASSIGN(auto late_lease, store().get_lease("env"));
  ASSERT_TRUE(late_lease.has_value());
  EXPECT_EQ(late_lease->expires_at, 2500);
}

TEST_P(StoreContract, RenewNeverRecreatesAReleasedBrokenOrTakenLease) {
  IDP_ASSERT_OK_ASSIGN(bool first, store().try_acquire_lease("env", "worker-1", 1000, 500));
  ASSERT_TRUE(first);
  IDP_ASSERT_OK(store().release_lease("env", "worker-1"));
  IDP_ASSERT_OK_ASSIGN(bool after_release, store().renew_lease("env", "worker-1", 1100, 500));
  EXPECT_FALSE(after_release);
  IDP_ASSERT_OK_ASSIGN(auto released, store().get_lease("env"));
  EXPECT_FALSE(released.has_value()) << "a renewal after the release re-created the lease";

  IDP_ASSERT_OK_ASSIGN(bool again, store().try_acquire_lease("env", "worker-1", 1200, 500));
  ASSERT_TRUE(again);
  IDP_ASSERT_OK(store().break_lease("env"));
  IDP_ASSERT_OK_ASSIGN(bool after_break, store().renew_lease("env", "worker-1", 1300, 500));
  EXPECT_FALSE(after_break);
  IDP_ASSERT_OK_ASSIGN(auto broken, store().get_lease("env"));
  EXPECT_FALSE(broken.has_value());

  // Expired and taken over by another worker: lost for good.
  IDP_ASSERT_OK_ASSIGN(bool mine, store().try_acquire_lease("env", "worker-1", 2000, 500));
  ASSERT_TRUE(mine);
  IDP_ASSERT_OK_ASSIGN(bool taken, store().try_acquire_lease("env", "worker-2", 2500, 500));
  ASSERT_TRUE(taken);
  IDP_ASSERT_OK_ASSIGN(bool after_takeover, store().renew_lease("env", "worker-1", 2600, 500));
  EXPECT_FALSE(after_takeover);
  IDP_ASSERT_OK_ASSIGN(auto theirs, store().get_lease("env"));
  ASSERT_TRUE(theirs.has_value());
  EXPECT_EQ(theirs->owner, "worker-2");
  EXPECT_EQ(theirs->expires_at, 3000);

  IDP_ASSERT_OK_ASSIGN(bool never, store().renew_lease("never-leased", "worker-1", 1000, 500));
  EXPECT_FALSE(never);
  IDP_ASSERT_OK_ASSIGN(auto none, store().get_lease("never-leased"));
  EXPECT_FALSE(none.has_value());
}

TEST_P(StoreContract, ReleaseByHolderFreesTheLeaseAndByOthersDoesNothing) {
  IDP_ASSERT_OK_ASSIGN(bool first, store().try_acquire_lease("env", "worker-1", 1000, 500));
  ASSERT_TRUE(first);

  IDP_ASSERT_OK(store().release_lease("env", "worker-2"));
  IDP_ASSERT_OK_ASSIGN(auto still, store().get_lease("env"));
  ASSERT_TRUE(still.has_value());
  EXPECT_EQ(still->owner, "worker-1");
  IDP_ASSERT_OK_ASSIGN(bool contended, store().try_acquire_lease("env", "worker-2", 1100, 500));
  EXPECT_FALSE(contended);

  IDP_ASSERT_OK(store().release_lease("env", "worker-1"));
  IDP_ASSERT_OK_ASSIGN(auto released, store().get_lease("env"));
  EXPECT_FALSE(released.has_value());
  IDP_ASSERT_OK_ASSIGN(bool free_now, store().try_acquire_lease("env", "worker-2", 1100, 500));
  EXPECT_TRUE(free_now);

  IDP_ASSERT_OK(store().release_lease("never-leased", "worker-1"));
}

TEST_P(StoreContract, BreakRemovesALeaseWhoeverHoldsIt) {
  IDP_ASSERT_OK_ASSIGN(bool first, store().try_acquire_lease("stuck", "dead-worker", 1000, 1'000'000));
  ASSERT_TRUE(first);
  IDP_ASSERT_OK(store().break_lease("stuck"));
  IDP_ASSERT_OK_ASSIGN(auto lease, store().get_lease("stuck"));
  EXPECT_FALSE(lease.has_value());
  IDP_ASSERT_OK_ASSIGN(bool taken, store().try_acquire_lease("stuck", "worker-2", 1001, 500));
  EXPECT_TRUE(taken);

  IDP_ASSERT_OK(store().break_lease("never-leased"));
}

TEST_P(StoreContract, LeasesAreListed) {
  IDP_ASSERT_OK(store().try_acquire_lease("c", "worker-3", 1000, 300));
  IDP_ASSERT_OK(store().try_acquire_lease("a", "worker-1", 1000, 100));
  IDP_ASSERT_OK(store().try_acquire_lease("b", "worker-2", 1000, 200));
  IDP_ASSERT_OK(store().release_lease("b", "worker-2"));

  IDP_ASSERT_OK_ASSIGN(auto leases, store().list_leases());
  std::sort(leases.begin(), leases.end(), [](const Lease& x, const Lease& y) { return x.env < y.env; });
  ASSERT_EQ(leases.size(), 2u);
  EXPECT_EQ(leases[0].env, "a");
  EXPECT_EQ(leases[0].owner, "worker-1");
  EXPECT_EQ(leases[0].expires_at, 1100);
  EXPECT_EQ(leases[1].env, "c");
  EXPECT_EQ(leases[1].owner, "worker-3");
  EXPECT_EQ(leases[1].expires_at, 1300);
}

// --- Retention ---

TEST_P(StoreContract, PruneEventsForgetsOnlyOlderEvents) {
  IDP_ASSERT_OK(store().insert_environment(make_env("a"), {make_event("a", "create", 100)}));
  IDP_ASSERT_OK(store().append_event(make_event("a", "extend", 200)));
  IDP_ASSERT_OK(store().append_event(make_event("gone", "destroy", 150)));
  IDP_ASSERT_OK(store().append_event(make_event("a", "deploy", 300)));
  IDP_ASSERT_OK_ASSIGN(size_t pruned, store().prune_events(200));
  EXPECT_EQ(pruned, 2u);
  IDP_ASSERT_OK_ASSIGN(auto left, store().list_events(EventQuery{}));
  EXPECT_EQ(actions_of(left), (std::vector<std::string>{"extend", "deploy"})) << "at == before is kept";
  IDP_ASSERT_OK_ASSIGN(size_t again, store().prune_events(200));
  EXPECT_EQ(again, 0u);
  // Ids are not reused after a prune (SSE clients resume with after_id).
  IDP_ASSERT_OK_ASSIGN(int64_t next, store().append_event(make_event("a", "later", 400)));
  EXPECT_GT(next, left.back().id);
}

TEST_P(StoreContract, PurgeRemovesOnlyLongDestroyedEnvironmentsWithTheirRevisionsAndJobRuns) {
  for (const char* name : {"old", "recent", "live"}) {
    IDP_ASSERT_OK(store().insert_environment(make_env(name), {make_event(name, "create")}));
    Revision rev;
    rev.env = name;
    rev.commit = "c0ffee";
    IDP_ASSERT_OK(store().insert_revision(rev));
    JobRun run;
    run.env = name;
    run.status = "succeeded";
    IDP_ASSERT_OK(store().insert_job_run(run));
  }
  auto destroy_at = [&](const std::string& name, util::Millis at) {
    return store().update_environment(name, [at](Environment& env, std::vector<Event>&) -> Expected<void> {
      env.phase = Phase::destroyed;
      env.destroyed_at = at;
      return {};
    });
  };
  IDP_ASSERT_OK(destroy_at("old", 1000));
  IDP_ASSERT_OK(destroy_at("recent", 5000));
  IDP_ASSERT_OK_ASSIGN(size_t purged, store().purge_destroyed_environments(5000));
  EXPECT_EQ(purged, 1u);
  auto gone = store().get_environment("old");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::not_found);
  IDP_ASSERT_OK_ASSIGN(auto old_revs, store().list_revisions("old", 10));
  EXPECT_TRUE(old_revs.empty());
  IDP_ASSERT_OK_ASSIGN(auto old_runs, store().list_job_runs("old", 10));
  EXPECT_TRUE(old_runs.empty());
  IDP_ASSERT_OK_ASSIGN(auto old_events, store().list_events(events_of("old")));
  EXPECT_EQ(old_events.size(), 1u) << "events follow their own retention";
  IDP_ASSERT_OK_ASSIGN(auto all, store().list_environments(true));
  EXPECT_EQ(names_of(all), (std::vector<std::string>{"live", "recent"}));
  for (const char* kept : {"live", "recent"}) {
    IDP_ASSERT_OK_ASSIGN(auto revs, store().list_revisions(kept, 10));
    EXPECT_EQ(revs.size(), 1u) << kept;
    IDP_ASSERT_OK_ASSIGN(auto runs, store().list_job_runs(kept, 10));
    EXPECT_EQ(runs.size(), 1u) << kept;
  }
  // The name is free for a new environment.
  IDP_ASSERT_OK(store().insert_environment(make_env("old"), {}));
  IDP_ASSERT_OK_ASSIGN(size_t none, store().purge_destroyed_environments(1'000'000));
  EXPECT_EQ(none, 1u) << "only \"recent\" was still destroyed";
}

// --- Deliveries ---

TEST_P(StoreContract, DeliveryIsRecordedOnce) {
  IDP_ASSERT_OK_ASSIGN(bool first, store().record_delivery("d-1", 100));
  EXPECT_TRUE(first);
  IDP_ASSERT_OK_ASSIGN(bool again, store().record_delivery("d-1", 200));
  EXPECT_FALSE(again);
  IDP_ASSERT_OK_ASSIGN(bool other, store().record_delivery("d-2", 200));
  EXPECT_TRUE(other);
}

TEST_P(StoreContract, PruneForgetsOnlyOlderDeliveries) {
  IDP_ASSERT_OK(store().record_delivery("old", 100));
  IDP_ASSERT_OK(store().record_delivery("edge", 200));
  IDP_ASSERT_OK(store().record_delivery("new", 300));
  IDP_ASSERT_OK(store().prune_deliveries(200));

  IDP_ASSERT_OK_ASSIGN(bool old_again, store().record_delivery("old", 400));
  EXPECT_TRUE(old_again) << "pruned deliveries are forgotten";
  IDP_ASSERT_OK_ASSIGN(bool edge_again, store().record_delivery("edge", 400));
  EXPECT_FALSE(edge_again) << "a delivery at exactly `before` is not older";
  IDP_ASSERT_OK_ASSIGN(bool new_again, store().record_delivery("new", 400));
  EXPECT_FALSE(new_again);
}

// --- Job runs ---

TEST_P(StoreContract, JobRunsRoundTripUpdateAndListNewestFirst) {
  IDP_ASSERT_OK(store().insert_environment(make_env("worker"), {}));
  IDP_ASSERT_OK(store().insert_environment(make_env("idle"), {}));
  JobRun first;
  first.env = "worker";
  first.scheduled_at = 60'000;
  first.started_at = 60'010;
  first.status = "running";
  IDP_ASSERT_OK_ASSIGN(first.id, store().insert_job_run(first));
  JobRun second = first;
  second.scheduled_at = 120'000;
  second.started_at = 120'005;
  IDP_ASSERT_OK_ASSIGN(second.id, store().insert_job_run(second));
  EXPECT_GT(first.id, 0);
  EXPECT_NE(first.id, second.id);

  first.finished_at = 61'000;
  first.exit_code = 3;
  first.status = "failed";
  first.message = "exit status 3: «boom»";
  IDP_ASSERT_OK(store().update_job_run(first));

  IDP_ASSERT_OK_ASSIGN(auto runs, store().list_job_runs("worker", 10));
  ASSERT_EQ(runs.size(), 2u);
  expect_same_job_run(second, runs[0]);
  expect_same_job_run(first, runs[1]);
  IDP_ASSERT_OK_ASSIGN(auto newest, store().list_job_runs("worker", 1));
  ASSERT_EQ(newest.size(), 1u);
  EXPECT_EQ(newest[0].id, second.id);
  IDP_ASSERT_OK_ASSIGN(auto none, store().list_job_runs("idle", 10));
  EXPECT_TRUE(none.empty());

  JobRun unknown = first;
  unknown.id = second.id + 1000;
  auto u = store().update_job_run(unknown);
  ASSERT_FALSE(u.has_value());
  EXPECT_EQ(u.error().code, ErrorCode::not_found);

  JobRun orphan = first;
  orphan.env = "nowhere";
  auto o = store().insert_job_run(orphan);
  ASSERT_FALSE(o.has_value());
  EXPECT_EQ(o.error().code, ErrorCode::not_found);
}

// --- Settings ---

TEST_P(StoreContract, SettingsAreSetOverwrittenAndRead) {
  IDP_ASSERT_OK_ASSIGN(auto missing, store().get_setting("router.port"));
  EXPECT_FALSE(missing.has_value());

  IDP_ASSERT_OK(store().set_setting("router.port", "8080"));
  IDP_ASSERT_OK_ASSIGN(auto set, store().get_setting("router.port"));
  EXPECT_EQ(set, std::optional<std::string>("8080"));

  IDP_ASSERT_OK(store().set_setting("router.port", "9090"));
  IDP_ASSERT_OK_ASSIGN(auto overwritten, store().get_setting("router.port"));
  EXPECT_EQ(overwritten, std::optional<std::string>("9090"));

  IDP_ASSERT_OK(store().set_setting("empty", ""));
  IDP_ASSERT_OK_ASSIGN(auto empty, store().get_setting("empty"));
  EXPECT_EQ(empty, std::optional<std::string>(""));

  IDP_ASSERT_OK(store().set_setting("clé", "välue\n2"));
  IDP_ASSERT_OK_ASSIGN(auto unicode, store().get_setting("clé"));
  EXPECT_EQ(unicode, std::optional<std::string>("välue\n2"));
}

// --- Delivery keys (webhook dedup by id and by body hash) ---

TEST_P(StoreContract, DeliveryKeysAreLookedUpAndInsertedInBatches) {
  IDP_ASSERT_OK_ASSIGN(bool none, store().any_delivery_recorded({"id-1", "body:aaa"}));
  EXPECT_FALSE(none);
  IDP_ASSERT_OK(store().insert_delivery_keys({{"id-1", 1000}, {"body:aaa", 1000}, {"id-2", 2000}}));
  IDP_ASSERT_OK_ASSIGN(bool by_body, store().any_delivery_recorded({"id-9", "body:aaa"}));
  EXPECT_TRUE(by_body) << "one recorded key is enough";
  IDP_ASSERT_OK_ASSIGN(bool by_id, store().any_delivery_recorded({"id-2"}));
  EXPECT_TRUE(by_id);
  IDP_ASSERT_OK_ASSIGN(bool other, store().any_delivery_recorded({"id-3", "body:bbb"}));
  EXPECT_FALSE(other);
  IDP_ASSERT_OK_ASSIGN(bool empty, store().any_delivery_recorded({}));
  EXPECT_FALSE(empty);
  // A key recorded already keeps its time: inserting it again (at 9000) does not save it
  // from a prune of everything before 1500.
  IDP_ASSERT_OK(store().insert_delivery_keys({{"id-1", 9000}, {"body:ccc", 9000}}));
  IDP_ASSERT_OK(store().prune_deliveries(1500));
  IDP_ASSERT_OK_ASSIGN(bool pruned, store().any_delivery_recorded({"id-1", "body:aaa"}));
  EXPECT_FALSE(pruned) << "pruned keys are forgotten";
  IDP_ASSERT_OK_ASSIGN(bool kept, store().any_delivery_recorded({"id-2"}));
  EXPECT_TRUE(kept);
  IDP_ASSERT_OK_ASSIGN(bool later, store().any_delivery_recorded({"body:ccc"}));
  EXPECT_TRUE(later);
  // record_delivery and the batches share one memory.
  IDP_ASSERT_OK_ASSIGN(bool single, store().record_delivery("body:ccc", 9000));
  EXPECT_FALSE(single);
  IDP_ASSERT_OK(store().insert_delivery_keys({}));
}

// The webhook receiver's writer inserts while requests look keys up, on other threads.
TEST_P(StoreContract, DeliveryKeysInsertedOnOneThreadAreSeenOnOthers) {
  constexpr int k_batches = 40;
  std::atomic<int> errors{0};
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int b = 0; b < k_batches; ++b) {
      std::vector<store::DeliveryKey> batch;
      for (int i = 0; i < 5; ++i) {
        batch.push_back({"key-" + std::to_string(b) + "-" + std::to_string(i), 1000 + b});
      }
      if (!store().insert_delivery_keys(batch)) {
        errors += 1;
      }
    }
    done = true;
  });
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!done) {
        if (!store().any_delivery_recorded({"key-0-0", "absent"})) {
          errors += 1;
        }
      }
    });
  }
  writer.join();
  for (auto& th : readers) {
    th.join();
  }
  EXPECT_EQ(errors.load(), 0);
  for (int b = 0; b < k_batches; ++b) {
    IDP_ASSERT_OK_ASSIGN(bool seen, store().any_delivery_recorded({"key-" + std::to_string(b) + "-4"}));
    EXPECT_TRUE(seen) << "batch " << b;
  }
}

// --- API tokens ---

namespace {
store::ApiToken api_token(const std::string& id, const std::string& hash, util::Millis created_at) {
  store::ApiToken t;
  t.id = id;
  t.hash = hash;
  t.name = "laptop-" + id;
  t.role = "developer";
  t.owner = "alice";
  t.created_by = "admin";
  t.created_at = created_at;
  t.expires_at = created_at + 3600'000;
  return t;
}
} // namespace

// Share links of protected previews (issue 15): stored, listed per environment, revoked
// once (the first time kept), unknown ids not found.
TEST_P(StoreContract, PreviewGrantsRoundTripAndRevokeOnce) {
  store::PreviewGrant a{"shr_a", "web", "alice", 1000, 1000 + 3600'000, 0};
  store::PreviewGrant b{"shr_b", "other", "bob", 2000, 2000 + 60'000, 0};
  IDP_ASSERT_OK(store().insert_preview_grant(b));
  IDP_ASSERT_OK(store().insert_preview_grant(a));
  auto dup = store().insert_preview_grant(a);
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, ErrorCode::already_exists);
  IDP_ASSERT_OK_ASSIGN(auto found, store().find_preview_grant("shr_a"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->env, "web");
  EXPECT_EQ(found->created_by, "alice");
  EXPECT_EQ(found->created_at, 1000);
  EXPECT_EQ(found->expires_at, 1000 + 3600'000);
  EXPECT_EQ(found->revoked_at, 0);
  IDP_ASSERT_OK_ASSIGN(auto web, store().list_preview_grants("web"));
  ASSERT_EQ(web.size(), 1u);
  EXPECT_EQ(web[0].id, "shr_a");
  IDP_ASSERT_OK_ASSIGN(auto all, store().list_preview_grants(""));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, "shr_a") << "oldest first";
  IDP_ASSERT_OK_ASSIGN(auto revoked, store().revoke_preview_grant("shr_a", 5000));
  EXPECT_EQ(revoked.revoked_at, 5000);
  IDP_ASSERT_OK_ASSIGN(auto again, store().revoke_preview_grant("shr_a", 9000));
  EXPECT_EQ(again.revoked_at, 5000);
  auto unknown = store().revoke_preview_grant("shr_nope", 5000);
  ASSERT_FALSE(unknown.has_value());
  EXPECT_EQ(unknown.error().code, ErrorCode::not_found);
  IDP_ASSERT_OK_ASSIGN(auto none, store().find_preview_grant("shr_nope"));
  EXPECT_FALSE(none.has_value());
}

TEST_P(StoreContract, ApiTokensRoundTripAndAreFoundByHashOnly) {
  IDP_ASSERT_OK(store().insert_api_token(api_token("tok_b", "hash-b", 2000)));
  IDP_ASSERT_OK(store().insert_api_token(api_token("tok_a", "hash-a", 1000)));
  IDP_ASSERT_OK_ASSIGN(auto found, store().find_api_token("hash-b"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->id, "tok_b");
  EXPECT_EQ(found->name, "laptop-tok_b");
  EXPECT_EQ(found->role, "developer");
  EXPECT_EQ(found->owner, "alice");
  EXPECT_EQ(found->created_by, "admin");
  EXPECT_EQ(found->created_at, 2000);
  EXPECT_EQ(found->expires_at, 2000 + 3600'000);
  EXPECT_EQ(found->last_used_at, 0);
  EXPECT_EQ(found->revoked_at, 0);
  IDP_ASSERT_OK_ASSIGN(auto by_id, store().find_api_token("tok_b"));
  EXPECT_FALSE(by_id.has_value()) << "tokens are looked up by the hash of their secret, nothing else";
  IDP_ASSERT_OK_ASSIGN(auto all, store().list_api_tokens());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].id, "tok_a") << "oldest first";
  EXPECT_EQ(all[1].id, "tok_b");
}

TEST_P(StoreContract, ApiTokenIdAndHashAreUnique) {
  IDP_ASSERT_OK(store().insert_api_token(api_token("tok_a", "hash-a", 1000)));
  auto same_id = store().insert_api_token(api_token("tok_a", "hash-other", 1000));
  ASSERT_FALSE(same_id.has_value());
  EXPECT_EQ(same_id.error().code, ErrorCode::already_exists);
  auto same_hash = store().insert_api_token(api_token("tok_other", "hash-a", 1000));
  ASSERT_FALSE(same_hash.has_value());
  EXPECT_EQ(same_hash.error().code, ErrorCode::already_exists);
  IDP_ASSERT_OK_ASSIGN(auto all, store().list_api_tokens());
  EXPECT_EQ(all.size(), 1u);
}

TEST_P(StoreContract, ApiTokenRevokeKeepsTheFirstTimeAndTouchRecordsUse) {
  IDP_ASSERT_OK(store().insert_api_token(api_token("tok_a", "hash-a", 1000)));
  IDP_ASSERT_OK_ASSIGN(auto revoked, store().revoke_api_token("tok_a", 5000));
  EXPECT_EQ(revoked.revoked_at, 5000);
  IDP_ASSERT_OK_ASSIGN(auto again, store().revoke_api_token("tok_a", 9000));
  EXPECT_EQ(again.revoked_at, 5000);
  auto missing = store().revoke_api_token("tok_nope", 5000);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::not_found);

  IDP_ASSERT_OK(store().touch_api_token("tok_a", 7000));
  IDP_ASSERT_OK(store().touch_api_token("tok_nope", 7000));
  IDP_ASSERT_OK_ASSIGN(auto found, store().find_api_token("hash-a"));
  ASSERT_TRUE(found.has_value());
  EXPECT_EQ(found->last_used_at, 7000);
  EXPECT_EQ(found->revoked_at, 5000);
}

// --- Server secrets (issue 9) ---

store::StoredSecret stored_secret(const std::string& scope, const std::string& name, const std::string& sealed,
                                  util::Millis at) {
  store::StoredSecret s;
  s.scope = scope;
  s.name = name;
  s.sealed = sealed;
  s.updated_by = "алиса \"admin\"";
  s.updated_at = at;
  return s;
}

TEST_P(StoreContract, SecretsRoundTripOrderedByNameThenScope) {
  IDP_ASSERT_OK_ASSIGN(auto none, store().list_secrets());
  EXPECT_TRUE(none.empty());
  IDP_ASSERT_OK(store().put_secret(stored_secret("acme/shop", "db-password", "c2VhbGVk", 5'000'000'000'000)));
  IDP_ASSERT_OK(store().put_secret(stored_secret("", "db-password", "Z2xvYmFs", 2000)));
  IDP_ASSERT_OK(store().put_secret(stored_secret("", "api-key", "YXBp", 3000)));
  IDP_ASSERT_OK_ASSIGN(auto all, store().list_secrets());
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].name, "api-key");
  EXPECT_EQ(all[1].name, "db-password");
  EXPECT_EQ(all[1].scope, "");
  EXPECT_EQ(all[2].scope, "acme/shop");
  EXPECT_EQ(all[2].sealed, "c2VhbGVk");
  EXPECT_EQ(all[2].updated_by, "алиса \"admin\"");
  EXPECT_EQ(all[2].updated_at, 5'000'000'000'000);
}

TEST_P(StoreContract, PutSecretReplacesTheSameScopeAndNameOnly) {
  IDP_ASSERT_OK(store().put_secret(stored_secret("acme/shop", "k", "b2xk", 1000)));
  IDP_ASSERT_OK(store().put_secret(stored_secret("acme/other", "k", "b3RoZXI=", 1000)));
  IDP_ASSERT_OK(store().put_secret(stored_secret("acme/shop", "k", "bmV3", 2000)));
  IDP_ASSERT_OK_ASSIGN(auto all, store().list_secrets());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].scope, "acme/other");
  EXPECT_EQ(all[0].sealed, "b3RoZXI=");
  EXPECT_EQ(all[1].scope, "acme/shop");
  EXPECT_EQ(all[1].sealed, "bmV3");
  EXPECT_EQ(all[1].updated_at, 2000);
}

TEST_P(StoreContract, DeleteSecretRemovesOneAndNotFoundOtherwise) {
  IDP_ASSERT_OK(store().put_secret(stored_secret("acme/shop", "k", "YQ==", 1000)));
  IDP_ASSERT_OK(store().put_secret(stored_secret("", "k", "Yg==", 1000)));
  auto wrong_scope = store().delete_secret("acme/other", "k");
  ASSERT_FALSE(wrong_scope.has_value());
  EXPECT_EQ(wrong_scope.error().code, ErrorCode::not_found);
  IDP_ASSERT_OK(store().delete_secret("acme/shop", "k"));
  IDP_ASSERT_OK_ASSIGN(auto left, store().list_secrets());
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].scope, "");
  auto again = store().delete_secret("acme/shop", "k");
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code, ErrorCode::not_found);
}

// --- Pull requests from forks ---

TEST_P(StoreContract, ForkRequestIsCreatedThenChangedInPlaceAndListedByRepoThenNumber) {
  auto pending = [](store::ForkRequest& f, bool exists) -> Expected<void> {
    EXPECT_FALSE(exists);
    f.github_repo = "acme/shop";
    f.head_repo = "mallory/shop";
    f.head_ref = "patch-ünï";
    f.head_sha = std::string(40, 'a');
    f.author = "mallory";
    f.state = "pending";
    f.updated_at = 1000;
    return {};
  };
  ASSERT_TRUE(store().update_fork_request("https://example.com/b.git", 7, pending));
  auto made = store().update_fork_request("https://example.com/a.git", 12, pending);
  ASSERT_TRUE(made) << made.error().message;
  EXPECT_EQ(made->repo, "https://example.com/a.git");
  EXPECT_EQ(made->pr, 12);
  EXPECT_EQ(made->head_ref, "patch-ünï");

  auto approved = store().update_fork_request("https://example.com/a.git", 12,
                                              [](store::ForkRequest& f, bool exists) -> Expected<void> {
                                                EXPECT_TRUE(exists);
                                                EXPECT_EQ(f.state, "pending");
                                                f.state = "approved";
                                                f.approved_commit = f.head_sha;
                                                f.approved_by = "cli:alice";
                                                f.approved_at = 2000;
                                                f.env = "pr-12";
                                                f.updated_at = 2000;
                                                return {};
                                              });
  ASSERT_TRUE(approved) << approved.error().message;
  auto got = store().get_fork_request("https://example.com/a.git", 12);
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->state, "approved");
  EXPECT_EQ((*got)->approved_commit, std::string(40, 'a'));
  EXPECT_EQ((*got)->approved_by, "cli:alice");
  EXPECT_EQ((*got)->approved_at, 2000);
  EXPECT_EQ((*got)->env, "pr-12");
  EXPECT_EQ((*got)->author, "mallory");
  EXPECT_EQ((*got)->github_repo, "acme/shop");
  EXPECT_EQ((*got)->head_repo, "mallory/shop");

  auto none = store().get_fork_request("https://example.com/a.git", 13);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());

  auto all = store().list_fork_requests();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].repo, "https://example.com/a.git");
  EXPECT_EQ((*all)[1].repo, "https://example.com/b.git");
}

TEST_P(StoreContract, AFailedForkRequestChangeStoresNothing) {
  auto failed = store().update_fork_request("r", 1, [](store::ForkRequest& f, bool) -> Expected<void> {
    f.state = "pending";
    return make_error(ErrorCode::conflict, "no");
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, ErrorCode::conflict);
  auto renamed = store().update_fork_request("r", 1, [](store::ForkRequest& f, bool) -> Expected<void> {
    f.pr = 2;
    return {};
  });
  ASSERT_FALSE(renamed);
  EXPECT_EQ(renamed.error().code, ErrorCode::invalid_argument);
  auto got = store().get_fork_request("r", 1);
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->has_value());
  auto all = store().list_fork_requests();
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty());
}

// Issue 12, cost: usage adds up per (environment, hour), attribution is the last one
// written, listing is by hour then environment within [from, to), pruning drops old hours,
// and an hour that is not an hour's start stores nothing.
TEST_P(StoreContract, UsageAddsUpPerEnvironmentAndHour) {
  const util::Millis h0 = 1'767'225'600'000; // 2026-01-01T00:00:00Z
  const util::Millis hour = 3'600'000;
  auto u = [](std::string env, util::Millis at, std::string owner, int64_t ms, double cpu_s) {
    store::UsageHour x;
    x.env = std::move(env);
    x.hour = at;
    x.owner = std::move(owner);
    x.repo = "r";
    x.template_name = "api-service";
    x.runtime = "local";
    x.running_ms = ms;
    x.reserved_cpu_ms = 256.0 * ms;
    x.reserved_memory_mb_ms = 512.0 * ms;
    x.used_cpu_seconds = cpu_s;
    x.used_memory_byte_ms = 1.5e6 * ms;
    x.storage_byte_ms = 8e6 * ms;
    x.measured_ms = ms;
    return x;
  };
  IDP_ASSERT_OK(store().add_usage({u("b", h0, "bob", 60'000, 1.25), u("a", h0 + hour, "alice", 60'000, 0.5)}));
  IDP_ASSERT_OK(store().add_usage({u("b", h0, "bobby", 30'000, 0.25)}));
  IDP_ASSERT_OK_ASSIGN(auto all, store().list_usage(h0, h0 + 2 * hour, ""));
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].env, "b");
  EXPECT_EQ(all[0].owner, "bobby") << "the last attribution";
  EXPECT_EQ(all[0].running_ms, 90'000);
  EXPECT_DOUBLE_EQ(all[0].used_cpu_seconds, 1.5);
  EXPECT_DOUBLE_EQ(all[0].reserved_cpu_ms, 256.0 * 90'000);
  EXPECT_DOUBLE_EQ(all[0].reserved_memory_mb_ms, 512.0 * 90'000);
  EXPECT_DOUBLE_EQ(all[0].used_memory_byte_ms, 1.5e6 * 90'000);
  EXPECT_DOUBLE_EQ(all[0].storage_byte_ms, 8e6 * 90'000);
  EXPECT_EQ(all[0].measured_ms, 90'000);
  EXPECT_EQ(all[0].template_name, "api-service");
  EXPECT_EQ(all[0].runtime, "local");
  EXPECT_EQ(all[1].env, "a");
  EXPECT_EQ(all[1].hour, h0 + hour);
  IDP_ASSERT_OK_ASSIGN(auto first, store().list_usage(h0, h0 + hour, ""));
  EXPECT_EQ(first.size(), 1u) << "to is exclusive";
  IDP_ASSERT_OK_ASSIGN(auto only_a, store().list_usage(h0, h0 + 2 * hour, "a"));
  ASSERT_EQ(only_a.size(), 1u);
  EXPECT_EQ(only_a[0].owner, "alice");

  auto bad = store().add_usage({u("c", h0, "c", 1, 0), u("c", h0 + 5, "c", 1, 0)});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
  IDP_ASSERT_OK_ASSIGN(auto after_bad, store().list_usage(h0, h0 + 2 * hour, "c"));
  EXPECT_TRUE(after_bad.empty()) << "nothing of a refused batch is stored";

  IDP_ASSERT_OK_ASSIGN(size_t pruned, store().prune_usage(h0 + hour));
  EXPECT_EQ(pruned, 1u);
  IDP_ASSERT_OK_ASSIGN(auto left, store().list_usage(0, h0 + 10 * hour, ""));
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].env, "a");
}

} // namespace idp::testing
