// Issue 12, layer 4 (chargeback) against a real S3: s3rver (npm, pinned in s3rver/package-lock.json,
// installed by the s3rver_setup fixture), on port 0 with its own directory, and a real
// `idp serve` whose store holds usage of this month and the previous one.
//
// - `idp cost report --output s3://...` uploads the report; GET back (signed), it is byte
//   for byte the `--output FILE` form, CSV and JSON, with a key holding spaces and UTF-8.
// - Unknown credentials, no credentials and a bad s3:// URL fail with a clear message that
//   never holds the secret key.
// - The monthly export (server config cost.export): a missing bucket fails with its HTTP
//   status and S3 code (an event), is retried, and once the bucket exists the previous
//   month's report lands at <prefix><YYYY-MM>.csv; a restarted daemon does not upload it again.
//
// s3rver checks the access key id but not a SigV4 signature (it computes only V2 ones):
// the signature itself is checked by tests/unit/util/s3_client_test.cpp and AWS's suite.
#include <gtest/gtest.h>

#include <csignal>
#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "store/sqlite/sqlite_store.hpp"
#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/s3_client.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

// s3rver's default (and only) credentials.
const char* const k_s3rver_key = "S3RVER";
const char* const k_s3rver_secret = "S3RVER";

std::string s3rver_script() { return std::string(IDP_S3RVER_MODULES_DIR) + "/s3rver/bin/s3rver.js"; }

// A private s3rver: `node s3rver.js -d <dir> -a 127.0.0.1 -p 0`, up once it said its port
// and answers HTTP. Stopped (SIGTERM, then SIGKILL) by the destructor.
class S3rver {
public:
  S3rver(const std::string& dir, const std::vector<std::string>& buckets) : m_log(dir + ".log") {
    util::Command c;
    c.argv = {"node", s3rver_script(), "-d", dir, "-a", "127.0.0.1", "-p", "0"};
    for (const auto& b : buckets) {
      c.argv.insert(c.argv.end(), {"--configure-bucket", b});
    }
    c.env = {{"NO_COLOR", "1"}};
    int fd = ::open(m_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    util::SpawnOptions so;
    so.stdout_fd = fd;
    so.stderr_fd = fd;
    so.detach = false;
    so.parent_death_signal = SIGKILL;
    auto pid = util::spawn(c, so);
    ::close(fd);
    if (!pid) {
      throw std::runtime_error("cannot start s3rver: " + pid.error().message);
    }
    m_pid = *pid;
    const std::string said = "S3rver listening on 127.0.0.1:";
    bool up = wait_until(
        [&] {
          std::string text = log();
          auto at = text.find(said);
          if (at == std::string::npos) {
            return false;
          }
          m_endpoint = "http://127.0.0.1:" + std::to_string(std::atoi(text.c_str() + at + said.size()));
          util::HttpRequest ping;
          ping.url = m_endpoint + "/";
          auto r = util::http_request(ping);
          return r && r->status == 200;
        },
        60'000, 50);
    if (!up) {
      throw std::runtime_error("s3rver did not come up; its output:\n" + log());
    }
  }
  ~S3rver() {
    ::kill(m_pid, SIGTERM);
    if (!util::wait_child(m_pid, 10'000)) {
      ::kill(m_pid, SIGKILL);
      (void)util::wait_child(m_pid, 10'000); // reaped; nothing else to do with its status
    }
  }
  S3rver(const S3rver&) = delete;
  S3rver& operator=(const S3rver&) = delete;

  const std::string& endpoint() const { return m_endpoint; }
  std::string log() const { return util::read_file(m_log).value_or(""); }
  // How many times s3rver stored `key` in `bucket` (its log has a line per PutObject).
  size_t puts_of(const std::string& bucket, const std::string& key) const {
    std::string line = "Stored object \"" + key + "\" in bucket \"" + bucket + "\" successfully";
    size_t n = 0;
    std::string text = log();
    for (size_t at = text.find(line); at != std::string::npos; at = text.find(line, at + 1)) {
      ++n;
    }
    return n;
  }
  util::S3Config config() const {
    util::S3Config cfg;
    cfg.credentials = {k_s3rver_key, k_s3rver_secret, ""};
    cfg.endpoint = m_endpoint;
    return cfg;
  }
  // The AWS variables of a client of this s3rver (none inherited from the test's own).
  std::map<std::string, std::string> env(const std::string& key = k_s3rver_key,
                                         const std::string& secret = k_s3rver_secret) const {
    return {{"AWS_ACCESS_KEY_ID", key},  {"AWS_SECRET_ACCESS_KEY", secret}, {"AWS_SESSION_TOKEN", ""},
            {"AWS_REGION", "us-east-1"}, {"AWS_DEFAULT_REGION", ""},        {"AWS_ENDPOINT_URL_S3", m_endpoint},
            {"AWS_ENDPOINT_URL", ""}};
  }

private:
  std::string m_log;
  pid_t m_pid = -1;
  std::string m_endpoint;
};

std::string month_of(util::Millis t) { return util::format_iso8601(t).substr(0, 7); }

// The start of the month before the one holding `t`.
util::Millis previous_month_start(util::Millis t) {
  auto start = *util::parse_iso8601(month_of(t) + "-01T00:00:00Z");
  return *util::parse_iso8601(month_of(start - 1) + "-01T00:00:00Z");
}

// Usage of three environments, two owners of team payments and one of none: in the
// previous month and this one, written to the home's store before the daemon starts.
void seed_usage(const std::string& home) {
  auto store = store::sqlite::SqliteStore::open(util::path_join(home, "state.db"));
  ASSERT_TRUE(store) << store.error().message;
  util::Millis now = util::SystemClock().now_ms();
  util::Millis prev = previous_month_start(now);
  util::Millis this_month = *util::parse_iso8601(month_of(now) + "-01T00:00:00Z");
  std::vector<store::UsageHour> hours;
  auto hour = [&](const std::string& env, const std::string& owner, util::Millis at, double vcpu) {
    store::UsageHour u;
    u.env = env;
    u.hour = at;
    u.owner = owner;
    u.repo = "https://github.com/acme/shop.git";
    u.template_name = "api-service";
    u.runtime = "local";
    u.running_ms = 3'600'000;
    u.reserved_cpu_ms = vcpu * 1024 * 3'600'000;
    u.reserved_memory_mb_ms = 512.0 * 3'600'000;
    u.used_cpu_seconds = 42.5;
    u.measured_ms = 3'600'000;
    hours.push_back(u);
  };
  hour("pr-1", "admin", prev + 5 * 3'600'000, 0.25);
  hour("pr-2", "carol", prev + 40 * 3'600'000, 1);
  hour("pr-3", "dave", prev + 41 * 3'600'000, 0.5);
  hour("pr-4", "admin", this_month, 2);
  ASSERT_TRUE((*store)->add_usage(hours));
}

const char* const k_team_config = "teams:\n  payments:\n    members: [admin, carol]\n";

std::vector<json> events_of(const DaemonProcess& d, const std::string& action) {
  std::vector<json> out;
  json all = d.api("GET", "/api/v1/events?limit=10000").second; // kept: the loop reads into it
  for (const auto& e : all["events"]) {
    if (e.value("action", "") == action) {
      out.push_back(e);
    }
  }
  return out;
}

#define IDP_REQUIRE_S3RVER()                                                                                           \
  do {                                                                                                                 \
    if (!util::read_file(s3rver_script())) {                                                                           \
      GTEST_SKIP() << "s3rver is not installed (the s3rver_setup fixture needs npm): " << s3rver_script();             \
    }                                                                                                                  \
  } while (false)

} // namespace

TEST(CostExportTest, TheReportUploadedToS3IsByteForByteTheFileForm) {
  IDP_REQUIRE_S3RVER();
  TempDir tmp("idp-s3-report");
  S3rver s3(tmp.sub("s3"), {"reports"});
  ASSERT_TRUE(util::ensure_dir(tmp.sub("home")));
  ASSERT_NO_FATAL_FAILURE(seed_usage(tmp.sub("home")));
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), k_team_config));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  std::string month = month_of(previous_month_start(util::SystemClock().now_ms()));

  for (const std::string format : {"csv", "json"}) {
    std::string file = tmp.sub("report." + format);
    auto local = d.cli({"cost", "report", "--month", month, "--by", "team", "--format", format, "--output", file});
    ASSERT_EQ(local.exit_code, 0) << local.err;
    auto expected = util::read_file(file);
    ASSERT_TRUE(expected);
    ASSERT_NE(expected->find("payments"), std::string::npos) << *expected;

    util::S3Location loc{"reports", "chargeback/" + month + "/équipe payments+all." + format};
    auto up = d.cli({"cost", "report", "--month", month, "--by", "team", "--format", format, "--output", loc.url()}, "",
                    s3.env());
    ASSERT_EQ(up.exit_code, 0) << up.err << "\n" << s3.log();
    EXPECT_EQ(up.out, "") << "nothing on stdout";
    EXPECT_NE(up.err.find("uploaded the " + format + " report of " + month + " to " + loc.url()), std::string::npos)
        << up.err;
    auto got = util::s3_get_object(s3.config(), loc);
    ASSERT_TRUE(got) << got.error().message;
    EXPECT_EQ(*got, *expected) << "the object is the --output FILE form, byte for byte";
  }
  // s3rver keeps the key as sent, decoded once: spaces, '+' and UTF-8 intact.
  EXPECT_EQ(s3.puts_of("reports", "chargeback/" + month + "/équipe payments+all.csv"), 1u) << s3.log();
}

TEST(CostExportTest, BadCredentialsNoCredentialsAndABadUrlFailClearlyWithoutTheSecret) {
  IDP_REQUIRE_S3RVER();
  TempDir tmp("idp-s3-errors");
  S3rver s3(tmp.sub("s3"), {"reports"});
  ASSERT_TRUE(util::ensure_dir(tmp.sub("home")));
  ASSERT_NO_FATAL_FAILURE(seed_usage(tmp.sub("home")));
  DaemonProcess d(tmp.sub("home"));
  d.start();
  std::string month = month_of(util::SystemClock().now_ms());
  std::vector<std::string> args = {"cost", "report", "--month", month, "--output", "s3://reports/x.csv"};

  const std::string secret = "wJalrXUtnFEMI-a-secret-never-shown";
  auto bad = d.cli(args, "", s3.env("AKIDUNKNOWN", secret));
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("PutObject s3://reports/x.csv: HTTP 403 InvalidAccessKeyId"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find(secret), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("Signature="), std::string::npos) << bad.err;
  EXPECT_EQ(s3.puts_of("reports", "x.csv"), 0u);

  auto none = d.cli(args, "", s3.env("", ""));
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"), std::string::npos)
      << none.err;

  for (const char* url : {"s3://reports/", "s3:///x.csv"}) {
    auto r = d.cli({"cost", "report", "--month", month, "--output", url}, "", s3.env());
    EXPECT_EQ(r.exit_code, 2) << "a usage error: " << r.err;
    EXPECT_NE(r.err.find(std::string("--output: no ") + (url[5] == '/' ? "bucket" : "object key")), std::string::npos)
        << r.err;
  }

  // Nothing listens there: the transport's reason, and still no secret.
  auto env = s3.env("S3RVER", secret);
  env["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:1";
  auto down = d.cli(args, "", env);
  EXPECT_NE(down.exit_code, 0);
  EXPECT_NE(down.err.find("PutObject s3://reports/x.csv: PUT http://127.0.0.1:1/reports/x.csv: "), std::string::npos)
      << down.err;
  EXPECT_EQ(down.err.find(secret), std::string::npos) << down.err;
}

TEST(CostExportTest, TheMonthlyExportIsRetriedUntilItLandsOnceAndARestartDoesNotUploadAgain) {
  IDP_REQUIRE_S3RVER();
  TempDir tmp("idp-s3-export");
  S3rver s3(tmp.sub("s3"), {});
  ASSERT_TRUE(util::ensure_dir(tmp.sub("home")));
  ASSERT_NO_FATAL_FAILURE(seed_usage(tmp.sub("home")));
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), std::string(k_team_config) +
                                                                 "cost:\n  sample_interval: 1s\n  export:\n"
                                                                 "    to: \"s3://chargeback/monthly/\"\n"
                                                                 "    by: team\n    format: csv\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.daemon_env = s3.env();
  d.start();
  std::string month = month_of(previous_month_start(util::SystemClock().now_ms()));
  util::S3Location loc{"chargeback", "monthly/" + month + ".csv"};

  // No bucket yet: each attempt fails with S3's status and code, as an event.
  ASSERT_TRUE(wait_until([&] { return !events_of(d, "cost-export-failed").empty(); }, 60'000)) << d.log();
  std::string reason = events_of(d, "cost-export-failed").front().value("reason", "");
  EXPECT_TRUE(util::starts_with(reason, "cannot upload the csv report of " + month + " by team to " + loc.url() +
                                            ": PutObject " + loc.url() + ": HTTP 404 NoSuchBucket"))
      << reason;
  EXPECT_EQ(d.log().find("Signature="), std::string::npos) << "no signature in the daemon's log";

  // The bucket appears: a later pass uploads the report.
  util::HttpRequest create =
      util::s3_signed_request(s3.config(), "PUT", {"chargeback", ""}, "", "", util::SystemClock().now_ms() / 1000);
  auto created = util::http_request(create);
  ASSERT_TRUE(created && created->status == 200) << (created ? created->body : created.error().message);
  ASSERT_TRUE(wait_until([&] { return !events_of(d, "cost-export").empty(); }, 60'000)) << d.log();
  EXPECT_EQ(events_of(d, "cost-export").front().value("reason", ""),
            "uploaded the csv report of " + month + " by team to " + loc.url());
  auto got = util::s3_get_object(s3.config(), loc);
  ASSERT_TRUE(got) << got.error().message;
  auto file = d.cli({"cost", "report", "--month", month, "--by", "team", "--output", tmp.sub("expected.csv")});
  ASSERT_EQ(file.exit_code, 0) << file.err;
  EXPECT_EQ(*got, util::read_file(tmp.sub("expected.csv")).value_or("")) << "the export is idp cost report's file";
  EXPECT_NE(got->find(month + ",payments,2,"), std::string::npos) << *got;

  // A restart: its first passes find the month recorded and upload nothing.
  ASSERT_EQ(d.stop(), 0) << d.log();
  d.start();
  ASSERT_TRUE(wait_until(
      [&] { return d.log().find("cost export: the report of " + month + " is uploaded already") != std::string::npos; },
      60'000))
      << d.log();
  EXPECT_EQ(s3.puts_of("chargeback", loc.key), 1u) << s3.log();
  EXPECT_EQ(events_of(d, "cost-export").size(), 1u);
}
