// AccessLog (idle sleep, issue 12): the last request of each host from Caddy's JSON access
// log, read incrementally, across a roll of the file, ignoring what is not an access line.
#include "drivers/local/access_log.hpp"

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>

#include "support/test_support.hpp"
#include "util/fs.hpp"

namespace idp::drivers::local {
namespace {

void append(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << text;
}

std::string line(double ts, const std::string& host) {
  return R"({"level":"info","ts":)" + std::to_string(ts) +
         R"(,"logger":"http.log.access.idp_access","msg":"handled request","request":{"host":")" + host +
         R"(","uri":"/"},"status":200})" + "\n";
}

TEST(AccessLogTest, KeepsEachHostsLastRequestAcrossPollsAndARoll) {
  idp::testing::TempDir tmp("idp-access-log");
  const std::string path = tmp.sub("access.log");
  AccessLog log(path);
  log.poll(); // no file yet: nothing, no error
  EXPECT_FALSE(log.last_request("a.preview.localhost").has_value());

  append(path, line(1700000000.250, "a.preview.localhost:8080") + line(1700000001.5, "B.preview.localhost") +
                   "not json\n" + R"({"ts":5,"request":{"host":7}})" + "\n" +
                   line(1700000000.0, "a.preview.localhost"));
  // A line cut in the middle waits for its end.
  std::string tail = line(1700000009.0, "a.preview.localhost");
  append(path, tail.substr(0, 20));
  log.poll();
  EXPECT_EQ(log.last_request("a.preview.localhost"), 1700000000250) << "the newest, whatever the order";
  EXPECT_EQ(log.last_request("b.preview.localhost"), 1700000001500) << "hosts compare lowercased";
  append(path, tail.substr(20));
  log.poll();
  EXPECT_EQ(log.last_request("a.preview.localhost"), 1700000009000);

  // Caddy rolls the file: a new, shorter one is read from its start.
  ASSERT_EQ(std::rename(path.c_str(), tmp.sub("access-old.log").c_str()), 0);
  append(path, line(1700000020.0, "c.preview.localhost"));
  log.poll();
  EXPECT_EQ(log.last_request("c.preview.localhost"), 1700000020000);
  EXPECT_EQ(log.last_request("a.preview.localhost"), 1700000009000) << "what was read stays";
  log.forget("a.preview.localhost");
  EXPECT_FALSE(log.last_request("a.preview.localhost").has_value());
}

} // namespace
} // namespace idp::drivers::local
