#include "api/wake_routes.hpp"

#include <chrono>
#include <thread>

#include <httplib.h>

#include "api/api_error.hpp"
#include "util/hash.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::api {

namespace {

constexpr util::Millis k_wake_poll_ms = 10;

// A browser that waited past the deadline reloads this page until the app answers.
constexpr const char* k_waking_page =
    "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">"
    "<title>Waking up</title></head><body style=\"font-family:sans-serif;margin:3em\">"
    "<h1>Waking up</h1><p>This preview was asleep and is starting. This page reloads by itself.</p>"
    "</body></html>\n";

void send_text(httplib::Response& res, int status, const std::string& text) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(text, "text/plain; charset=utf-8");
}

void send_waking(const httplib::Request& req, httplib::Response& res) {
  res.status = 503;
  res.set_header("Retry-After", "2");
  res.set_header("Cache-Control", "no-store");
  if (req.get_header_value("Accept").find("text/html") != std::string::npos) {
    res.set_content(k_waking_page, "text/html; charset=utf-8");
  } else {
    res.set_content("this preview is waking up; retry in a moment\n", "text/plain; charset=utf-8");
  }
}

} // namespace

bool wake_request_allowed(const httplib::Request& req, const ApiContext& ctx) {
  return !ctx.wake_key.empty() && util::constant_time_equals(req.get_header_value("X-Idp-Wake-Key"), ctx.wake_key);
}

void register_wake_handler(httplib::Server& s, ApiContext& ctx) {
  if (ctx.wake_key.empty()) {
    return;
  }
  s.Get(k_wake_path, [&ctx](const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.get_header_value("X-Idp-Wake-Env");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ctx.wake_timeout_ms);
    bool asked = false;
    while (true) {
      auto env = ctx.store->get_environment(name);
      if (!env) {
        if (env.error().code == ErrorCode::not_found) {
          send_text(res, 404, "no preview environment at this address\n");
        } else {
          send_waking(req, res); // the store hiccups: the browser retries
        }
        return;
      }
      if (env->phase == core::Phase::destroyed || env->desired == core::Desired::absent) {
        send_text(res, 404, "no preview environment at this address\n");
        return;
      }
      if (!env->sleep) {
        auto outputs = nlohmann::json::parse(env->outputs_json, nullptr, false);
        int port = outputs.is_object() ? outputs.value("port", 0) : 0;
        if (env->phase == core::Phase::ready && port > 0) {
          res.status = 200;
          res.set_header("X-Idp-Upstream", "127.0.0.1:" + std::to_string(port));
          res.set_header("Cache-Control", "no-store");
          return;
        }
        if (env->phase == core::Phase::failed || env->phase == core::Phase::degraded) {
          send_text(res, 503, "this preview did not start: " + env->message + "\n");
          return;
        }
      } else if (!asked) {
        asked = true;
        // Posts from here on are this wake's (or a concurrent one's: the same app).
        const uint64_t seen = ctx.wake_board ? ctx.wake_board->seen(name) : 0;
        if (auto r = ctx.controller->wake(name, "request", "a request to its URL"); !r) {
          send_text(res, 503, "this preview cannot wake up now: " + r.error().message + "\n");
          return;
        }
        if (ctx.wake_board) {
          // The app's upstream the moment its health check passes: no wait for the route
          // switch or the store.
          if (auto upstream = ctx.wake_board->wait(name, seen, deadline)) {
            res.status = 200;
            res.set_header("X-Idp-Upstream", *upstream);
            res.set_header("Cache-Control", "no-store");
            return;
          }
        }
        continue;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        send_waking(req, res);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(k_wake_poll_ms));
    }
  });
}

void register_sleep_routes(httplib::Server& s, ApiContext& ctx,
                           std::function<nlohmann::json(const core::Environment&)> env_json,
                           std::function<void(const core::Environment&, const std::string&)> require_owner,
                           std::function<std::string(const httplib::Request&)> actor_of) {
  s.Post(R"(/api/v1/environments/([^/]+)/sleep)",
         [&ctx, env_json, require_owner, actor_of](const httplib::Request& req, httplib::Response& res) {
           std::string reason = "put to sleep by hand";
           if (!req.body.empty()) {
             auto body = nlohmann::json::parse(req.body, nullptr, false);
             if (!body.is_object()) {
               throw ApiError(400, "invalid_argument", "expected a JSON object {reason?}");
             }
             for (const auto& [k, v] : body.items()) {
               if (k != "reason") {
                 throw ApiError(400, "invalid_argument", "unknown field " + util::quote(k) + " (expected reason)");
               }
               if (!v.is_string() || v.get<std::string>().size() > 500) {
                 throw ApiError(400, "invalid_argument", "reason: expected a string of at most 500 characters");
               }
               reason = v.get<std::string>();
             }
           }
           require_owner(unwrap(ctx.store->get_environment(req.matches[1].str())), "sleep");
           std::string actor = actor_of(req);
           auto env = unwrap(ctx.controller->sleep(req.matches[1].str(), actor, reason, actor));
           send_json(res, 202, env_json(env));
         });
  s.Post(R"(/api/v1/environments/([^/]+)/wake)",
         [&ctx, env_json, require_owner, actor_of](const httplib::Request& req, httplib::Response& res) {
           require_owner(unwrap(ctx.store->get_environment(req.matches[1].str())), "wake");
           auto env = unwrap(ctx.controller->wake(req.matches[1].str(), actor_of(req), "woken by hand"));
           send_json(res, 202, env_json(env));
         });
}

} // namespace idp::api
