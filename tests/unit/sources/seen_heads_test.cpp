#include "sources/seen_heads.hpp"

#include <gtest/gtest.h>

#include "fakes/in_memory_store.hpp"

namespace idp::sources {
namespace {

const std::string k_seen_url = "https://example.com/app.git";

TEST(SeenHeadsTest, BranchNamesThatAreNotUtf8SurviveARestartExactly) {
  testing::InMemoryStore store;
  {
    SeenHeads seen(store);
    seen.set(k_seen_url, "feat/\xff", "c1");         // would have thrown (json type_error 316)
    seen.set(k_seen_url, "feat/\xfe", "c2");         // must not collide with the one above
    seen.set(k_seen_url, "feat/\xef\xbf\xbd", "c3"); // a real U+FFFD stays itself
    seen.set(k_seen_url, "ünïcode", "c4");
  }
  SeenHeads again(store);
  auto all = again.all(k_seen_url);
  std::map<std::string, std::string> expected = {
      {"feat/\xff", "c1"}, {"feat/\xfe", "c2"}, {"feat/\xef\xbf\xbd", "c3"}, {"ünïcode", "c4"}};
  EXPECT_EQ(all, expected);
}

} // namespace
} // namespace idp::sources
