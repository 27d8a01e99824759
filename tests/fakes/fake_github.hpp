#pragma once
// FakeGitHub: a local HTTP server speaking the few GitHub REST endpoints the notifier uses
// (commit statuses, issue comments with Link-header pagination). It records every request
// and can be told to fail. Thread-safe.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace httplib {
class Server;
}

namespace idp::testing {

class FakeGitHub {
public:
  struct Request {
    std::string method;
    std::string path;                           // without the query
    std::string query;                          // "per_page=100&page=1"
    std::map<std::string, std::string> headers; // names lowercased
    std::string body;
  };
  struct Comment {
    int64_t id = 0;
    int issue = 0;
    std::string body;
  };

  FakeGitHub();
  ~FakeGitHub();

  std::string url() const; // http://127.0.0.1:<port>

  // The next `n` requests get `status` with a GitHub-style error body.
  void fail_next(int n, int status);
  // Adds an existing comment (someone else's, or ours from earlier).
  int64_t add_comment(int issue, const std::string& body);
  void delete_comment(int64_t id);

  std::vector<Request> requests() const;
  std::vector<Request> requests(const std::string& method, const std::string& path_prefix) const;
  std::vector<Comment> comments(int issue) const;
  void clear_requests();

private:
  std::unique_ptr<httplib::Server> m_server;
  std::thread m_thread;
  int m_port = 0;
  mutable std::mutex m_mu;
  std::vector<Request> m_requests;
  std::vector<Comment> m_comments;
  int64_t m_next_id = 1000;
  int m_fail_n = 0;
  int m_fail_status = 500;
};

} // namespace idp::testing
