#include "util/git.hpp"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <unistd.h>

#include "util/fs.hpp"
#include "util/git_lib.hpp"
#include "util/hash.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/keyed_mutex.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::util {

std::map<std::string, std::string> git_safe_env() {
  return {
      {"GIT_TERMINAL_PROMPT", "0"}, {"GIT_ASKPASS", "true"}, {"GIT_ALLOW_PROTOCOL", "file:git:http:https:ssh"},
      {"GIT_CONFIG_NOSYSTEM", "1"}, {"LC_ALL", "C"},
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
    if (c < 0x20 || c == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' || c == '*' || c == '[' ||
        c == '\\') {
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

// "user:token@" of a url with credentials, "" otherwise. Paths and scp-like "git@host:x"
// carry none, and neither does an ssh:// user without a password ("ssh://git@host/x" names
// a login); for http(s) and git:// the user name alone is often the token.
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
  std::string_view info = url.substr(start, at + 1 - start);
  std::string scheme_name = to_lower(url.substr(0, scheme));
  bool ssh = scheme_name == "ssh" || scheme_name == "git+ssh" || scheme_name == "ssh+git";
  if (ssh && info.find(':') == std::string_view::npos) {
    return {};
  }
  return info;
}

std::string strip_url_credentials(std::string_view url) {
  std::string_view info = userinfo_of(url);
  if (info.empty()) {
    return std::string(url);
  }
  size_t pos = static_cast<size_t>(info.data() - url.data());
  return std::string(url.substr(0, pos)) + std::string(url.substr(pos + info.size()));
}

bool url_has_credentials(std::string_view url) { return !userinfo_of(url).empty(); }

namespace {
struct GitCredential {
  std::string user;
  std::string password;
};

struct CredentialRegistry {
  std::mutex mutex;
  std::map<std::string, GitCredential> by_url; // stripped URL → credential
  std::string file;                            // "" = memory only
};

CredentialRegistry& credentials() {
  static CredentialRegistry r;
  return r;
}

// Called with the registry's mutex held.
Expected<void> save_credentials(const CredentialRegistry& r) {
  if (r.file.empty()) {
    return {};
  }
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [url, c] : r.by_url) {
    j[url] = {{"user", c.user}, {"password", c.password}};
  }
  return write_file_atomic(r.file, json_dump(j), 0600);
}

std::optional<GitCredential> credential_for(const std::string& url) {
  auto& r = credentials();
  std::lock_guard<std::mutex> g(r.mutex);
  auto it = r.by_url.find(url);
  if (it == r.by_url.end()) {
    return std::nullopt;
  }
  return it->second;
}
} // namespace

Expected<std::string> remember_url_credentials(std::string_view url) {
  std::string_view info = userinfo_of(url);
  std::string stripped = strip_url_credentials(url);
  if (info.empty()) {
    return stripped;
  }
  info.remove_suffix(1); // the '@'
  GitCredential c;
  size_t colon = info.find(':');
  c.user = url_decode(info.substr(0, colon), false);
  c.password = colon == std::string_view::npos ? "" : url_decode(info.substr(colon + 1), false);
  auto& r = credentials();
  std::lock_guard<std::mutex> g(r.mutex);
  r.by_url[stripped] = c;
  IDP_TRY(save_credentials(r));
  return stripped;
}

Expected<void> use_git_credential_file(const std::string& path) {
  auto& r = credentials();
  std::lock_guard<std::mutex> g(r.mutex);
  r.file = path;
  if (!path_exists(path)) {
    return {};
  }
  IDP_TRY_ASSIGN(std::string text, read_file(path));
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) {
    return make_error(ErrorCode::invalid_config,
                      quote(path) + ": expected a JSON object of remembered git credentials");
  }
  for (const auto& [url, c] : j.items()) {
    if (c.is_object()) {
      r.by_url[url] = GitCredential{c.value("user", ""), c.value("password", "")};
    }
  }
  return {};
}

int git_askpass_main(int argc, char** argv) {
  const char* mode = std::getenv("IDP_GIT_ASKPASS");
  if (!mode || std::string_view(mode) != "1") {
    return -1;
  }
  std::string_view prompt = argc > 1 ? argv[1] : "";
  const char* value = std::getenv(starts_with(prompt, "Username") ? "IDP_GIT_USERNAME" : "IDP_GIT_PASSWORD");
  std::string line = std::string(value ? value : "") + "\n";
  return ::write(1, line.data(), line.size()) == static_cast<ssize_t>(line.size()) ? 0 : 1;
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
  Command cmd = git_cmd(std::move(args));
  if (auto cred = credential_for(url)) {
    // git asks this binary (askpass mode) for the user and password; they travel in the
    // child's environment (readable only by the daemon's user), never on a command line.
    std::error_code ec;
    std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    if (!ec && !self.empty()) {
      cmd.env["GIT_ASKPASS"] = self;
      cmd.env["IDP_GIT_ASKPASS"] = "1";
      cmd.env["IDP_GIT_USERNAME"] = cred->user;
      cmd.env["IDP_GIT_PASSWORD"] = cred->password;
    }
  }
  IDP_TRY_ASSIGN(RunResult r, run(cmd, opts));
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
// One in-process lock per mirror path: flock is per open file description, so threads of
// one process would not exclude each other with it alone.
KeyedMutex& mirror_locks() {
  static KeyedMutex locks;
  return locks;
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

static Unexpected branch_not_found(const std::string& branch, const std::string& url) {
  return make_error(ErrorCode::not_found, "branch " + quote(branch) + " not found in " + quote(redact_url(url)));
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

Expected<void> GitMirror::fetch(int64_t timeout_ms) {
  IDP_TRY(check_url(m_url));
  auto g = mirror_locks().lock(m_path);
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
    IDP_TRY(
        run_checked(git_cmd({"--git-dir", partial, "config", "remote.origin.fetch", "+refs/heads/*:refs/heads/*"})));
    if (::rename(partial.c_str(), m_path.c_str()) != 0) {
      return make_error(ErrorCode::io_error, "cannot move the clone of " + quote(m_url) + " into place at " +
                                                 quote(m_path) + ": " + std::strerror(errno));
    }
    return {};
  }
  auto r = run_git(
      "fetch", m_url,
      {"--git-dir", m_path, "fetch", "--quiet", "--prune", "--force", "origin", "+refs/heads/*:refs/heads/*"}, opts);
  if (!r) {
    return Unexpected(Error(ErrorCode::transient, r.error().message));
  }
  return {};
}

Expected<std::string> GitMirror::fetch_branch(const std::string& branch, int64_t timeout_ms) {
  if (!is_valid_git_branch(branch)) {
    return make_error(ErrorCode::invalid_argument, "invalid branch name " + quote(branch));
  }
  if (!path_exists(path_join(m_path, "HEAD"))) {
    IDP_TRY(fetch(timeout_ms)); // the clone brings every head
    return resolve_branch(branch);
  }
  const std::string ref = "refs/heads/" + branch;
  auto g = mirror_locks().lock(m_path);
  IDP_TRY_ASSIGN(auto lock, FileLock::acquire(m_lock));
  if (libgit::is_local_url(m_url)) {
    // A repository on this machine: fetched in process (git fetch would start git,
    // upload-pack and rev-list, about 50 ms before the first byte moves).
    auto head = libgit::fetch_ref(m_path, m_url, ref);
    if (!head) {
      return Unexpected(Error(ErrorCode::transient, head.error().message));
    }
    if (!*head) {
      IDP_TRY(libgit::delete_ref(m_path, ref));
      return branch_not_found(branch, m_url);
    }
    return **head;
  }
  RunOptions opts;
  opts.timeout_ms = timeout_ms;
  auto r = run_git("fetch", m_url,
                   {"--git-dir", m_path, "fetch", "--quiet", "--force", "--no-tags", "--no-auto-maintenance", "origin",
                    "+" + ref + ":" + ref},
                   opts);
  if (!r) {
    bool missing = r.error().message.find("find remote ref") != std::string::npos;
    if (missing) {
      // Gone from the remote: so it is from the mirror (what a full fetch's prune does).
      (void)run(git_cmd({"--git-dir", m_path, "update-ref", "-d", ref}));
      return branch_not_found(branch, m_url);
    }
    return Unexpected(Error(ErrorCode::transient, r.error().message));
  }
  return resolve_branch(branch);
}

Expected<void> GitMirror::maintain(int64_t timeout_ms) {
  if (!path_exists(path_join(m_path, "HEAD"))) {
    return {};
  }
  auto g = mirror_locks().lock(m_path);
  IDP_TRY_ASSIGN(auto lock, FileLock::acquire(m_lock));
  RunOptions opts;
  opts.timeout_ms = timeout_ms;
  // In the foreground (gc detaches by default): done under the lock, and done when this returns.
  IDP_TRY(run_checked(
      git_cmd({"-c", "gc.autoDetach=false", "--git-dir", m_path, "maintenance", "run", "--auto", "--quiet"}), opts));
  return {};
}

Expected<std::string> GitMirror::fetch_pull_head(int number, int64_t timeout_ms) {
  if (number <= 0) {
    return make_error(ErrorCode::invalid_argument, "invalid pull request number " + std::to_string(number));
  }
  if (!path_exists(path_join(m_path, "HEAD"))) {
    IDP_TRY(fetch(timeout_ms));
  }
  const std::string ref = "refs/pull/" + std::to_string(number) + "/head";
  {
    auto g = mirror_locks().lock(m_path);
    IDP_TRY_ASSIGN(auto lock, FileLock::acquire(m_lock));
    RunOptions opts;
    opts.timeout_ms = timeout_ms;
    auto r = run_git("fetch", m_url,
                     {"--git-dir", m_path, "fetch", "--quiet", "--force", "origin", "+" + ref + ":" + ref}, opts);
    if (!r) {
      // git says "couldn't find remote ref" for a pull request the remote does not have.
      bool missing = r.error().message.find("find remote ref") != std::string::npos;
      return Unexpected(Error(missing ? ErrorCode::not_found : ErrorCode::transient, r.error().message));
    }
  }
  IDP_TRY_ASSIGN(auto head, libgit::resolve_ref(m_path, ref));
  if (!head) {
    return make_error(ErrorCode::not_found, ref + " not found in " + quote(redact_url(m_url)));
  }
  return *head;
}

Expected<std::string> GitMirror::resolve_branch(const std::string& branch) {
  if (!is_valid_git_branch(branch)) {
    return make_error(ErrorCode::invalid_argument, "invalid branch name " + quote(branch));
  }
  if (!path_exists(path_join(m_path, "HEAD"))) {
    return branch_not_found(branch, m_url);
  }
  IDP_TRY_ASSIGN(auto head, libgit::resolve_ref(m_path, "refs/heads/" + branch));
  if (!head) {
    return branch_not_found(branch, m_url);
  }
  return *head;
}

Expected<void> GitMirror::ensure_commit(const std::string& commit) {
  if (!looks_like_sha(commit)) {
    return make_error(ErrorCode::invalid_argument, "invalid commit " + quote(commit));
  }
  if (path_exists(path_join(m_path, "HEAD"))) {
    IDP_TRY_ASSIGN(bool present, libgit::has_commit(m_path, commit));
    if (present) {
      return {};
    }
  }
  IDP_TRY(fetch());
  IDP_TRY_ASSIGN(bool present, libgit::has_commit(m_path, commit));
  if (!present) {
    return make_error(ErrorCode::not_found, "commit " + quote(commit) + " not found in " + quote(redact_url(m_url)));
  }
  return {};
}

// `path` as a path in a tree ("./a//b/" → "a/b"); nullopt when it climbs out ("..").
static std::optional<std::string> tree_path(const std::string& path) {
  std::string out;
  for (const auto& part : split(path, '/')) {
    if (part.empty() || part == ".") {
      continue;
    }
    if (part == "..") {
      return std::nullopt;
    }
    out += (out.empty() ? "" : "/") + part;
  }
  return out;
}

Expected<std::optional<std::string>> GitMirror::read_file(const std::string& commit, const std::string& path) {
  if (!looks_like_sha(commit)) {
    return make_error(ErrorCode::invalid_argument, "invalid commit " + quote(commit));
  }
  auto in_tree = tree_path(path);
  if (!in_tree) {
    return std::optional<std::string>(); // no file of the tree is outside it
  }
  // Read at once (the commit was almost always just fetched); fetched first only when the
  // commit is not there, which tells a missing file from a missing commit.
  if (path_exists(path_join(m_path, "HEAD"))) {
    auto blob = libgit::read_blob(m_path, commit, *in_tree);
    if (blob || blob.error().code != ErrorCode::not_found) {
      return blob;
    }
  }
  IDP_TRY(ensure_commit(commit));
  return libgit::read_blob(m_path, commit, *in_tree);
}

Expected<std::string> GitMirror::archive(const std::string& commit, const std::string& dir, size_t max_bytes) {
  IDP_TRY(ensure_commit(commit));
  std::string d = dir;
  while (starts_with(d, "./")) {
    d.erase(0, 2);
  }
  while (!d.empty() && d.back() == '/') {
    d.pop_back();
  }
  if (d == ".") {
    d.clear();
  }
  IDP_TRY_ASSIGN(auto kind, run(git_cmd({"--git-dir", m_path, "cat-file", "-t", commit + ":" + d})));
  if (!kind.ok() || trim(kind.out) != "tree") {
    return make_error(ErrorCode::not_found,
                      "directory " + quote(d.empty() ? "." : d) + " is not in commit " + short_commit(commit, 12));
  }
  RunOptions opts;
  opts.max_capture = max_bytes + 1; // one byte more than allowed says it was over
  opts.timeout_ms = 120000;
  // The commit, not its tree: git stamps the files with the commit's time (a tree gets the
  // current time), so the same commit always gives the same bytes. Literal pathspecs: a
  // directory named ":(glob)…" is a name, not magic.
  std::vector<std::string> args = {"--literal-pathspecs", "--git-dir", m_path, "archive", "--format=tar.gz", commit};
  if (!d.empty()) {
    args.insert(args.end(), {"--", d});
  }
  IDP_TRY_ASSIGN(auto r, run(git_cmd(std::move(args)), opts));
  if (!r.ok()) {
    return make_error(ErrorCode::io_error, "git archive of " + quote(d.empty() ? "." : d) + " at " +
                                               short_commit(commit, 12) + " failed: " + trim(r.err));
  }
  if (r.out.size() > max_bytes) {
    return make_error(ErrorCode::too_large, "the files of " + quote(d.empty() ? "." : d) + " at " +
                                                short_commit(commit, 12) + " are over " + std::to_string(max_bytes) +
                                                " bytes compressed");
  }
  return std::move(r.out);
}

Expected<void> GitMirror::checkout(const std::string& commit, const std::string& dest) {
  if (!looks_like_sha(commit)) {
    return make_error(ErrorCode::invalid_argument, "invalid commit " + quote(commit));
  }
  IDP_TRY(remove_checkout(dest));
  IDP_TRY(ensure_dir(dest));
  // Almost always the commit was just fetched: check it out at once, and fetch only when
  // it is not there. In process, with no index: checkouts of one mirror never meet.
  if (path_exists(path_join(m_path, "HEAD"))) {
    auto r = libgit::checkout(m_path, commit, dest);
    if (r || r.error().code != ErrorCode::not_found) {
      return r;
    }
  }
  IDP_TRY(ensure_commit(commit));
  return libgit::checkout(m_path, commit, dest);
}

Expected<void> GitMirror::remove_checkout(const std::string& dest) {
  const std::string link = path_join(dest, ".git");
  if (path_exists(link) && !is_directory(link) && path_exists(path_join(m_path, "HEAD"))) {
    // A worktree of an earlier version: unregistered, so the mirror keeps no entry for it.
    auto g = mirror_locks().lock(m_path);
    IDP_TRY_ASSIGN(auto lock, FileLock::acquire(m_lock));
    (void)run(git_cmd({"--git-dir", m_path, "worktree", "remove", "--force", dest}));
    IDP_TRY(remove_all(dest));
    (void)run(git_cmd({"--git-dir", m_path, "worktree", "prune"}));
    return {};
  }
  return remove_all(dest);
}

} // namespace idp::util
