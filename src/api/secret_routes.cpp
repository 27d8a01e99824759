#include "api/secret_routes.hpp"

#include <optional>

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "api/api_error.hpp"
#include "core/api_types.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::api {

using nlohmann::json;

namespace {

json secret_json(const engine::SecretInfo& s) {
  json j = {{"name", s.name}, {"repos", s.repos}, {"source", s.source}};
  j["from"] = s.from.empty() ? json(nullptr) : json(s.from);
  j["updated_by"] = s.updated_by.empty() ? json(nullptr) : json(s.updated_by);
  j["updated_at"] = s.updated_at == 0 ? json(nullptr) : json(util::format_iso8601(s.updated_at));
  return j;
}

// The scope of a request: "" (every repository) or a checked repository pattern.
std::string scope_of(const std::string& repo) {
  if (repo.empty() || repo == "*") {
    return "";
  }
  if (auto ok = engine::check_repo_pattern(repo); !ok) {
    throw ApiError(400, "invalid_argument", "repo: " + ok.error().message);
  }
  return repo;
}

void record_secret_event(ApiContext& ctx, const std::string& actor, const std::string& action, const std::string& name,
                         const std::string& scope) {
  core::Event ev;
  ev.at = ctx.clock->now_ms();
  ev.actor = actor;
  ev.action = action;
  ev.reason = "secret " + util::quote(name) + " for " +
              (scope.empty() ? std::string("every repository") : "repository " + util::quote(scope));
  if (auto r = ctx.store->append_event(ev); !r) {
    spdlog::error("api: cannot record {} of secret {}: {}", action, name, r.error().message);
  }
}

} // namespace

void register_secret_routes(httplib::Server& s, ApiContext& ctx, SecretRouteHooks hooks) {
  if (!ctx.secrets) {
    return;
  }
  auto h = std::make_shared<SecretRouteHooks>(std::move(hooks));

  s.Get("/api/v1/secrets", [&ctx](const httplib::Request& req, httplib::Response& res) {
    std::optional<std::string> repo;
    if (req.has_param("repo") && !req.get_param_value("repo").empty()) {
      repo = req.get_param_value("repo");
    }
    auto list = unwrap(ctx.secrets->list(repo));
    json out = json::array();
    for (const auto& i : list) {
      out.push_back(secret_json(i));
    }
    send_json(res, 200, {{"secrets", out}});
  });

  s.Post(R"(/api/v1/secrets/([^/]+))", [&ctx, h](const httplib::Request& req, httplib::Response& res) {
    auto body = core::parse_json_object(req.body);
    if (!body) {
      throw ApiError(400, "invalid_json", body.error().message);
    }
    std::string name = req.matches[1].str();
    if (!body->contains("value") || !(*body)["value"].is_string()) {
      throw ApiError(400, "invalid_argument", "field \"value\": expected the secret's value as a string");
    }
    std::string repo;
    if (body->contains("repo") && !(*body)["repo"].is_null()) {
      if (!(*body)["repo"].is_string()) {
        throw ApiError(400, "invalid_argument", "field \"repo\": expected a repository like acme/shop");
      }
      repo = (*body)["repo"].get<std::string>();
    }
    std::string scope = scope_of(repo);
    auto stored = unwrap(ctx.secrets->set(scope, name, (*body)["value"].get_ref<const std::string&>(), h->identity()));
    record_secret_event(ctx, h->actor(req), "secret-set", name, scope);
    engine::SecretInfo info;
    info.name = stored.name;
    info.repos = {scope.empty() ? std::string("*") : scope};
    info.source = "store";
    info.updated_by = stored.updated_by;
    info.updated_at = stored.updated_at;
    send_json(res, 200, secret_json(info));
  });

  s.Delete(R"(/api/v1/secrets/([^/]+))", [&ctx, h](const httplib::Request& req, httplib::Response& res) {
    std::string name = req.matches[1].str();
    std::string scope = scope_of(req.has_param("repo") ? req.get_param_value("repo") : "");
    unwrap(ctx.secrets->remove(scope, name));
    record_secret_event(ctx, h->actor(req), "secret-rm", name, scope);
    send_json(res, 200,
              {{"name", name}, {"repos", json::array({scope.empty() ? std::string("*") : scope})}, {"deleted", true}});
  });
}

} // namespace idp::api
