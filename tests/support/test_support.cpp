#include "support/test_support.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <gtest/gtest.h>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "util/fs.hpp"
#include "util/subprocess.hpp"
#include "util/time.hpp"

namespace idp::testing {

std::string source_dir() {
  const char* s = std::getenv("IDP_SOURCE_DIR");
  if (s && *s) {
    return s;
  }
#ifdef IDP_SOURCE_DIR_DEFAULT
  return IDP_SOURCE_DIR_DEFAULT;
#else
  return ".";
#endif
}

std::string idp_binary() {
  const char* s = std::getenv("IDP_BINARY");
  if (s && *s) {
    return s;
  }
#ifdef IDP_BINARY_DEFAULT
  return IDP_BINARY_DEFAULT;
#else
  return "idp";
#endif
}

TempDir::TempDir(const std::string& prefix) {
  auto d = util::make_temp_dir(prefix);
  if (!d) {
    throw std::runtime_error(d.error().message);
  }
  m_path = *d;
}

std::string TempDir::shared(const std::string& rel) const {
  std::string dir = m_path + "/shared";
  ::chmod(m_path.c_str(), 0711);
  ::mkdir(dir.c_str(), 01777);
  ::chmod(dir.c_str(), 01777); // whatever the umask made of it
  return dir + "/" + rel;
}

TempDir::~TempDir() {
  auto* info = ::testing::UnitTest::GetInstance();
  bool failed = info && info->current_test_info() && info->current_test_info()->result()->Failed();
  if (failed || std::getenv("IDP_KEEP_TEST_DIRS")) {
    std::fprintf(stderr, "test directory kept: %s\n", m_path.c_str());
    return;
  }
  (void)util::remove_all(m_path);
}

static std::string git_in(const std::string& dir, const std::vector<std::string>& args) {
  util::Command c;
  c.argv = {"git", "-C", dir};
  c.argv.insert(c.argv.end(), args.begin(), args.end());
  c.env = {{"GIT_AUTHOR_NAME", "Test"},    {"GIT_AUTHOR_EMAIL", "test@example.com"},
           {"GIT_COMMITTER_NAME", "Test"}, {"GIT_COMMITTER_EMAIL", "test@example.com"},
           {"GIT_CONFIG_NOSYSTEM", "1"},   {"LC_ALL", "C"}};
  auto r = util::run(c);
  if (!r || !r->ok()) {
    throw std::runtime_error("git " + (args.empty() ? "" : args[0]) + " failed: " + (r ? r->err : r.error().message));
  }
  return r->out;
}

GitRepo::GitRepo(std::string dir) : m_dir(std::move(dir)) {
  (void)util::ensure_dir(m_dir);
  git({"init", "--quiet", "--initial-branch=main"});
  git({"config", "commit.gpgsign", "false"});
}

void GitRepo::copy_from(const std::string& src_dir) {
  std::filesystem::copy(src_dir, m_dir,
                        std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
}

void GitRepo::write_file(const std::string& rel, const std::string& content) {
  std::string p = m_dir + "/" + rel;
  (void)util::ensure_dir(std::filesystem::path(p).parent_path().string());
  auto r = util::write_file_atomic(p, content);
  if (!r) {
    throw std::runtime_error(r.error().message);
  }
}

void GitRepo::remove_file(const std::string& rel) { std::filesystem::remove(m_dir + "/" + rel); }

std::string GitRepo::commit(const std::string& message) {
  git({"add", "-A"});
  git({"commit", "--quiet", "--allow-empty", "-m", message});
  return head();
}

void GitRepo::checkout_new_branch(const std::string& branch) { git({"checkout", "--quiet", "-B", branch}); }

void GitRepo::checkout(const std::string& branch) { git({"checkout", "--quiet", branch}); }

std::string GitRepo::head() const {
  std::string out = git({"rev-parse", "HEAD"});
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) {
    out.pop_back();
  }
  return out;
}

std::string GitRepo::git(const std::vector<std::string>& args) const { return git_in(m_dir, args); }

BareRepo::BareRepo(std::string dir) : m_dir(std::move(dir)) {
  (void)util::ensure_dir(m_dir);
  git_in(m_dir, {"init", "--quiet", "--bare", "--initial-branch=main"});
}

void BareRepo::push(const GitRepo& from, const std::string& branch) {
  from.git({"push", "--quiet", "--force", m_dir, "HEAD:refs/heads/" + branch});
}

void BareRepo::delete_branch(const std::string& branch) { git_in(m_dir, {"update-ref", "-d", "refs/heads/" + branch}); }

GitRepo make_example_repo(const std::string& dir, const std::string& example, const std::string& branch) {
  GitRepo repo(dir);
  repo.copy_from(source_dir() + "/examples/" + example);
  repo.commit("example " + example);
  if (branch != "main") {
    repo.checkout_new_branch(branch);
  }
  return repo;
}

bool wait_until(const std::function<bool()>& pred, int timeout_ms, int poll_ms) {
  int64_t deadline = util::steady_ms() + timeout_ms;
  while (true) {
    if (pred()) {
      return true;
    }
    if (util::steady_ms() >= deadline) {
      return pred();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(poll_ms));
  }
}

std::vector<std::string> find_files(const std::string& dir,
                                    const std::function<bool(const std::filesystem::directory_entry&)>& match) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      break;
    }
    if (match(*it)) {
      out.push_back(it->path().string());
    }
  }
  return out;
}

bool router_handshake_reset(const std::string& error_message) {
  return error_message.find("Couldn't connect to server (Connection reset by peer)") != std::string::npos;
}

std::map<std::string, double> prometheus_samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    auto space = line.rfind(' ');
    EXPECT_NE(space, std::string::npos) << "a sample without a value: " << line;
    if (space != std::string::npos) {
      out[line.substr(0, space)] = std::stod(line.substr(space + 1));
    }
  }
  return out;
}

} // namespace idp::testing
