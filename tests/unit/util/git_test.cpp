// Issue 16: git failures say which git command failed on which repository and what git
// said, never the credentials of the url.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/git.hpp"
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
