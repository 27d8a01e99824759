#include "util/git_lib.hpp"

#include <git2.h>
#include <memory>
#include <mutex>

#include "util/strings.hpp"

namespace idp::util::libgit {

namespace {

void init_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    // As the git runs: safe.directory=* (the mirrors are the daemon's own; a repository
    // on this machine is read, never configured from) and no system or user config.
    git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
    for (int level :
         {GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG, GIT_CONFIG_LEVEL_GLOBAL, GIT_CONFIG_LEVEL_PROGRAMDATA}) {
      git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, level, "");
    }
  });
}

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
template <typename T, void (*Free)(T*)>
using Owned = std::unique_ptr<T, Deleter<T, Free>>;
using Repo = Owned<git_repository, git_repository_free>;
using Object = Owned<git_object, git_object_free>;
using Commit = Owned<git_commit, git_commit_free>;
using Tree = Owned<git_tree, git_tree_free>;
using Entry = Owned<git_tree_entry, git_tree_entry_free>;
using Blob = Owned<git_blob, git_blob_free>;
using Ref = Owned<git_reference, git_reference_free>;
using Remote = Owned<git_remote, git_remote_free>;

std::string last_message() {
  const git_error* e = git_error_last();
  return e && e->message ? std::string(e->message) : std::string("unknown libgit2 error");
}

Unexpected failure(const std::string& what) { return make_error(ErrorCode::io_error, what + ": " + last_message()); }

Expected<Repo> open(const std::string& path) {
  init_once();
  git_repository* r = nullptr;
  if (git_repository_open_ext(&r, path.c_str(), GIT_REPOSITORY_OPEN_NO_SEARCH | GIT_REPOSITORY_OPEN_BARE, nullptr) !=
      0) {
    return failure("cannot open the git repository " + quote(path));
  }
  return Repo(r);
}

std::string hex(const git_oid* oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, oid);
  return buf;
}

// The commit `commit` (hex, maybe abbreviated) names, strictly as an object id (never a
// ref of that name); null when absent. An id of a tag is peeled to its commit.
Expected<Commit> lookup_commit(git_repository* repo, const std::string& commit) {
  git_oid oid;
  if (commit.empty() || commit.size() > GIT_OID_HEXSZ || git_oid_fromstrn(&oid, commit.data(), commit.size()) != 0) {
    return make_error(ErrorCode::invalid_argument, "invalid commit " + quote(commit));
  }
  git_object* o = nullptr;
  int rc = git_object_lookup_prefix(&o, repo, &oid, commit.size(), GIT_OBJECT_ANY);
  if (rc == GIT_ENOTFOUND) {
    return Commit();
  }
  if (rc != 0) {
    return failure("cannot read commit " + quote(commit));
  }
  Object obj(o);
  git_object* peeled = nullptr;
  if (git_object_peel(&peeled, obj.get(), GIT_OBJECT_COMMIT) != 0) {
    return Commit(); // not a commit (a blob or a tree id)
  }
  return Commit(reinterpret_cast<git_commit*>(peeled));
}

Expected<Commit> require_commit(git_repository* repo, const std::string& commit) {
  IDP_TRY_ASSIGN(auto c, lookup_commit(repo, commit));
  if (!c) {
    return make_error(ErrorCode::not_found, "commit " + quote(commit) + " is not in the mirror");
  }
  return c;
}

} // namespace

bool is_local_url(std::string_view url) { return starts_with(url, "/") || starts_with(url, "file://"); }

Expected<std::optional<std::string>> resolve_ref(const std::string& repo_path, const std::string& ref) {
  IDP_TRY_ASSIGN(auto repo, open(repo_path));
  git_reference* r = nullptr;
  int rc = git_reference_lookup(&r, repo.get(), ref.c_str());
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC) {
    return std::optional<std::string>();
  }
  if (rc != 0) {
    return failure("cannot read " + ref);
  }
  Ref owned(r);
  git_object* o = nullptr;
  if (git_reference_peel(&o, owned.get(), GIT_OBJECT_COMMIT) != 0) {
    return std::optional<std::string>(); // points at no commit
  }
  Object obj(o);
  return std::optional<std::string>(hex(git_object_id(obj.get())));
}

Expected<void> delete_ref(const std::string& repo_path, const std::string& ref) {
  IDP_TRY_ASSIGN(auto repo, open(repo_path));
  int rc = git_reference_remove(repo.get(), ref.c_str());
  if (rc != 0 && rc != GIT_ENOTFOUND) {
    return failure("cannot delete " + ref);
  }
  return {};
}

Expected<bool> has_commit(const std::string& repo_path, const std::string& commit) {
  IDP_TRY_ASSIGN(auto repo, open(repo_path));
  IDP_TRY_ASSIGN(auto c, lookup_commit(repo.get(), commit));
  return c != nullptr;
}

Expected<std::optional<std::string>> read_blob(const std::string& repo_path, const std::string& commit,
                                               const std::string& path) {
  IDP_TRY_ASSIGN(auto repo, open(repo_path));
  IDP_TRY_ASSIGN(auto c, require_commit(repo.get(), commit));
  git_tree* t = nullptr;
  if (git_commit_tree(&t, c.get()) != 0) {
    return failure("cannot read the tree of " + quote(commit));
  }
  Tree tree(t);
  git_tree_entry* e = nullptr;
  int rc = git_tree_entry_bypath(&e, tree.get(), path.c_str());
  if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC) {
    return std::optional<std::string>();
  }
  if (rc != 0) {
    return failure("cannot read " + quote(path) + " at " + quote(commit));
  }
  Entry entry(e);
  if (git_tree_entry_type(entry.get()) != GIT_OBJECT_BLOB) {
    return std::optional<std::string>(); // a directory or a submodule
  }
  git_blob* b = nullptr;
  if (git_blob_lookup(&b, repo.get(), git_tree_entry_id(entry.get())) != 0) {
    return failure("cannot read " + quote(path) + " at " + quote(commit));
  }
  Blob blob(b);
  const auto* data = static_cast<const char*>(git_blob_rawcontent(blob.get()));
  return std::optional<std::string>(std::string(data, static_cast<size_t>(git_blob_rawsize(blob.get()))));
}

Expected<void> checkout(const std::string& repo_path, const std::string& commit, const std::string& dest) {
  IDP_TRY_ASSIGN(auto repo, open(repo_path));
  IDP_TRY_ASSIGN(auto c, require_commit(repo.get(), commit));
  git_checkout_options opts = GIT_CHECKOUT_OPTIONS_INIT;
  // Every file of the tree, written over whatever is there; the mirror's (absent) index
  // is neither read nor written. libgit2 refuses paths that would leave `dest` (.., .git).
  opts.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX | GIT_CHECKOUT_DISABLE_PATHSPEC_MATCH;
  opts.target_directory = dest.c_str();
  if (git_checkout_tree(repo.get(), reinterpret_cast<git_object*>(c.get()), &opts) != 0) {
    return failure("cannot check out " + commit.substr(0, 12) + " at " + quote(dest));
  }
  return {};
}

Expected<std::optional<std::string>> fetch_ref(const std::string& repo_path, const std::string& url,
                                               const std::string& ref) {
  IDP_TRY_ASSIGN(auto repo, open(repo_path));
  git_remote* r = nullptr;
  git_remote_create_options create = GIT_REMOTE_CREATE_OPTIONS_INIT;
  create.repository = repo.get();
  // No url.*.insteadOf rewriting (the URL is the one the user gave; libgit2 1.5 also keeps
  // some 70 KiB for good on each remote whose URL it rewrites) and no default refspec.
  create.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
  if (git_remote_create_with_opts(&r, url.c_str(), &create) != 0) {
    return failure("invalid repository " + quote(url));
  }
  Remote remote(r);
  git_fetch_options opts = GIT_FETCH_OPTIONS_INIT;
  opts.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
  opts.prune = GIT_FETCH_NO_PRUNE;
  if (git_remote_connect(remote.get(), GIT_DIRECTION_FETCH, &opts.callbacks, nullptr, nullptr) != 0) {
    return failure("git fetch " + url + " failed");
  }
  const git_remote_head** heads = nullptr;
  size_t n = 0;
  if (git_remote_ls(&heads, &n, remote.get()) != 0) {
    return failure("git fetch " + url + " failed");
  }
  bool present = false;
  for (size_t i = 0; i < n && !present; ++i) {
    present = ref == heads[i]->name;
  }
  if (!present) {
    return std::optional<std::string>();
  }
  std::string spec = "+" + ref + ":" + ref;
  char* specs[] = {spec.data()};
  git_strarray refspecs{specs, 1};
  if (git_remote_download(remote.get(), &refspecs, &opts) != 0 ||
      git_remote_update_tips(remote.get(), &opts.callbacks, 0, GIT_REMOTE_DOWNLOAD_TAGS_NONE, nullptr) != 0) {
    return failure("git fetch " + url + " failed");
  }
  git_remote_disconnect(remote.get());
  return resolve_ref(repo_path, ref);
}

} // namespace idp::util::libgit
