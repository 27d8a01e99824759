// Issue 16: git failures say which git command failed on which repository and what git
// said, never the credentials of the url.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

using namespace idp;

TEST(GitTest, RedactUrlHidesCredentialsOnly) {
  EXPECT_EQ(util::redact_url("https://user:s3cret@example.com/team/app.git"), "https://***@example.com/team/app.git");
  EXPECT_EQ(util::redact_url("https://x-access-token:ghs_abc@github.com/a/b"), "https://***@github.com/a/b");
  EXPECT_EQ(util::redact_url("https://example.com/team/app.git"), "https://example.com/team/app.git");
  EXPECT_EQ(util::redact_url("git@github.com:team/app.git"), "git@github.com:team/app.git");
  EXPECT_EQ(util::redact_url("/srv/git/app"), "/srv/git/app");
  EXPECT_EQ(util::redact_url("https://example.com/path@v2"), "https://example.com/path@v2");
}

TEST(GitTest, CloneFailureSaysGitCloneUrlFailedWithGitsMessage) {
  idp::testing::TempDir tmp("idp-git-test");
  std::string missing = tmp.sub("no-such-repo");
  util::GitMirror mirror(tmp.sub("cache"), missing);
  auto r = mirror.fetch(30000);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::transient);
  EXPECT_EQ(r.error().message.rfind("git clone " + missing + " failed: fatal: ", 0), 0u) << r.error().message;
  EXPECT_EQ(r.error().message.find("git -c"), std::string::npos) << r.error().message;
  EXPECT_EQ(r.error().message.find("exited with code"), std::string::npos) << r.error().message;
}

TEST(GitTest, FailuresNeverShowTheUrlsCredentials) {
  idp::testing::TempDir tmp("idp-git-test");
  // Nothing listens on port 1: git fails at once, and says so with the url.
  const std::string url = "http://deploy:s3cret-token@127.0.0.1:1/team/app.git";
  util::GitMirror mirror(tmp.sub("cache"), url);
  auto r = mirror.fetch(30000);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message.rfind("git clone http://***@127.0.0.1:1/team/app.git failed: ", 0), 0u)
      << r.error().message;
  EXPECT_EQ(r.error().message.find("s3cret-token"), std::string::npos) << r.error().message;
  auto heads = util::git_ls_remote_heads(url, 30000);
  ASSERT_FALSE(heads.has_value());
  EXPECT_EQ(heads.error().message.rfind("git ls-remote http://***@127.0.0.1:1/team/app.git failed: ", 0), 0u)
      << heads.error().message;
  EXPECT_EQ(heads.error().message.find("s3cret-token"), std::string::npos) << heads.error().message;
}

TEST(GitCredentialTest, CredentialsAreStrippedFromUrlsButNotSshLogins) {
  EXPECT_EQ(util::strip_url_credentials("https://x-access-token:ghs_abc@github.com/a/b.git"),
            "https://github.com/a/b.git");
  EXPECT_EQ(util::strip_url_credentials("https://ghp_token@github.com/a/b"), "https://github.com/a/b");
  EXPECT_EQ(util::strip_url_credentials("https://example.com/path@v2"), "https://example.com/path@v2");
  EXPECT_TRUE(util::url_has_credentials("https://ghp_token@github.com/a/b"));
  EXPECT_TRUE(util::url_has_credentials("ssh://git:pw@host/a"));
  // An ssh login name is no secret: kept as it is, or the clone would log in as nobody.
  for (const char* url : {"ssh://git@github.com/a/b.git", "git@github.com:a/b.git", "/srv/git/app"}) {
    EXPECT_FALSE(util::url_has_credentials(url)) << url;
    EXPECT_EQ(util::strip_url_credentials(url), url);
  }
}

TEST(GitCredentialTest, RememberedCredentialsPersistPrivatelyAndAnswerAskpass) {
  idp::testing::TempDir tmp("idp-git-cred");
  std::string file = tmp.sub("git-credentials.json");
  ASSERT_TRUE(util::use_git_credential_file(file).has_value());
  auto stripped = util::remember_url_credentials("https://alice:p%40ss%3Aword@git.example.com/team/app.git");
  ASSERT_TRUE(stripped.has_value());
  EXPECT_EQ(*stripped, "https://git.example.com/team/app.git");
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string saved = util::read_file(file).value_or("");
  EXPECT_NE(saved.find("p@ss:word"), std::string::npos) << "percent-decoded, as git would send it";

  // Askpass mode answers git's two prompts from the environment it is given.
  int pipefd[2];
  ASSERT_EQ(::pipe(pipefd), 0);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    ::setenv("IDP_GIT_ASKPASS", "1", 1);
    ::setenv("IDP_GIT_USERNAME", "alice", 1);
    ::setenv("IDP_GIT_PASSWORD", "p@ss:word", 1);
    char arg0[] = "idp";
    char user_prompt[] = "Username for 'https://git.example.com': ";
    char pass_prompt[] = "Password for 'https://alice@git.example.com': ";
    char* u[] = {arg0, user_prompt, nullptr};
    char* p[] = {arg0, pass_prompt, nullptr};
    int a = util::git_askpass_main(2, u);
    int b = util::git_askpass_main(2, p);
    ::_exit(a == 0 && b == 0 ? 0 : 1);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[256];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) > 0;) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
  EXPECT_EQ(out, "alice\np@ss:word\n");
  // Not in askpass mode: the normal CLI runs.
  char arg0[] = "idp";
  char* none[] = {arg0, nullptr};
  ::unsetenv("IDP_GIT_ASKPASS");
  EXPECT_EQ(util::git_askpass_main(1, none), -1);
}

// A checkout is the commit's files and nothing else: no `.git` link into the mirror, no
// worktree registered there (git worktree add/prune read every registered one, so each
// cost grew with the number of environments). A worktree of an earlier version is
// unregistered when removed.
TEST(GitCheckoutTest, ACheckoutIsTheCommitsFilesAloneAndRegistersNothingInTheMirror) {
  idp::testing::TempDir tmp("idp-git-test");
  idp::testing::GitRepo repo(tmp.sub("repo"));
  repo.write_file("app/main.js", "console.log(1)\n");
  repo.write_file("README", "one\n");
  std::string first = repo.commit("one");
  repo.remove_file("README");
  repo.write_file("app/main.js", "console.log(2)\n");
  std::string second = repo.commit("two");
  util::GitMirror mirror(tmp.sub("cache"), repo.path());
  ASSERT_TRUE(mirror.fetch());

  std::string dest = tmp.sub("envs/a/rev-1/src");
  ASSERT_TRUE(mirror.checkout(first, dest));
  EXPECT_EQ(util::read_file(dest + "/app/main.js").value_or(""), "console.log(1)\n");
  EXPECT_EQ(util::read_file(dest + "/README").value_or(""), "one\n");
  EXPECT_FALSE(util::path_exists(dest + "/.git"));
  EXPECT_FALSE(util::path_exists(dest + ".index")) << "the checkout's index is removed";
  auto listed = [&] {
    util::Command c;
    c.argv = {"git", "--git-dir", mirror.path(), "worktree", "list", "--porcelain"};
    auto r = util::run(c);
    return r ? r->out : std::string("git failed");
  };
  EXPECT_EQ(listed(), "worktree " + mirror.path() + "\nbare\n\n");

  // Checked out again at another commit: replaced, nothing of the first left.
  ASSERT_TRUE(util::write_file_atomic(dest + "/build-output", "x"));
  ASSERT_TRUE(mirror.checkout(second, dest));
  EXPECT_EQ(util::read_file(dest + "/app/main.js").value_or(""), "console.log(2)\n");
  EXPECT_FALSE(util::path_exists(dest + "/README"));
  EXPECT_FALSE(util::path_exists(dest + "/build-output"));

  ASSERT_TRUE(mirror.remove_checkout(dest));
  EXPECT_FALSE(util::path_exists(dest));
  ASSERT_TRUE(mirror.remove_checkout(dest)) << "removing twice is fine";

  // A worktree an earlier version registered: removed and unregistered.
  std::string legacy = tmp.sub("envs/b/rev-1/src");
  util::Command add;
  add.argv = {"git", "--git-dir", mirror.path(), "worktree", "add", "--detach", "--quiet", legacy, first};
  auto added = util::run(add);
  ASSERT_TRUE(added && added->exit_code == 0) << (added ? added->err : "");
  ASSERT_NE(listed().find(legacy), std::string::npos);
  ASSERT_TRUE(mirror.remove_checkout(legacy));
  EXPECT_FALSE(util::path_exists(legacy));
  EXPECT_EQ(listed().find(legacy), std::string::npos) << listed();
}

// A checkout of a commit the mirror lacks yet fetches it first.
TEST(GitCheckoutTest, ACommitTheMirrorLacksIsFetchedBeforeItIsCheckedOut) {
  idp::testing::TempDir tmp("idp-git-test");
  idp::testing::GitRepo repo(tmp.sub("repo"));
  repo.write_file("a", "1\n");
  repo.commit("one");
  util::GitMirror mirror(tmp.sub("cache"), repo.path());
  ASSERT_TRUE(mirror.fetch());
  repo.write_file("a", "2\n");
  std::string second = repo.commit("two");
  std::string dest = tmp.sub("envs/a/src");
  auto r = mirror.checkout(second, dest);
  ASSERT_TRUE(r) << r.error().full_message();
  EXPECT_EQ(util::read_file(dest + "/a").value_or(""), "2\n");
  EXPECT_FALSE(mirror.checkout("--output=/tmp/x", dest)) << "only a sha reaches git's argv";
  EXPECT_FALSE(mirror.checkout(std::string(40, 'f'), dest)) << "a commit nobody has is an error";
}

namespace {
std::string in_mirror(const util::GitMirror& mirror, const std::vector<std::string>& args) {
  util::Command c;
  c.argv = {"git", "--git-dir", mirror.path()};
  c.argv.insert(c.argv.end(), args.begin(), args.end());
  auto r = util::run(c);
  return r && r->exit_code == 0 ? util::trim(r->out) : std::string("git failed");
}
} // namespace

// fetch_branch updates that one head (cloning first when there is no mirror), says
// not_found for a branch the remote lacks and drops it from the mirror too.
TEST(GitMirrorTest, FetchBranchUpdatesThatHeadAloneAndForgetsABranchTheRemoteDropped) {
  idp::testing::TempDir tmp("idp-git-test");
  idp::testing::GitRepo repo(tmp.sub("repo"));
  repo.write_file("a", "1\n");
  std::string first = repo.commit("one");
  repo.git({"branch", "feature"});
  repo.git({"branch", "other"});
  util::GitMirror mirror(tmp.sub("cache"), repo.path());
  auto cloned = mirror.fetch_branch("feature");
  ASSERT_TRUE(cloned) << cloned.error().full_message();
  EXPECT_EQ(*cloned, first);
  EXPECT_EQ(in_mirror(mirror, {"rev-parse", "refs/heads/other"}), first) << "the clone brings every head";

  repo.checkout("feature");
  repo.write_file("a", "2\n");
  std::string second = repo.commit("two");
  repo.checkout("other");
  repo.write_file("b", "3\n");
  std::string third = repo.commit("three");
  auto fetched = mirror.fetch_branch("feature");
  ASSERT_TRUE(fetched) << fetched.error().full_message();
  EXPECT_EQ(*fetched, second);
  EXPECT_EQ(in_mirror(mirror, {"rev-parse", "refs/heads/other"}), first) << "other heads are left as they were";
  EXPECT_EQ(*mirror.fetch_branch("other"), third);

  repo.checkout("feature");
  repo.git({"branch", "-D", "other"});
  auto gone = mirror.fetch_branch("other");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::not_found);
  EXPECT_NE(gone.error().message.find("branch \"other\" not found"), std::string::npos) << gone.error().message;
  EXPECT_EQ(in_mirror(mirror, {"rev-parse", "--verify", "--quiet", "refs/heads/other"}), "git failed");
  auto bad = mirror.fetch_branch("-x");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_argument);
}

// maintain() is git's automatic housekeeping: past its thresholds (here: more packs than
// gc.autoPackLimit, each fetch keeping its own), the mirror is repacked into one.
TEST(GitMirrorTest, MaintainRepacksPastGitsThresholds) {
  idp::testing::TempDir tmp("idp-git-test");
  idp::testing::GitRepo repo(tmp.sub("repo"));
  repo.write_file("a", "1\n");
  repo.commit("one");
  util::GitMirror mirror(tmp.sub("cache"), repo.path());
  ASSERT_TRUE(mirror.maintain()) << "no mirror yet: nothing to do";
  ASSERT_TRUE(mirror.fetch());
  ASSERT_EQ(in_mirror(mirror, {"config", "fetch.unpackLimit", "1"}), "");
  ASSERT_EQ(in_mirror(mirror, {"config", "gc.autoPackLimit", "2"}), "");
  for (int i = 0; i < 3; ++i) {
    repo.write_file("a", std::to_string(i) + "\n");
    repo.commit("change " + std::to_string(i));
    ASSERT_TRUE(mirror.fetch_branch("main"));
  }
  auto packs = [&] {
    std::string out = in_mirror(mirror, {"count-objects", "-v"});
    size_t at = out.find("packs: ");
    return at == std::string::npos ? -1 : std::atoi(out.c_str() + at + 7);
  };
  ASSERT_GT(packs(), 2) << "the deploy path's fetches leave the packs as they come";
  auto r = mirror.maintain();
  ASSERT_TRUE(r) << r.error().full_message();
  EXPECT_EQ(packs(), 1);
  EXPECT_EQ(in_mirror(mirror, {"rev-parse", "refs/heads/main"}), repo.head());
}

// read_file: the file at a commit, fetching the commit first when the mirror lacks it;
// nullopt for a file the commit does not have; an error for a commit nobody has.
TEST(GitMirrorTest, ReadFileTellsAMissingFileFromAMissingCommit) {
  idp::testing::TempDir tmp("idp-git-test");
  idp::testing::GitRepo repo(tmp.sub("repo"));
  repo.write_file(".idp/config.yml", "ttl: 1d\n");
  std::string first = repo.commit("one");
  util::GitMirror mirror(tmp.sub("cache"), repo.path());
  auto cloned = mirror.read_file(first, ".idp/config.yml");
  ASSERT_TRUE(cloned && *cloned) << "no mirror yet: cloned first";
  EXPECT_EQ(**cloned, "ttl: 1d\n");
  repo.write_file(".idp/config.yml", "ttl: 2d\n");
  std::string second = repo.commit("two");
  auto fetched = mirror.read_file(second, ".idp/config.yml");
  ASSERT_TRUE(fetched && *fetched) << "a commit the mirror lacks is fetched";
  EXPECT_EQ(**fetched, "ttl: 2d\n");
  auto absent = mirror.read_file(second, "nope.txt");
  ASSERT_TRUE(absent);
  EXPECT_FALSE(*absent);
  auto unknown = mirror.read_file(std::string(40, 'e'), ".idp/config.yml");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, ErrorCode::not_found);
  EXPECT_FALSE(mirror.read_file("--help", "x"));
}

// A deploy's git work on a repository of this machine (fetch one branch, read its config,
// check it out) runs in process: with no git program on PATH it still works, and a branch
// the repository dropped is still forgotten. Only the first clone runs git.
TEST(GitMirrorTest, ADeploysGitWorkOnALocalRepositoryStartsNoGitProcess) {
  idp::testing::TempDir tmp("idp-git-test");
  idp::testing::GitRepo repo(tmp.sub("repo"));
  repo.write_file(".idp/config.yml", "ttl: 1d\n");
  repo.commit("one");
  repo.git({"branch", "feature"});
  repo.git({"branch", "doomed"});
  util::GitMirror mirror(tmp.sub("cache"), repo.path());
  ASSERT_TRUE(mirror.fetch_branch("feature")) << "the clone";
  repo.checkout("feature");
  repo.write_file("src/app.js", "console.log(2)\n");
  repo.write_file(".idp/config.yml", "ttl: 2d\n");
  std::string second = repo.commit("two");
  repo.git({"branch", "-D", "doomed"});

  const char* old_path = std::getenv("PATH");
  std::string saved = old_path ? old_path : "";
  ::setenv("PATH", tmp.sub("empty-bin").c_str(), 1); // no git to start
  auto fetched = mirror.fetch_branch("feature");
  auto config = mirror.read_file(second, "./.idp//config.yml");
  auto checked_out = mirror.checkout(second, tmp.sub("co"));
  auto gone = mirror.fetch_branch("doomed");
  auto resolved = mirror.resolve_branch("feature");
  ::setenv("PATH", saved.c_str(), 1);

  ASSERT_TRUE(fetched) << fetched.error().full_message();
  EXPECT_EQ(*fetched, second);
  ASSERT_TRUE(config && *config) << (config ? "no file" : config.error().full_message());
  EXPECT_EQ(**config, "ttl: 2d\n");
  ASSERT_TRUE(checked_out) << checked_out.error().full_message();
  EXPECT_EQ(util::read_file(tmp.sub("co") + "/src/app.js").value_or(""), "console.log(2)\n");
  EXPECT_FALSE(util::path_exists(tmp.sub("co") + "/.git"));
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code, ErrorCode::not_found) << gone.error().full_message();
  ASSERT_TRUE(resolved);
  EXPECT_EQ(*resolved, second);
  EXPECT_EQ(in_mirror(mirror, {"rev-parse", "--verify", "--quiet", "refs/heads/doomed"}), "git failed");
  EXPECT_EQ(in_mirror(mirror, {"rev-parse", "refs/heads/feature"}), second);
  auto outside = mirror.read_file(second, "../repo/.idp/config.yml");
  ASSERT_TRUE(outside);
  EXPECT_FALSE(*outside) << "no path climbs out of the tree";
}

// A hostile repository (anyone can push one) cannot make a checkout write outside its
// directory or plant a .git there: trees with ".git", ".GIT" or ".." entries, or with a
// symlink and a directory of one name (the symlink pointing outside), fail to check out
// with the path named, and nothing appears outside.
TEST(GitCheckoutTest, AHostileTreeWritesNothingOutsideTheCheckoutAndPlantsNoGitDir) {
  idp::testing::TempDir tmp("idp-git-test");
  idp::testing::GitRepo repo(tmp.sub("repo"));
  repo.write_file("ok.txt", "ok\n");
  repo.commit("one");
  std::string outside = tmp.sub("outside");
  ASSERT_TRUE(util::ensure_dir(outside));
  auto git_in = [&](std::vector<std::string> args, const std::string& input) {
    util::Command c;
    c.argv = {"git", "-C", repo.path()};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    util::RunOptions opts;
    opts.stdin_data = input;
    auto r = util::run(c, opts);
    EXPECT_TRUE(r && r->ok()) << util::join(args, " ");
    return r ? util::trim(r->out) : std::string();
  };
  std::string blob = git_in({"hash-object", "-w", "--stdin"}, "echo pwned\n");
  std::string hook_dir = git_in({"mktree"}, "100755 blob " + blob + "\tpost-checkout\n");
  std::string link = git_in({"hash-object", "-w", "--stdin"}, outside);
  std::string pwned_dir = git_in({"mktree"}, "100644 blob " + blob + "\tpwned\n");
  std::vector<std::pair<std::string, std::string>> trees = {
      {".git/hooks/post-checkout",
       "040000 tree " + git_in({"mktree"}, "040000 tree " + hook_dir + "\thooks\n") + "\t.git\n"},
      {".GIT/post-checkout", "040000 tree " + hook_dir + "\t.GIT\n"},
      {"..", "100644 blob " + blob + "\t..\n"},
      {"a", "120000 blob " + link + "\ta\n040000 tree " + pwned_dir + "\ta\n"},
  };
  util::GitMirror mirror(tmp.sub("cache"), repo.path());
  for (const auto& [what, entries] : trees) {
    std::string tree = git_in({"mktree"}, entries + "100644 blob " + blob + "\tok.txt\n");
    std::string commit =
        git_in({"-c", "user.email=a@b", "-c", "user.name=a", "commit-tree", tree, "-m", "hostile"}, "");
    repo.git({"update-ref", "refs/heads/hostile", commit});
    ASSERT_TRUE(mirror.fetch_branch("hostile")) << what;
    std::string dest = tmp.sub("co");
    auto r = mirror.checkout(commit, dest);
    ASSERT_FALSE(r) << what << ": checked out";
    EXPECT_NE(r.error().message.find(what == "a" ? "/co/a" : "'" + what), std::string::npos)
        << r.error().full_message();
    EXPECT_FALSE(util::path_exists(dest + "/.git")) << what;
    EXPECT_FALSE(util::path_exists(dest + "/.GIT")) << what;
    EXPECT_FALSE(util::path_exists(tmp.sub("pwned"))) << what;
    EXPECT_FALSE(util::path_exists(outside + "/pwned")) << what;
  }
}
