#pragma once
// Helpers shared by tests: temporary homes, real git repositories, polling.

#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace idp::testing {

// Root of the source tree (IDP_SOURCE_DIR, set by CTest).
std::string source_dir();
// Path of the built idp binary (IDP_BINARY, set by CTest).
std::string idp_binary();

// A temporary directory: removed when the test passed, kept (path printed) when it failed.
class TempDir {
public:
  explicit TempDir(const std::string& prefix = "idp-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return m_path; }
  std::string sub(const std::string& rel) const { return m_path + "/" + rel; }
  // <dir>/shared: a directory an isolated environment's uid may use too (mode 1777, the
  // test directory searchable), for files a test exchanges with a command it runs there
  // (`idp exec` writes a marker, reads a fifo). Created on first use.
  std::string shared(const std::string& rel) const;

private:
  std::string m_path;
};

// A real git repository on disk (non-bare, default branch "main").
class GitRepo {
public:
  // Initialises a repository at `dir` (created if missing).
  explicit GitRepo(std::string dir);
  const std::string& path() const { return m_dir; }

  // Copies a directory tree (e.g. examples/api-service) into the work tree.
  void copy_from(const std::string& src_dir);
  void write_file(const std::string& rel, const std::string& content);
  void remove_file(const std::string& rel);
  // Commits everything; returns the commit sha.
  std::string commit(const std::string& message);
  // Creates (or resets) `branch` at HEAD and checks it out.
  void checkout_new_branch(const std::string& branch);
  void checkout(const std::string& branch);
  std::string head() const;
  // git <args...> in the repository; throws on failure.
  std::string git(const std::vector<std::string>& args) const;

private:
  std::string m_dir;
};

// A bare repository that a GitRepo pushes to (the "remote" of GitOps tests).
class BareRepo {
public:
  explicit BareRepo(std::string dir);
  const std::string& path() const { return m_dir; }
  // Pushes `branch` of `from` (force).
  void push(const GitRepo& from, const std::string& branch);
  void delete_branch(const std::string& branch);

private:
  std::string m_dir;
};

// Example app at examples/<name> committed into a fresh repo at `dir` on `branch`.
GitRepo make_example_repo(const std::string& dir, const std::string& example = "api-service",
                          const std::string& branch = "main");

// Every path under `dir` (recursively, unreadable directories skipped) that `match` accepts.
std::vector<std::string> find_files(const std::string& dir,
                                    const std::function<bool(const std::filesystem::directory_entry&)>& match);

// Polls `pred` every `poll_ms` until it is true or `timeout_ms` passes. Returns pred's last value.
bool wait_until(const std::function<bool()>& pred, int timeout_ms, int poll_ms = 20);

// Every sample of a Prometheus text exposition, as a scraper reads it: "name{labels}" →
// value. A sample line without a value fails the calling test.
std::map<std::string, double> prometheus_samples(const std::string& text);

// The one failure a route change may cause (docs/gitops.md, "Redeploys without downtime"):
// a connection whose handshake is under way in the microseconds in which Caddy swaps its
// listening socket is reset (util::http_request says "Couldn't connect to server
// (Connection reset by peer)"). A refused connection, an error status or a reset after
// the handshake is not this.
bool router_handshake_reset(const std::string& error_message);

} // namespace idp::testing
