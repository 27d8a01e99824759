#include "sources/watched_repo.hpp"

#include "util/strings.hpp"

namespace idp::sources {

bool WatchedRepo::tracks(const std::string& branch) const {
  for (const auto& g : exclude) {
    if (util::glob_match(g, branch)) {
      return false;
    }
  }
  bool explicit_default = false;
  bool included = false;
  for (const auto& g : include) {
    if (util::glob_match(g, branch)) {
      included = true;
      explicit_default = explicit_default || g == branch;
    }
  }
  if (branch == default_branch && !explicit_default) {
    return false;
  }
  return included;
}

} // namespace idp::sources
