// Issue 12, must show 5: idle sleep and wake on request, on a real `idp serve` with real
// Caddy and real processes. An environment idle past its sleep_after has no process left
// (its database, files and URL stay); a request to its URL wakes it and gets the app's own
// answer, not an error; one put to sleep by hand (`idp sleep`) survives a daemon kill -9
// still asleep and still wakeable.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/home_inspection.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

// Answers with its own pid (a new process after each wake) and echoes POST bodies.
const char* k_napper_app = R"js('use strict';
const http = require('http');
http.createServer((req, res) => {
  let body = '';
  req.on('data', (d) => { body += d; });
  req.on('end', () => res.end(req.method === 'POST' ? 'echo ' + body : 'pid ' + process.pid));
}).listen(Number(process.env.PORT), '127.0.0.1');
)js";

void commit_napper(GitRepo& repo, const std::string& sleep_after) {
  repo.write_file("server.js", k_napper_app);
  repo.write_file(".idp/config.yml", "template: api-service\nhealth_check_path: /health\nsleep_after: " + sleep_after +
                                         "\nlocal:\n  start: \"node server.js\"\n");
  repo.commit("app");
}

bool asleep(const DaemonProcess& d, const std::string& name) {
  json e = d.env(name);
  return e.is_object() && e["sleep"].is_object() && e["sleep"].value("state", "") == "asleep";
}

std::vector<std::string> actions(const DaemonProcess& d, const std::string& name) {
  std::vector<std::string> out;
  auto [status, body] = d.api("GET", "/api/v1/environments/" + name + "/events");
  const json& list = body.is_array() ? body : body.value("events", json::array());
  for (const auto& ev : list) {
    out.push_back(ev.value("action", ""));
  }
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

} // namespace

TEST(IdleSleepTest, AnIdleEnvironmentSleepsWithNoProcessLeftAndARequestWakesItWithTheAppsAnswer) {
  TempDir tmp("idp-sleep");
  ASSERT_TRUE(util::ensure_dir(tmp.sub("home")));
  GitRepo repo(tmp.sub("repo"));
  commit_napper(repo, "2s");
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "sleep:\n  check_interval: 1s\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  auto r = d.cli({"create", "--repo", repo.path(), "--branch", "main", "--name", "napper"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << d.log();
  ASSERT_TRUE(d.wait_phase("napper", "ready", 120'000)) << d.env("napper").dump(2) << d.log();
  auto first = d.get_via_router("napper", "/");
  ASSERT_EQ(first.first, 200) << first.second;
  ASSERT_TRUE(process_environments(d).count("napper"));

  // Idle past sleep_after: asleep, and nothing of it runs.
  ASSERT_TRUE(wait_until([&] { return asleep(d, "napper"); }, 60'000)) << d.env("napper").dump(2) << d.log();
  EXPECT_TRUE(wait_until([&] { return !process_environments(d).count("napper"); }, 10'000));
  json e = d.env("napper");
  EXPECT_EQ(e["sleep"]["by"], "idle");
  EXPECT_EQ(e["phase"], "ready");
  EXPECT_TRUE(e["sleeping"].get<bool>());
  EXPECT_TRUE(has(actions(d, "napper"), "sleep")) << json(actions(d, "napper")).dump();
  auto listed = d.cli({"list"});
  EXPECT_NE(listed.out.find("sleeping"), std::string::npos) << listed.out;
  EXPECT_NE(d.cli({"status", "napper"}).out.find("sleeping"), std::string::npos);

  // The first request wakes it and is answered by the app itself.
  auto woken = d.get_via_router("napper", "/");
  EXPECT_EQ(woken.first, 200) << woken.second << d.log();
  EXPECT_TRUE(util::starts_with(woken.second, "pid ")) << woken.second;
  EXPECT_NE(woken.second, first.second) << "a new process served it";
  // The app answered as soon as it was healthy; the engine records the wake right after.
  EXPECT_TRUE(wait_until([&] { return d.env("napper")["sleep"].is_null(); }, 10'000)) << d.env("napper").dump(2);
  EXPECT_TRUE(process_environments(d).count("napper"));
  EXPECT_TRUE(has(actions(d, "napper"), "wake"));
  // And it goes back to sleep when left alone again.
  EXPECT_TRUE(wait_until([&] { return asleep(d, "napper"); }, 60'000)) << d.env("napper").dump(2);
}

TEST(IdleSleepTest, ASleepingEnvironmentSurvivesADaemonKillAsleepAndStillWakes) {
  TempDir tmp("idp-sleep-crash");
  ASSERT_TRUE(util::ensure_dir(tmp.sub("home")));
  GitRepo repo(tmp.sub("repo"));
  commit_napper(repo, "never");
  GitRepo other(tmp.sub("other"));
  commit_napper(other, "never");
  // Usage sampled every second: a sleeping environment must stop accruing.
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "cost:\n  sample_interval: 1s\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  auto r = d.cli({"create", "--repo", repo.path(), "--branch", "main", "--name", "napper"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(d.wait_phase("napper", "ready", 120'000)) << d.env("napper").dump(2) << d.log();

  // By hand: idp sleep.
  auto slept = d.cli({"sleep", "napper", "--reason", "QA is done for today"});
  ASSERT_EQ(slept.exit_code, 0) << slept.out << slept.err;
  ASSERT_TRUE(wait_until([&] { return asleep(d, "napper"); }, 30'000)) << d.env("napper").dump(2) << d.log();
  EXPECT_TRUE(wait_until([&] { return !process_environments(d).count("napper"); }, 10'000));
  EXPECT_EQ(d.env("napper")["sleep"]["reason"], "QA is done for today");
  // Bad input changes nothing.
  auto unknown = d.cli({"sleep", "nobody"});
  EXPECT_NE(unknown.exit_code, 0);

  // The wake handler answers the router alone: a caller without its key learns nothing and
  // wakes nothing (Host and peer are loopback here, as an attacker on the machine would be).
  auto [probe, probe_body] =
      d.api_as("", "GET", "/internal/wake", "", {{"X-Idp-Wake-Env", "napper"}, {"X-Idp-Wake-Key", "guess"}});
  EXPECT_EQ(probe, 404) << probe_body.dump();
  EXPECT_TRUE(asleep(d, "napper"));

  d.kill9();
  d.start();
  // The restarted daemon has looked at everything once another environment is created and
  // ready after it (its first pass probes napper before that create is even queued).
  auto c = d.cli({"create", "--repo", other.path(), "--branch", "main", "--name", "witness"});
  ASSERT_EQ(c.exit_code, 0) << c.out << c.err;
  ASSERT_TRUE(d.wait_phase("witness", "ready", 120'000)) << d.log();
  EXPECT_TRUE(asleep(d, "napper")) << d.env("napper").dump(2);
  EXPECT_FALSE(process_environments(d).count("napper")) << "still asleep after the restart";
  EXPECT_NE(d.cli({"status", "napper"}).out.find("sleeping"), std::string::npos);

  // Asleep, it accrues no running time (no CPU or memory reserved) while the witness does.
  auto running_ms = [&](const std::string& env) {
    auto [code, body] = d.api("GET", "/api/v1/cost");
    for (const auto& l : body.value("lines", json::array())) {
      if (l.value("name", "") == env) {
        return l.value("running_hours", 0.0) * 3'600'000.0;
      }
    }
    return 0.0;
  };
  double napper_ms = running_ms("napper");
  double witness_ms = running_ms("witness");
  ASSERT_TRUE(wait_until([&] { return running_ms("witness") > witness_ms + 1500; }, 60'000))
      << "two passes of the sampler charged the witness";
  EXPECT_EQ(running_ms("napper"), napper_ms) << "nothing charged while asleep";

  // A POST wakes it, and its body reaches the app.
  util::HttpRequest post;
  post.method = "POST";
  post.url = "http://127.0.0.1:" + std::to_string(d.router_port()) + "/";
  post.headers = {{"Host", "napper.preview.localhost:" + std::to_string(d.router_port())}};
  post.body = "hello after the crash";
  post.timeout_ms = 30'000;
  auto got = util::http_request(post);
  ASSERT_TRUE(got.has_value()) << got.error().message;
  EXPECT_EQ(got->status, 200) << got->body << d.log();
  EXPECT_EQ(got->body, "echo hello after the crash");
  EXPECT_TRUE(wait_until([&] { return d.env("napper")["sleep"].is_null(); }, 10'000)) << d.env("napper").dump(2);
  // idp wake of an awake environment is a no-op that says so.
  auto awake = d.cli({"wake", "napper"});
  EXPECT_EQ(awake.exit_code, 0) << awake.err;
  EXPECT_NE(awake.out.find("is awake"), std::string::npos) << awake.out;
}

// Past sleep.wake_timeout a browser gets the small "waking up" page that reloads itself (a
// 503 with Retry-After), and once the app is up the same request gets the app's answer.
TEST(IdleSleepTest, ABrowserThatWaitsPastTheWakeTimeoutGetsAPageThatRetries) {
  TempDir tmp("idp-sleep-slow");
  ASSERT_TRUE(util::ensure_dir(tmp.sub("home")));
  GitRepo repo(tmp.sub("repo"));
  // Starts listening 3 s after it is started: every start, the first deploy's too.
  repo.write_file("server.js", "setTimeout(() => require('http').createServer((q, s) => s.end('slow but here'))"
                               ".listen(Number(process.env.PORT), '127.0.0.1'), 3000);\n");
  repo.write_file(
      ".idp/config.yml",
      "template: api-service\nhealth_check_path: /\nsleep_after: never\nlocal:\n  start: \"node server.js\"\n");
  repo.commit("slow app");
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "sleep:\n  wake_timeout: 1s\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  auto r = d.cli({"create", "--repo", repo.path(), "--branch", "main", "--name", "slowpoke"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  ASSERT_TRUE(d.wait_phase("slowpoke", "ready", 120'000)) << d.log();
  ASSERT_EQ(d.cli({"sleep", "slowpoke"}).exit_code, 0);
  ASSERT_TRUE(wait_until([&] { return asleep(d, "slowpoke"); }, 30'000)) << d.env("slowpoke").dump(2);

  util::HttpRequest browser;
  browser.url = "http://127.0.0.1:" + std::to_string(d.router_port()) + "/";
  browser.headers = {{"Host", "slowpoke.preview.localhost:" + std::to_string(d.router_port())},
                     {"Accept", "text/html,application/xhtml+xml"}};
  browser.timeout_ms = 30'000;
  auto page = util::http_request(browser);
  ASSERT_TRUE(page.has_value()) << page.error().message;
  EXPECT_EQ(page->status, 503) << page->body;
  EXPECT_NE(page->body.find("<meta http-equiv=\"refresh\" content=\"2\">"), std::string::npos) << page->body;
  EXPECT_NE(page->body.find("Waking up"), std::string::npos);
  // The browser's reload: the app's own answer once it is up.
  EXPECT_TRUE(wait_until(
      [&] {
        auto again = util::http_request(browser);
        return again && again->status == 200 && again->body == "slow but here";
      },
      60'000, 200))
      << d.env("slowpoke").dump(2);
}
