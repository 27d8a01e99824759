#include "unit/sources/webhook_examples.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "sources/github_webhook.hpp"
#include "util/fs.hpp"
#include "util/subprocess.hpp"

namespace idp::testing {

using nlohmann::json;

namespace {

const json& index_json() {
  static const json k_index = [] {
    std::ifstream in(webhook_examples_dir() + "/api.github.com/index.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return json::parse(ss.str());
  }();
  return k_index;
}

bool is_branch_ref(const json& p) { return p.value("ref", "").rfind("refs/heads/", 0) == 0; }

} // namespace

std::string webhook_examples_dir() {
#ifdef IDP_WEBHOOK_EXAMPLES_DIR
  std::string dir = IDP_WEBHOOK_EXAMPLES_DIR;
#else
  std::string dir;
#endif
  if (const char* env = std::getenv("IDP_WEBHOOK_EXAMPLES_DIR"); env && *env) {
    dir = env;
  }
  if (dir.empty() || !util::path_exists(dir + "/api.github.com/index.json")) {
    return "";
  }
  return dir;
}

bool webhook_examples_missing_npm() {
  util::Command c;
  c.argv = {"sh", "-c", "command -v npm"};
  auto r = util::run(c);
  return !r || !r->ok();
}

json webhook_example(const std::string& event, const std::function<bool(const json&)>& pred) {
  for (const auto& e : index_json()) {
    if (e.value("name", "") != event) {
      continue;
    }
    for (const auto& ex : e["examples"]) {
      if (!pred || pred(ex)) {
        return ex;
      }
    }
  }
  throw std::runtime_error("no @octokit/webhooks-examples example of " + event + " matches");
}

void point_at(json& payload, const TestRepo& repo) {
  auto& r = payload["repository"];
  auto slash = repo.full_name.find('/');
  r["full_name"] = repo.full_name;
  r["name"] = repo.full_name.substr(slash + 1);
  if (r.contains("owner") && r["owner"].is_object()) {
    r["owner"]["login"] = repo.full_name.substr(0, slash);
  }
  // Every URL field names the test repository; none may still name the example's.
  for (const char* key : {"clone_url", "html_url", "ssh_url", "git_url", "url", "svn_url"}) {
    r[key] = repo.clone_url.empty() ? "https://github.com/" + repo.full_name : repo.clone_url;
  }
}

json push_payload(const TestRepo& repo, const std::string& branch, const std::string& before,
                  const std::string& after) {
  json p = webhook_example("push", [](const json& ex) { return is_branch_ref(ex) && !ex.value("deleted", false); });
  point_at(p, repo);
  p["ref"] = "refs/heads/" + branch;
  p["before"] = before;
  p["after"] = after;
  if (p.contains("head_commit") && p["head_commit"].is_object()) {
    p["head_commit"]["id"] = after;
  }
  return p;
}

json push_deleted_payload(const TestRepo& repo, const std::string& branch, const std::string& before) {
  json p = webhook_example("push", [](const json& ex) { return ex.value("deleted", false); });
  point_at(p, repo);
  p["ref"] = "refs/heads/" + branch;
  p["before"] = before;
  return p;
}

json tag_push_payload(const TestRepo& repo) {
  json p = webhook_example("push", [](const json& ex) {
    return ex.value("ref", "").rfind("refs/tags/", 0) == 0 && !ex.value("deleted", false);
  });
  point_at(p, repo);
  return p;
}

json pull_request_payload(const TestRepo& repo, const std::string& action, int number, const std::string& branch,
                          const std::string& sha, bool merged) {
  json p = webhook_example("pull_request", [&](const json& ex) { return ex.value("action", "") == action; });
  point_at(p, repo);
  p["number"] = number;
  auto& pr = p["pull_request"];
  pr["number"] = number;
  pr["head"]["ref"] = branch;
  pr["head"]["sha"] = sha;
  pr["head"]["repo"]["full_name"] = repo.full_name;
  pr["base"]["repo"]["full_name"] = repo.full_name;
  if (action == "closed") {
    pr["merged"] = merged;
  }
  return p;
}

json fork_pull_request_payload(const TestRepo& repo, const std::string& action, int number,
                               const std::string& fork_full_name, const std::string& branch, const std::string& sha,
                               const std::string& author) {
  json p = pull_request_payload(repo, action, number, branch, sha);
  auto& head_repo = p["pull_request"]["head"]["repo"];
  head_repo["full_name"] = fork_full_name;
  head_repo["name"] = fork_full_name.substr(fork_full_name.find('/') + 1);
  head_repo["fork"] = true;
  p["pull_request"]["head"]["label"] = fork_full_name.substr(0, fork_full_name.find('/')) + ":" + branch;
  p["pull_request"]["user"]["login"] = author;
  p["sender"]["login"] = author;
  return p;
}

json pull_request_comment_payload(const TestRepo& repo, int number, const std::string& login, const std::string& body) {
  json p = webhook_example("issue_comment", [](const json& ex) { return ex.value("action", "") == "created"; });
  point_at(p, repo);
  p["issue"]["number"] = number;
  p["issue"]["pull_request"] = {
      {"url", "https://api.github.com/repos/" + repo.full_name + "/pulls/" + std::to_string(number)}};
  p["comment"]["body"] = body;
  p["comment"]["user"]["login"] = login;
  p["sender"]["login"] = login;
  return p;
}

json delete_payload(const TestRepo& repo, const std::string& ref, const std::string& ref_type) {
  json p = webhook_example("delete");
  point_at(p, repo);
  p["ref"] = ref;
  p["ref_type"] = ref_type; // the published examples are all tag deletions
  return p;
}

json ping_payload(const TestRepo& repo) {
  json p = webhook_example("ping", [](const json& ex) { return ex.contains("repository"); });
  point_at(p, repo);
  return p;
}

std::vector<std::pair<std::string, std::string>> github_headers(const std::string& event, const std::string& delivery,
                                                                const std::string& body, const std::string& secret) {
  std::vector<std::pair<std::string, std::string>> h = {{"X-GitHub-Event", event},
                                                        {"X-GitHub-Delivery", delivery},
                                                        {"Content-Type", "application/json"},
                                                        {"User-Agent", "GitHub-Hookshot/test"}};
  if (!secret.empty()) {
    h.emplace_back("X-Hub-Signature-256", sources::github_signature(secret, body));
  }
  return h;
}

} // namespace idp::testing
