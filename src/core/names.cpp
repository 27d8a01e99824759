#include "core/names.hpp"

#include "util/hash.hpp"
#include "util/strings.hpp"

namespace idp::core {

std::string sanitize_branch(std::string_view branch) {
  static constexpr std::string_view k_prefixes[] = {"feature/", "bugfix/", "hotfix/", "fix/", "chore/", "release/"};
  for (auto p : k_prefixes) {
    if (util::starts_with(branch, p)) {
      branch.remove_prefix(p.size());
      break;
    }
  }
  std::string out;
  for (size_t i = 0; i < branch.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(branch[i]);
    if (c >= 0x80) {
      // One '-' per UTF-8 code point: skip its continuation bytes.
      while (i + 1 < branch.size() && (static_cast<unsigned char>(branch[i + 1]) & 0xC0) == 0x80) {
        ++i;
      }
      c = '-';
    } else if (c >= 'A' && c <= 'Z') {
      c = static_cast<unsigned char>(c - 'A' + 'a');
    } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      c = '-';
    }
    if (c == '-' && !out.empty() && out.back() == '-') {
      continue; // collapse runs
    }
    out += static_cast<char>(c);
  }
  if (!out.empty() && out.front() == '-') {
    out.erase(0, 1);
  }
  if (!out.empty() && out.back() == '-') {
    out.pop_back();
  }
  size_t room = k_max_env_name - k_branch_prefix.size();
  if (out.size() > room) {
    out.resize(room);
  }
  while (!out.empty() && out.back() == '-') {
    out.pop_back();
  }
  return out;
}

std::string env_name_for_branch(std::string_view branch) {
  std::string s = sanitize_branch(branch);
  if (s.empty()) {
    s = util::sha256_hex(branch).substr(0, 8);
  }
  return std::string(k_branch_prefix) + s;
}

std::string env_name_with_suffix(std::string_view base, std::string_view identity) {
  std::string suffix = util::sha256_hex(identity).substr(0, 6);
  std::string head(base.substr(0, std::min(base.size(), k_max_env_name - suffix.size() - 1)));
  while (!head.empty() && head.back() == '-') {
    head.pop_back();
  }
  return head + "-" + suffix;
}

Expected<void> validate_env_name(std::string_view name) {
  if (name.size() < 2 || name.size() > k_max_env_name) {
    return make_error(ErrorCode::invalid_argument, "environment name " + util::quote(name) +
                                                       " must be 2-32 characters long, got " +
                                                       std::to_string(name.size()));
  }
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  for (char c : name) {
    if (!alnum(c) && c != '-') {
      return make_error(
          ErrorCode::invalid_argument,
          "environment name " + util::quote(name) +
              ": expected lowercase letters, digits and '-' only, starting and ending with a letter or digit");
    }
  }
  if (!alnum(name.front()) || !alnum(name.back())) {
    return make_error(ErrorCode::invalid_argument,
                      "environment name " + util::quote(name) + ": must start and end with a letter or digit");
  }
  return {};
}

} // namespace idp::core
