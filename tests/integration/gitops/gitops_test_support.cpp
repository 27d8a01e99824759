#include "integration/gitops/gitops_test_support.hpp"

#include <filesystem>
#include <regex>

#include <gtest/gtest.h>

#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::testing {

using nlohmann::json;

namespace {
std::string yaml_quote(const std::string& s) { return json(s).dump(); } // JSON strings are YAML strings
} // namespace

GitopsRig::GitopsRig(const std::string& prefix, GitopsOptions o) : tmp(prefix), options(std::move(o)) {
  remote_path = tmp.sub("remote.git");
  remote = std::make_unique<BareRepo>(remote_path);
  work = std::make_unique<GitRepo>(make_example_repo(tmp.sub("work"), "api-service", "main"));
  remote->push(*work, "main");
  (void)util::ensure_dir(tmp.sub("home"));
  write_config();
}

GitopsRig::~GitopsRig() {
  if (daemon) {
    daemon->stop();
    daemon.reset();
  }
}

void GitopsRig::write_config() {
  (void)util::write_file_atomic(tmp.sub("webhook.secret"), secret + "\n", 0600);
  std::string cfg = "repositories:\n"
                    "  - url: " +
                    yaml_quote(remote_path) +
                    "\n"
                    "    github_repo: idp-tests/app\n"
                    "    poll: " +
                    std::string(options.poll ? "true" : "false") +
                    "\n"
                    "    poll_interval: " +
                    options.poll_interval + "\n";
  if (options.webhooks) {
    cfg += "    webhook_secret: " + yaml_quote("file:" + tmp.sub("webhook.secret")) + "\n";
  }
  if (!options.github_token.empty()) {
    (void)util::write_file_atomic(tmp.sub("github.token"), options.github_token + "\n", 0600);
    cfg += "    github_token: " + yaml_quote("file:" + tmp.sub("github.token")) + "\n";
  }
  cfg += options.repository_extra;
  if (!options.github_api_url.empty()) {
    cfg += "github:\n  api_url: " + yaml_quote(options.github_api_url) + "\n";
  }
  cfg += options.server_config_extra;
  (void)util::write_file_atomic(tmp.sub("server.yml"), cfg);
}

void GitopsRig::start() {
  std::vector<std::string> flags = {"--config", tmp.sub("server.yml"), "--health-interval", "1s"};
  flags.insert(flags.end(), options.extra_flags.begin(), options.extra_flags.end());
  daemon = std::make_unique<DaemonProcess>(tmp.sub("home"), flags);
  daemon->log_level = options.log_level;
  daemon->start();
}

void GitopsRig::restart() {
  daemon->stop();
  daemon->start();
}

std::string GitopsRig::commit_file(const std::string& branch, const std::string& rel, const std::string& content) {
  auto branches = work->git({"branch", "--list", branch});
  if (branches.empty()) {
    work->checkout("main");
    work->checkout_new_branch(branch);
  } else {
    work->checkout(branch);
  }
  work->write_file(rel, content);
  std::string sha = work->commit("change " + rel + " on " + branch);
  remote->push(*work, branch);
  last_pushed = sha;
  return sha;
}

std::string GitopsRig::commit_version(const std::string& branch, const std::string& version) {
  auto cfg = util::read_file(source_dir() + "/examples/api-service/.idp/config.yml");
  std::string text = *cfg;
  auto pos = text.find("environment:\n");
  text.insert(pos + std::string("environment:\n").size(), "  APP_VERSION: " + version + "\n");
  return commit_file(branch, ".idp/config.yml", text);
}

void GitopsRig::delete_branch(const std::string& branch) { remote->delete_branch(branch); }

std::pair<long, json> GitopsRig::webhook(const std::string& event, const json& payload,
                                         std::optional<std::string> with_secret, const std::string& delivery) {
  return post_hook(event, util::json_dump(payload), with_secret.value_or(secret), delivery);
}

std::pair<long, json> GitopsRig::webhook_raw(const std::string& event, const std::string& body) {
  return post_hook(event, body, secret, "");
}

std::pair<long, json> GitopsRig::post_hook(const std::string& event, const std::string& body,
                                           const std::string& with_secret, const std::string& delivery) {
  std::string id = delivery.empty() ? util::random_hex(16) : delivery;
  util::HttpRequest req;
  req.method = "POST";
  req.url = daemon->api_url() + "/hooks/github";
  req.body = body;
  for (auto& h : github_headers(event, id, body, with_secret)) {
    req.headers.push_back(h);
  }
  auto r = util::http_request(req);
  if (!r) {
    return {0, json(r.error().message)};
  }
  return {r->status, json::parse(r->body, nullptr, false)};
}

json GitopsRig::env_of(const std::string& branch, bool include_destroyed) const {
  auto [status, body] =
      daemon->api("GET", include_destroyed ? "/api/v1/environments?all=true" : "/api/v1/environments");
  if (status != 200) {
    return nullptr;
  }
  for (const auto& e : body["environments"]) {
    if (e.value("branch", "") == branch && e.value("repo", "") == util::absolute_path(remote_path)) {
      return e;
    }
  }
  return nullptr;
}

std::string GitopsRig::wait_env(const std::string& branch, int timeout_ms) const {
  std::string name;
  wait_until(
      [&] {
        json e = env_of(branch);
        if (e.is_object()) {
          name = e["name"];
        }
        return !name.empty();
      },
      timeout_ms, 50);
  return name;
}

bool GitopsRig::wait_ready_at(const std::string& name, const std::string& commit, int timeout_ms) const {
  return wait_until(
      [&] {
        json e = daemon->env(name);
        return e.is_object() && e.value("phase", "") == "ready" && e["deployed_commit"].is_string() &&
               e["deployed_commit"] == commit;
      },
      timeout_ms, 50);
}

json GitopsRig::wait_failed_and_ready(const std::string& name, const std::string& commit, int timeout_ms) const {
  json failed;
  bool done = wait_until(
      [&] {
        json e = daemon->env(name); // one answer: the phase and the revisions together
        if (!e.is_object() || e.value("phase", "") != "ready") {
          return false;
        }
        for (const auto& r : e["revisions"]) {
          if (r["commit"] == commit && r["status"] == "failed") {
            failed = r;
            return true;
          }
        }
        return false;
      },
      timeout_ms, 50);
  return done ? failed : json();
}

json GitopsRig::events(const std::string& env) const {
  auto [status, body] = daemon->api("GET", "/api/v1/environments/" + env + "/events");
  return status == 200 ? body["events"] : json::array();
}

json GitopsRig::all_events() const {
  auto [status, body] = daemon->api("GET", "/api/v1/events");
  return status == 200 ? body["events"] : json::array();
}

json GitopsRig::revisions(const std::string& env) const {
  json e = daemon->env(env);
  return e.is_object() ? e["revisions"] : json::array();
}

json GitopsRig::app_root(const std::string& env) const {
  auto [status, body] = daemon->get_via_router(env, "/");
  if (status != 200) {
    return nullptr;
  }
  return json::parse(body, nullptr, false);
}

std::vector<pid_t> GitopsRig::env_processes(const std::string& env) const {
  std::vector<pid_t> out;
  for (pid_t p : daemon->home_processes()) {
    auto v = util::process_env_value(p, "IDP_ENVIRONMENT");
    if (v && *v == env) {
      out.push_back(p);
    }
  }
  return out;
}

std::string GitopsRig::mirror_lock_path() const {
  // util::GitMirror: <home>/git/<first 16 hex of sha256(url)>.lock, url as the engine stores it.
  return tmp.sub("home") + "/git/" + util::sha256_hex(util::absolute_path(remote_path)).substr(0, 16) + ".lock";
}

bool is_dns_label(const std::string& s) {
  static const std::regex k_label("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$");
  return std::regex_match(s, k_label);
}

std::vector<std::string> find_named(const std::string& dir, const std::string& name) {
  return find_files(dir, [&](const std::filesystem::directory_entry& e) { return e.path().filename() == name; });
}

std::string short_sha(const std::string& sha) { return sha.substr(0, 7); }

} // namespace idp::testing
