#pragma once
// Environments' databases in the home's PostgreSQL cluster (the "database" component).
//
// Each environment gets a database and a login role of the same name, idp_<env> (dashes
// become underscores; names past PostgreSQL's 63 bytes keep a prefix and a hash). The role
// owns its database, has no other privilege, and CONNECT on every database we create is
// revoked from PUBLIC, so a role reaches only its own database (pg_hba's `sameuser` says
// the same a second time).
//
// Passwords are never stored: password = HMAC-SHA256(master key, role + salt), where the
// master key is 32 random bytes in <home>/db/master.key (0600, created once) and the salt
// is random and non-secret, kept in the environment's state.json (a re-created
// environment of the same name gets a new password). The password reaches PostgreSQL
// only as a SCRAM verifier computed here, and the app only through its environment.
//
// A seed (`database.seed`, a .sql file of plain SQL: no psql meta-commands, no COPY FROM
// STDIN) is applied once per repository and seed content, into a template database
// idpseed_<hash>, as a dedicated non-superuser role of the same name over TCP. Every
// environment with that seed is then created by cloning it (CREATE DATABASE … TEMPLATE),
// after which REASSIGN OWNED / DROP OWNED hand the seed role's objects to the
// environment's role. Templates are marked IS_TEMPLATE with ALLOW_CONNECTIONS false, so
// nothing can hold a connection that would block a clone; concurrent clones of one
// template are fine (they share a lock). Thread-safe.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drivers/local/env_state.hpp"
#include "drivers/local/postgres_cluster.hpp"
#include "util/expected.hpp"
#include "util/keyed_mutex.hpp"

namespace idp::drivers::local {

// The seed of a new environment database.
struct SeedSource {
  std::string repo;    // repository identity (the seed cache is per repository)
  std::string path;    // database.seed as written in the config
  std::string content; // the file at the deployed commit
};

// "idp_<env>" with '-' → '_'; names longer than 63 bytes become a 50-byte prefix, '_' and
// 8 hex digits of sha256(env).
std::string database_name_for(std::string_view env);
// "idpseed_" + 16 hex digits of sha256(repo, seed content).
std::string seed_template_name(std::string_view repo, std::string_view seed_content);
// True for names database_name_for produces (the prefix "idp_").
bool is_environment_database_name(std::string_view name);
// HMAC-SHA256(key, "idp-db-password" 0 role 0 salt), first 16 bytes as 32 hex digits.
std::string derive_database_password(std::string_view master_key, std::string_view role, std::string_view salt);
// postgresql://role:password@host:port/database (all parts are URL-safe by construction).
std::string database_url(const std::string& host, int port, const std::string& role, const std::string& password,
                         const std::string& database);

class DatabaseManager {
public:
  // `key_path`: <home>/db/master.key. Each environment role gets CONNECTION LIMIT
  // `connection_limit` (one app cannot take every connection of the cluster).
  DatabaseManager(PostgresCluster& cluster, std::string key_path, int connection_limit = 20);

  // Creates what is missing of the environment's database and role (idempotent); a new
  // database is cloned from the seed's template (seeding it first when needed). Returns
  // how the database came to be when this call created it ("cloned from template …"),
  // "" when it existed. `note` receives human lines for the environment log. permanent
  // when the seed fails (with PostgreSQL's message), transient when the server is not
  // reachable.
  Expected<std::string> ensure(const DatabaseRecord& rec, const std::optional<SeedSource>& seed,
                               const std::function<void(const std::string&)>& note);
  // True when the database exists.
  Expected<bool> exists(const std::string& name);
  // DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD and DATABASE_URL for the app.
  Expected<std::map<std::string, std::string>> app_environment(const DatabaseRecord& rec);
  // The role's password (for tests and the app environment only).
  Expected<std::string> password_for(const DatabaseRecord& rec);
  // Drops the database (WITH FORCE: connected apps are disconnected) and the role. ok when
  // neither exists.
  Expected<void> drop(const std::string& name);
  // The size of database `name` in bytes (pg_database_size), 0 when it does not exist.
  // transient when the cluster is not running (it is not started for this).
  Expected<int64_t> size_of(const std::string& name);
  // Environment databases and roles (idp_*) that exist in the cluster.
  Expected<std::set<std::string>> list_environment_databases();
  // Drops template databases of `repo` that no name in `in_use` uses, except the newest
  // (the next environment of the repository clones it).
  Expected<void> prune_templates(const std::string& repo, const std::set<std::string>& in_use);
  // Revokes CONNECT from PUBLIC on the cluster's own databases (postgres, template0/1).
  Expected<void> harden();
  // harden() until it succeeded once for this manager; then ok at once. Holds no lock while
  // it talks to the server.
  Expected<void> harden_once();
  // Runs `hook` at the start of every harden() (a test holds a caller there).
  void set_before_harden_for_test(std::function<void()> hook);

private:
  // The key, read from or created in m_key_path on first use; m_mu guards only m_key, the
  // file is read and written outside it.
  Expected<std::string> master_key();
  Expected<std::string> load_or_create_key() const;
  Expected<void> ensure_role(PgConnection& admin, const std::string& role, const std::string& password);
  // True when this call applied the seed, false when the template was ready.
  Expected<bool> ensure_template(PgConnection& admin, const SeedSource& seed, const std::string& tmpl,
                                 const std::function<void(const std::string&)>& note);
  Expected<void> clone(PgConnection& admin, const DatabaseRecord& rec, const std::string& tmpl);
  Expected<void> drop_template(PgConnection& admin, const std::string& tmpl);

  PostgresCluster& m_cluster;
  std::string m_key_path;
  int m_connection_limit;
  std::mutex m_mu; // guards m_key (memory only: no file I/O under it)
  std::string m_key;
  std::atomic<bool> m_hardened{false};
  std::function<void()> m_before_harden; // set before use, by tests only
  // Per template: seeding and dropping hold it exclusively, clones share it.
  util::KeyedMutex m_template_locks;
};

} // namespace idp::drivers::local
