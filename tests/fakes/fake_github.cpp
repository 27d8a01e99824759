#include "fakes/fake_github.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "support/test_support.hpp"
#include "util/strings.hpp"

namespace idp::testing {

using nlohmann::json;

FakeGitHub::FakeGitHub() : m_server(std::make_unique<httplib::Server>()) {
  auto record = [this](const httplib::Request& req, httplib::Response& res) -> bool {
    std::lock_guard<std::mutex> g(m_mu);
    Request r;
    r.method = req.method;
    r.path = req.path;
    auto q = req.target.find('?');
    r.query = q == std::string::npos ? "" : req.target.substr(q + 1);
    for (const auto& [k, v] : req.headers) {
      r.headers[util::to_lower(k)] = v;
    }
    r.body = req.body;
    m_requests.push_back(std::move(r));
    if (m_fail_n > 0) {
      m_fail_n -= 1;
      res.status = m_fail_status;
      res.set_content(json{{"message", "scripted failure"}}.dump(), "application/json");
      return false;
    }
    return true;
  };
  m_server->Post(
      R"(/repos/([^/]+)/([^/]+)/statuses/([0-9a-f]+))", [record](const httplib::Request& req, httplib::Response& res) {
        if (!record(req, res)) {
          return;
        }
        auto body = json::parse(req.body);
        res.status = 201;
        res.set_content(json{{"id", 1}, {"state", body["state"]}, {"context", body.value("context", "default")}}.dump(),
                        "application/json");
      });
  m_server->Get(R"(/repos/([^/]+)/([^/]+)/issues/([0-9]+)/comments)", [this, record](const httplib::Request& req,
                                                                                     httplib::Response& res) {
    if (!record(req, res)) {
      return;
    }
    int issue = std::stoi(req.matches[3]);
    size_t per_page = req.has_param("per_page") ? std::stoul(req.get_param_value("per_page")) : 30;
    size_t page = req.has_param("page") ? std::stoul(req.get_param_value("page")) : 1;
    std::vector<Comment> all = comments(issue);
    json out = json::array();
    for (size_t i = (page - 1) * per_page; i < all.size() && i < page * per_page; ++i) {
      out.push_back({{"id", all[i].id}, {"body", all[i].body}});
    }
    if (page * per_page < all.size()) {
      std::string base = url() + req.path + "?per_page=" + std::to_string(per_page) + "&page=";
      res.set_header("Link", "<" + base + std::to_string(page + 1) + ">; rel=\"next\", <" + base +
                                 std::to_string((all.size() + per_page - 1) / per_page) + ">; rel=\"last\"");
    }
    res.status = 200;
    res.set_content(out.dump(), "application/json");
  });
  m_server->Post(R"(/repos/([^/]+)/([^/]+)/issues/([0-9]+)/comments)", [this, record](const httplib::Request& req,
                                                                                      httplib::Response& res) {
    if (!record(req, res)) {
      return;
    }
    int64_t id = add_comment(std::stoi(req.matches[3]), json::parse(req.body).at("body").get<std::string>());
    res.status = 201;
    res.set_content(json{{"id", id}}.dump(), "application/json");
  });
  m_server->Patch(R"(/repos/([^/]+)/([^/]+)/issues/comments/([0-9]+))",
                  [this, record](const httplib::Request& req, httplib::Response& res) {
                    if (!record(req, res)) {
                      return;
                    }
                    int64_t id = std::stoll(req.matches[3]);
                    std::lock_guard<std::mutex> g(m_mu);
                    for (auto& c : m_comments) {
                      if (c.id == id) {
                        c.body = json::parse(req.body).at("body").get<std::string>();
                        res.status = 200;
                        res.set_content(json{{"id", id}}.dump(), "application/json");
                        return;
                      }
                    }
                    res.status = 404;
                    res.set_content(json{{"message", "Not Found"}}.dump(), "application/json");
                  });
  m_port = m_server->bind_to_any_port("127.0.0.1");
  m_thread = std::thread([this] { m_server->listen_after_bind(); });
  // stop() is a no-op until the accept loop runs: wait for it, or the destructor could hang.
  wait_until([this] { return m_server->is_running(); }, 10000, 1);
}

FakeGitHub::~FakeGitHub() {
  m_server->stop();
  if (m_thread.joinable()) {
    m_thread.join();
  }
}

std::string FakeGitHub::url() const { return "http://127.0.0.1:" + std::to_string(m_port); }

void FakeGitHub::fail_next(int n, int status) {
  std::lock_guard<std::mutex> g(m_mu);
  m_fail_n = n;
  m_fail_status = status;
}

int64_t FakeGitHub::add_comment(int issue, const std::string& body) {
  std::lock_guard<std::mutex> g(m_mu);
  m_comments.push_back({m_next_id, issue, body});
  return m_next_id++;
}

void FakeGitHub::delete_comment(int64_t id) {
  std::lock_guard<std::mutex> g(m_mu);
  std::erase_if(m_comments, [id](const Comment& c) { return c.id == id; });
}

std::vector<FakeGitHub::Request> FakeGitHub::requests() const {
  std::lock_guard<std::mutex> g(m_mu);
  return m_requests;
}

std::vector<FakeGitHub::Request> FakeGitHub::requests(const std::string& method, const std::string& path_prefix) const {
  std::lock_guard<std::mutex> g(m_mu);
  std::vector<Request> out;
  for (const auto& r : m_requests) {
    if (r.method == method && r.path.rfind(path_prefix, 0) == 0) {
      out.push_back(r);
    }
  }
  return out;
}

std::vector<FakeGitHub::Comment> FakeGitHub::comments(int issue) const {
  std::lock_guard<std::mutex> g(m_mu);
  std::vector<Comment> out;
  for (const auto& c : m_comments) {
    if (c.issue == issue) {
      out.push_back(c);
    }
  }
  return out;
}

void FakeGitHub::clear_requests() {
  std::lock_guard<std::mutex> g(m_mu);
  m_requests.clear();
}

} // namespace idp::testing
