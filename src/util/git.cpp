#include "util/git.hpp"

#include <cerrno>
#include <filesystem>
#include <unistd.h>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::util {

std::map<std::string, std::string> git_safe_env() {
  return {
      {"GIT_TERMINAL_PROMPT", "0"},
      {"GIT_ASKPASS", "true"},
      {"GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh"},
      {"GIT_CONFIG_NOSYSTEM", "1"},
      {"LC_ALL", "C"},
  };
}

bool is_valid_git_branch(std::string_view name) {
  if (name.empty() || name == "@" || name.front() == '-' || name.front() == '/' || name.back() == '/' ||
      name.back() == '.' || ends_with(name, ".lock")) {
    return false;
  }
  if (name.find("..") != std::string_view::npos || name.find("@{") != std::string_view::npos ||
      name.find("//") != std::string_view::npos) {
    return false;
  }
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' || c == '*' ||
        c == '[' || c == '\\') {
      return false;
    }
  }
  for (const auto& comp : split(name, '/')) {
    if (comp.empty() || comp.front() == '.' || ends_with(comp, ".lock")) {
      return false;
    }
  }
  return true;
}

static Command git_cmd(std::vector<std::string> args) {
  Command c;
  c.argv = {"git", "-c", "protocol.ext.allow=never", "-c", "core.hooksPath=/dev/null", "-c", "safe.directory=*"};
  c.argv.insert(c.argv.end(), args.begin(), args.end());
  c.env = git_safe_env();
  return c;
}

// "user:token@" of a url with credentials, "" otherwise (scp-like "git@host:x" names a
// user, not a secret).
static std::string_view userinfo_of(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) {
    return {};
  }
  size_t start = scheme + 3;
  size_t end = url.find_first_of("/?#", start);
  size_t at = url.rfind('@', end == std::string_view::npos ? url.size() : end);
  if (at == std::string_view::npos || at < start) {
    return {};
  }
  return url.substr(start, at + 1 - start);
}

std::string redact_url(std::string_view url) {
  std::string_view info = userinfo_of(url);
  if (info.empty()) {
    return std::string(url);
  }
  size_t pos = static_cast<size_t>(info.data() - url.data());
  return std::string(url.substr(0, pos)) + "***@" + std::string(url.substr(pos + info.size()));
}

// Runs `git <args>` for `verb` on `url`; a failure reads "git <verb> <url> failed: <what git
// said>" (its first fatal:/error: line, else its last line), never with the credentials
// of the url.
static Expected<RunResult> run_git(const std::string& verb, const std::string& url, std::vector<std::string> args,
                                   const RunOptions& opts) {
  IDP_TRY_ASSIGN(RunResult r, run(git_cmd(std::move(args)), opts));
  if (r.ok()) {
    return r;
  }
  std::string said;
  for (const auto& line : split(r.err.empty() ? r.out : r.err, '\n')) {
    std::string t = trim(line);
    if (starts_with(t, "fatal:") || starts_with(t, "error:")) {
      said = t;
      break;
    }
    if (!t.empty()) {
      said = t;
    }
  }
  // git may repeat the url in its message: nothing of the credentials goes out.
  if (std::string info(userinfo_of(url)); !info.empty()) {
    for (size_t pos; (pos = said.find(info)) != std::string::npos;) {
      said.replace(pos, info.size(), "***@");
    }
  }
  std::string head = "git " + verb + " " + redact_url(url);
  if (r.timed_out) {
    return make_error(ErrorCode::timeout, head + " did not finish within " + std::to_string(opts.timeout_ms / 1000) +
                                              "s" + (said.empty() ? "" : ": " + said));
  }
  if (r.cancelled) {
    return make_error(ErrorCode::cancelled, head + " was cancelled");
  }
  if (r.signal) {
    return make_error(ErrorCode::permanent, head + " was killed by signal " + std::to_string(r.signal));
  }
  return make_error(ErrorCode::permanent,
                    head + " failed: " + (said.empty() ? "exit code " + std::to_string(r.exit_code) : said));
}

static Expected<void> check_url(const std::string& url) {
  if (url.empty() || url.front() == '-') {
    return make_error(ErrorCode::invalid_argument, "invalid repository " + quote(url));
  }
  return {};
}

Expected<std::map<std::string, std::string>> git_ls_remote_heads(const std::string& url, int64_t timeout_ms) {
  IDP_TRY(check_url(url));
  RunOptions opts;
  opts.timeout_ms = timeout_ms;
  auto r = run_git("ls-remote", url, {"ls-remote", "--heads", "--", url}, opts);
  if (!r) {
    return Unexpected(Error(ErrorCode::transient, r.error().message));
  }
  std::map<std::string, std::string> heads;
  for (const auto& line : split(r->out, '\n')) {
    auto tab = line.find('\t');
    if (tab == std::string::npos) {
      continue;
    }
    std::string ref = line.substr(tab + 1);
    if (starts_with(ref, "refs/heads/")) {
      heads[ref.substr(11)] = line.substr(0, tab);
    }
  }
  return heads;
}

GitMirror::GitMirror(std::string cache_dir, std::string url) : m_url(std::move(url)) {
  std::string id = sha256_hex(m_url).substr(0, 16);
  m_path = path_join(cache_dir, id + ".git");
  m_lock = path_join(cache_dir, id + ".lock");
}

namespace {
// One in-process mutex per mirror path: flock is per open file description, so threads of
// one process would not exclude each other with it alone.
std::mutex& mirror_mutex(const std::string& path) {
  static std::mutex registry_mutex;
  static std::map<std::string, std::unique_ptr<std::mutex>> registry;
  std::lock_guard<std::mutex> g(registry_mutex);
  auto& m = registry[path];
  if (!m) {
    m = std::make_unique<std::mutex>();
  }
  return *m;
}
} // namespace

// Removes <mirror>.partial.* beside `mirror`: clones of processes that died mid-way.
static Expected<void> remove_partial_clones(const std::string& mirror) {
  std::string dir = mirror.substr(0, mirror.rfind('/'));
  std::string prefix = mirror.substr(mirror.rfind('/') + 1) + ".partial.";
  std::error_code ec;
  std::vector<std::string> stale;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (starts_with(e.path().filename().string(), prefix)) {
      stale.push_back(e.path().string());
    }
  }
  for (const auto& p : stale) {
    IDP_TRY(remove_all(p));
  }
  return {};
}

Expected<void> GitMirror::fetch(int64_t timeout_ms) {
  IDP_TRY(check_url(m_url));
  std::lock_guard<std::mutex> g(mirror_mutex(m_path));
  IDP_TRY(ensure_dir(m_path.substr(0, m_path.rfind('/'))));
  IDP_TRY_ASSIGN(auto lock, FileLock::acquire(m_lock));
  RunOptions opts;
  opts.timeout_ms = timeout_ms;
  if (!path_exists(path_join(m_path, "HEAD"))) {
    // Cloned beside the mirror, then renamed into place: a clone cut short (the daemon
    // killed mid-way) leaves no half-filled mirror that a later fetch would trust. Whatever
    // partial clone is there belongs to a process that died holding the lock (its git may
    // still run, orphaned: it gets its own directory, removed here so it fails).
    std::string partial = m_path + ".partial." + std::to_string(::getpid());
    IDP_TRY(remove_partial_clones(m_path));
    IDP_TRY(remove_all(m_path));
    auto r = run_git("clone", m_url, {"clone", "--bare", "--quiet", "--", m_url, partial}, opts);
    if (!r) {
      return Unexpected(Error(ErrorCode::transient, r.error().message));
    }
    // Bare clones map remote heads to refs/heads/* but set no fetch refspec; add one.
    IDP_TRY(run_checked(git_cmd({"--git-dir", partial, "config", "remote.origin.fetch", "+refs/heads/*:refs/heads/*"})));
    if (::rename(partial.c_str(), m_path.c_str()) != 0) {
      return make_error(ErrorCode::io_error, "cannot move the clone of " + quote(m_url) + " into place at " +
                                                 quote(m_path) + ": " + std::strerror(errno));
    }
    return {};
  }
  auto r = run_git("fetch", m_url,
                   {"--git-dir", m_path, "fetch", "--quiet", "--prune", "--force", "origin", "+refs/heads/*:refs/heads/*"},
                   opts);
  if (!r) {
    return Unexpected(Error(ErrorCode::transient, r.error().message));
  }
  return {};
}

Expected<std::string> GitMirror::resolve_branch(const std::string& branch) {
  if (!is_valid_git_branch(branch)) {
    return make_error(ErrorCode::invalid_argument, "invalid branch name " + quote(branch));
  }
  IDP_TRY_ASSIGN(auto r, run(git_cmd({"--git-dir", m_path, "rev-parse", "--verify", "--quiet",
                                      "refs/heads/" + branch + "^{commit}"})));
  if (!r.ok()) {
    return make_error(ErrorCode::not_found, "branch " + quote(branch) + " not found in " + quote(redact_url(m_url)));
  }
  return trim(r.out);
}

static bool looks_like_sha(const std::string& s) {
  if (s.size() < 7 || s.size() > 64) {
    return false;
  }
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

Expected<void> GitMirror::ensure_commit(const std::string& commit) {
  if (!looks_like_sha(commit)) {
    return make_error(ErrorCode::invalid_argument, "invalid commit " + quote(commit));
  }
  if (path_exists(path_join(m_path, "HEAD"))) {
    IDP_TRY_ASSIGN(auto r, run(git_cmd({"--git-dir", m_path, "cat-file", "-e", commit + "^{commit}"})));
    if (r.ok()) {
      return {};
    }
  }
  IDP_TRY(fetch());
  IDP_TRY_ASSIGN(auto r, run(git_cmd({"--git-dir", m_path, "cat-file", "-e", commit + "^{commit}"})));
  if (!r.ok()) {
    return make_error(ErrorCode::not_found, "commit " + quote(commit) + " not found in " + quote(redact_url(m_url)));
  }
  return {};
}

Expected<std::optional<std::string>> GitMirror::read_file(const std::string& commit, const std::string& path) {
  IDP_TRY(ensure_commit(commit));
  IDP_TRY_ASSIGN(auto r, run(git_cmd({"--git-dir", m_path, "cat-file", "blob", commit + ":" + path})));
  if (!r.ok()) {
    return std::optional<std::string>();
  }
  return std::optional<std::string>(std::move(r.out));
}

Expected<void> GitMirror::add_worktree(const std::string& commit, const std::string& dest) {
  IDP_TRY(ensure_commit(commit));
  std::lock_guard<std::mutex> g(mirror_mutex(m_path));
  IDP_TRY_ASSIGN(auto lock, FileLock::acquire(m_lock));
  if (path_exists(dest)) {
    (void)run(git_cmd({"--git-dir", m_path, "worktree", "remove", "--force", dest}));
    IDP_TRY(remove_all(dest));
  }
  (void)run(git_cmd({"--git-dir", m_path, "worktree", "prune"}));
  IDP_TRY(ensure_dir(dest.substr(0, dest.rfind('/'))));
  auto r = run_checked(git_cmd({"--git-dir", m_path, "worktree", "add", "--detach", "--force", "--quiet", dest, commit}));
  if (!r) {
    return Unexpected(r.error().with_context("cannot check out " + commit.substr(0, 12)));
  }
  return {};
}

Expected<void> GitMirror::remove_worktree(const std::string& dest) {
  std::lock_guard<std::mutex> g(mirror_mutex(m_path));
  if (path_exists(path_join(m_path, "HEAD"))) {
    IDP_TRY_ASSIGN(auto lock, FileLock::acquire(m_lock));
    (void)run(git_cmd({"--git-dir", m_path, "worktree", "remove", "--force", dest}));
    IDP_TRY(remove_all(dest));
    (void)run(git_cmd({"--git-dir", m_path, "worktree", "prune"}));
    return {};
  }
  return remove_all(dest);
}

} // namespace idp::util
