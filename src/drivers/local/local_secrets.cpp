#include "drivers/local/local_secrets.hpp"

#include "core/app_config.hpp"
#include "util/strings.hpp"

namespace idp::drivers::local {

Expected<void> check_secret_references(const std::map<std::string, std::string>& secrets) {
  for (const auto& [name, ref] : secrets) {
    if (core::is_secret_arn(ref) || core::is_secret_store_name(ref)) {
      continue;
    }
    // A config stored before issue 9 may still say env:/file:; its value is not echoed.
    std::string what = util::starts_with(ref, "env:")    ? "an env: reference (no longer allowed)"
                       : util::starts_with(ref, "file:") ? "a file: reference (no longer allowed)"
                                                         : "something else";
    return make_error(ErrorCode::invalid_config,
                      "secrets." + name +
                          ": expected the name of a secret in the server's secret store (or an ARN), got " + what);
  }
  return {};
}

Expected<ResolvedSecrets> resolve_secrets(const std::map<std::string, std::string>& secrets, const std::string& repo,
                                          const SecretHooks& hooks) {
  IDP_TRY(check_secret_references(secrets));
  ResolvedSecrets out;
  for (const auto& [name, ref] : secrets) {
    if (core::is_secret_arn(ref)) {
      out.warnings.push_back("secret " + util::quote(name) +
                             " is not injected: AWS secrets are not available on the local runtime");
      continue;
    }
    if (!hooks.resolve) {
      return make_error(ErrorCode::invalid_config, "secret " + util::quote(name) +
                                                       ": this server has no secret store to take " + util::quote(ref) +
                                                       " from");
    }
    auto v = hooks.resolve(repo, ref);
    if (!v) {
      return Unexpected(v.error().with_context("secret " + util::quote(name)));
    }
    out.env[name] = std::move(*v);
  }
  return out;
}

std::vector<std::string> secret_values(const std::map<std::string, std::string>& secrets, const std::string& repo,
                                       const SecretHooks& hooks) {
  std::vector<std::string> out;
  if (!hooks.resolve) {
    return out;
  }
  for (const auto& [name, ref] : secrets) {
    if (core::is_secret_store_name(ref)) {
      if (auto v = hooks.resolve(repo, ref)) {
        out.push_back(std::move(*v));
      }
    }
  }
  return out;
}

} // namespace idp::drivers::local
