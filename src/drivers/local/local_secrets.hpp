#pragma once
// Secrets on the local runtime. A reference (the value in the config's `secrets` map) is
// `env:NAME` (NAME from the daemon's environment), `file:/path` (the file's contents,
// trimmed) or an AWS ARN (Secrets Manager / SSM), which is not available locally: that
// variable is not injected and a warning names it. Values never appear in messages.

#include <map>
#include <string>
#include <vector>

#include "util/expected.hpp"

namespace idp::drivers::local {

struct ResolvedSecrets {
  std::map<std::string, std::string> env; // variable → value
  std::vector<std::string> warnings;
};

// Checks the form of every reference without reading anything. invalid_config otherwise.
Expected<void> check_secret_references(const std::map<std::string, std::string>& secrets);
// Reads every env:/file: reference. permanent when a variable is unset or a file unreadable.
Expected<ResolvedSecrets> resolve_secrets(const std::map<std::string, std::string>& secrets);

} // namespace idp::drivers::local
