#pragma once
// Environment names: derived from branches (GitOps) or given by hand (CLI). Always valid
// DNS labels of at most 32 characters. No I/O.

#include <string>
#include <string_view>

#include "util/expected.hpp"

namespace idp::core {

inline constexpr size_t k_max_env_name = 32;
inline constexpr std::string_view k_branch_prefix = "preview-";

// The original's sanitiser (spec §5.2): strip one case-sensitive feature|bugfix|hotfix|fix|
// chore|release prefix, lowercase, map other characters to '-', collapse, trim, cut to 24.
// May return "" (e.g. for "__").
std::string sanitize_branch(std::string_view branch);

// "preview-" + sanitize_branch(branch); when that is empty, "preview-" + a hash of the branch,
// so the result is never empty and never ends in '-'.
std::string env_name_for_branch(std::string_view branch);

// `base` made unique for `identity` (e.g. repo + branch): base cut to fit, then "-" and six
// hex digits of a hash of identity. Stable: the same identity always gives the same name.
std::string env_name_with_suffix(std::string_view base, std::string_view identity);

// A user-chosen name: 2–32 chars of [a-z0-9-], starting and ending alphanumeric.
Expected<void> validate_env_name(std::string_view name);

} // namespace idp::core
