// Branch → environment name (core/names): any bytes git could send as a branch give a
// valid DNS-label name (never empty, never over 32 characters), deterministically.
// Input: the branch on the first line, an identity (repo + branch) in the rest.

#include "core/names.hpp"
#include "fuzz/fuzz_support.hpp"

using namespace idp;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::FuzzInput in(data, size);
  std::string branch = in.field();
  std::string identity = in.rest();

  std::string s = core::sanitize_branch(branch);
  IDP_FUZZ_CHECK(s.size() <= core::k_max_env_name - core::k_branch_prefix.size());
  IDP_FUZZ_CHECK(s.empty() || (s.front() != '-' && s.back() != '-'));

  std::string name = core::env_name_for_branch(branch);
  auto valid = core::validate_env_name(name);
  if (!valid) {
    std::fprintf(stderr, "branch %s -> %s: %s\n", branch.c_str(), name.c_str(), valid.error().message.c_str());
  }
  IDP_FUZZ_CHECK(valid.has_value());
  IDP_FUZZ_CHECK(name == core::env_name_for_branch(branch));

  std::string unique = core::env_name_with_suffix(name, identity);
  IDP_FUZZ_CHECK(core::validate_env_name(unique).has_value());
  IDP_FUZZ_CHECK(unique == core::env_name_with_suffix(name, identity));

  // A user-chosen name is either rejected with a message or already in canonical form.
  auto user = core::validate_env_name(branch);
  IDP_FUZZ_CHECK(user.has_value() || !user.error().message.empty());
  return 0;
}
