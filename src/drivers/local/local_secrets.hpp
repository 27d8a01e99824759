#pragma once
// Secrets on the local runtime. A reference (the value in the config's `secrets` map) is the
// name of a secret in the server's secret store, resolved for the environment's repository
// (a secret scoped to another repository is refused), or an AWS ARN (Secrets Manager /
// SSM), which is not available locally: that variable is not injected and a warning names
// it. env:/file: are refused (issue 9). Values never appear in messages.

#include <map>
#include <string>
#include <vector>

#include "drivers/driver.hpp"
#include "util/expected.hpp"

namespace idp::drivers::local {

struct ResolvedSecrets {
  std::map<std::string, std::string> env; // variable → value
  std::vector<std::string> warnings;
};

// Checks the form of every reference without reading anything. invalid_config otherwise.
Expected<void> check_secret_references(const std::map<std::string, std::string>& secrets);
// Looks every store name up for `repo`. invalid_config (naming the variable, the secret
// and the repository) when one is missing or not for that repository, or no store is set.
Expected<ResolvedSecrets> resolve_secrets(const std::map<std::string, std::string>& secrets, const std::string& repo,
                                          const SecretHooks& hooks);
// The resolved values only (for redaction); what cannot be resolved is skipped.
std::vector<std::string> secret_values(const std::map<std::string, std::string>& secrets, const std::string& repo,
                                       const SecretHooks& hooks);

} // namespace idp::drivers::local
