#include "drivers/local/local_secrets.hpp"

#include <cstdlib>

#include "util/fs.hpp"
#include "util/strings.hpp"

namespace idp::drivers::local {

namespace {
enum class Kind { env, file, arn, invalid };

Kind kind_of(const std::string& ref) {
  if (util::starts_with(ref, "env:") && ref.size() > 4) {
    return Kind::env;
  }
  if (util::starts_with(ref, "file:/") && ref.size() > 6) {
    return Kind::file;
  }
  if (util::starts_with(ref, "arn:")) {
    return Kind::arn;
  }
  return Kind::invalid;
}
} // namespace

Expected<void> check_secret_references(const std::map<std::string, std::string>& secrets) {
  for (const auto& [name, ref] : secrets) {
    if (kind_of(ref) == Kind::invalid) {
      return make_error(ErrorCode::invalid_config, "secrets." + name +
                                                       ": expected env:NAME, file:/absolute/path or an ARN, got " +
                                                       util::quote(ref));
    }
  }
  return {};
}

Expected<ResolvedSecrets> resolve_secrets(const std::map<std::string, std::string>& secrets) {
  IDP_TRY(check_secret_references(secrets));
  ResolvedSecrets out;
  for (const auto& [name, ref] : secrets) {
    switch (kind_of(ref)) {
    case Kind::env: {
      const char* v = std::getenv(ref.c_str() + 4);
      if (!v) {
        return make_error(ErrorCode::permanent, "secret " + util::quote(name) + ": variable " +
                                                    util::quote(ref.substr(4)) + " is not set in the server's environment");
      }
      out.env[name] = v;
      break;
    }
    case Kind::file: {
      auto text = util::read_file(ref.substr(5));
      if (!text) {
        return make_error(ErrorCode::permanent, "secret " + util::quote(name) + ": cannot read " +
                                                    util::quote(ref.substr(5)) + ": " + text.error().message);
      }
      out.env[name] = util::trim(*text);
      break;
    }
    case Kind::arn:
      out.warnings.push_back("secret " + util::quote(name) +
                             " is not injected: AWS secrets are not available on the local runtime");
      break;
    case Kind::invalid:
      break;
    }
  }
  return out;
}

} // namespace idp::drivers::local
