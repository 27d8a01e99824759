#include "drivers/local/databases.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "util/failpoint.hpp"
#include "util/fs.hpp"
#include "util/hash.hpp"
#include "util/json.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::drivers::local {

namespace {

constexpr size_t k_max_identifier = 63;
constexpr const char* k_env_prefix = "idp_";
constexpr const char* k_template_prefix = "idpseed_";
// How long one seed statement may run.
constexpr const char* k_seed_statement_timeout = "-c statement_timeout=900000";
constexpr int k_clone_attempts = 6;

bool is_busy_error(const Error& e) { return e.message.find("is being accessed by other users") != std::string::npos; }

} // namespace

std::string database_name_for(std::string_view env) {
  std::string name = std::string(k_env_prefix) + std::string(env);
  std::replace(name.begin(), name.end(), '-', '_');
  if (name.size() <= k_max_identifier) {
    return name;
  }
  return name.substr(0, 50) + "_" + util::sha256_hex(env).substr(0, 8);
}

std::string seed_template_name(std::string_view repo, std::string_view seed_content) {
  std::string key = std::string(repo) + '\0' + std::string(seed_content);
  return std::string(k_template_prefix) + util::sha256_hex(key).substr(0, 16);
}

bool is_environment_database_name(std::string_view name) { return util::starts_with(name, k_env_prefix); }

std::string derive_database_password(std::string_view master_key, std::string_view role, std::string_view salt) {
  std::string data = "idp-db-password";
  data += '\0';
  data += role;
  data += '\0';
  data += salt;
  return util::to_hex(util::hmac_sha256_raw(master_key, data).substr(0, 16));
}

std::string database_url(const std::string& host, int port, const std::string& role, const std::string& password,
                         const std::string& database) {
  return "postgresql://" + role + ":" + password + "@" + host + ":" + std::to_string(port) + "/" + database;
}

DatabaseManager::DatabaseManager(PostgresCluster& cluster, std::string key_path, int connection_limit)
    : m_cluster(cluster), m_key_path(std::move(key_path)), m_connection_limit(connection_limit) {}

Expected<std::string> DatabaseManager::master_key() {
  {
    std::lock_guard<std::mutex> g(m_mu);
    if (!m_key.empty()) {
      return m_key;
    }
  }
  // The file is read (or created) outside the mutex (STYLE 33): two first callers may both
  // get here, and create_key_file makes sure they end up with the same key.
  IDP_TRY_ASSIGN(std::string key, load_or_create_key());
  std::lock_guard<std::mutex> g(m_mu);
  if (m_key.empty()) {
    m_key = key;
  }
  return m_key;
}

Expected<std::string> DatabaseManager::load_or_create_key() const {
  auto text = util::read_file(m_key_path);
  if (!text) {
    std::string dir = m_key_path.substr(0, m_key_path.rfind('/'));
    IDP_TRY(util::ensure_dir(dir, 0700));
    // Written in full under a name of its own, then linked to master.key, which fails when
    // master.key exists: of two racing creators (or a daemon's secret store) the first one
    // wins and the other reads its key, so no password is ever derived from a key that a
    // second writer then replaces.
    std::string tmp = m_key_path + "." + util::random_hex(6) + ".new";
    auto written = util::write_file_atomic(tmp, util::random_hex(32) + "\n", 0600);
    int linked = written ? ::link(tmp.c_str(), m_key_path.c_str()) : -1;
    int link_errno = errno;
    (void)::unlink(tmp.c_str()); // a leftover would only be a stray file: the key is master.key
    if (!written) {
      return Unexpected(written.error());
    }
    if (linked != 0 && link_errno != EEXIST) {
      return make_error(ErrorCode::io_error, "cannot create the database master key " + util::quote(m_key_path) + ": " +
                                                 std::strerror(link_errno));
    }
    text = util::read_file(m_key_path);
    if (!text) {
      return Unexpected(text.error());
    }
  }
  std::string key = util::trim(*text);
  if (key.size() != 64) {
    return make_error(ErrorCode::permanent, "malformed database master key " + util::quote(m_key_path) +
                                                " (expected 64 hex digits); restore it, or remove it and re-create the "
                                                "environments that have databases");
  }
  return key;
}

Expected<std::string> DatabaseManager::password_for(const DatabaseRecord& rec) {
  IDP_TRY_ASSIGN(std::string key, master_key());
  return derive_database_password(key, rec.name, rec.salt);
}

Expected<std::map<std::string, std::string>> DatabaseManager::app_environment(const DatabaseRecord& rec) {
  IDP_TRY_ASSIGN(std::string password, password_for(rec));
  std::string port = std::to_string(m_cluster.port());
  return std::map<std::string, std::string>{
      {"DB_HOST", "127.0.0.1"},
      {"DB_PORT", port},
      {"DB_NAME", rec.name},
      {"DB_USER", rec.name},
      {"DB_PASSWORD", password},
      {"DATABASE_URL", database_url("127.0.0.1", m_cluster.port(), rec.name, password, rec.name)},
      // libpq's own variables, so `idp exec <env> -- psql` just works.
      {"PGHOST", "127.0.0.1"},
      {"PGPORT", port},
      {"PGDATABASE", rec.name},
      {"PGUSER", rec.name},
      {"PGPASSWORD", password},
  };
}

Expected<void> DatabaseManager::ensure_role(PgConnection& admin, const std::string& role, const std::string& password) {
  IDP_TRY_ASSIGN(std::string ident, admin.identifier(role));
  IDP_TRY_ASSIGN(std::string verifier, admin.scram_verifier(password, role));
  IDP_TRY_ASSIGN(std::string secret, admin.literal(verifier));
  IDP_TRY_ASSIGN(auto rows, admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", {role}, "look up role"));
  std::string limit = " CONNECTION LIMIT " + std::to_string(m_connection_limit);
  if (rows.empty()) {
    return admin.exec("CREATE ROLE " + ident + " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS" +
                          limit + " PASSWORD " + secret,
                      "create role " + util::quote(role));
  }
  return admin.exec("ALTER ROLE " + ident + " LOGIN" + limit + " PASSWORD " + secret,
                    "set the password of role " + util::quote(role));
}

Expected<void> DatabaseManager::drop_template(PgConnection& admin, const std::string& tmpl) {
  IDP_TRY_ASSIGN(std::string ident, admin.identifier(tmpl));
  IDP_TRY_ASSIGN(auto rows, admin.query("SELECT 1 FROM pg_database WHERE datname = $1", {tmpl}, "look up template"));
  if (!rows.empty()) {
    IDP_TRY(admin.exec("ALTER DATABASE " + ident + " WITH IS_TEMPLATE false", "unmark template " + util::quote(tmpl)));
    IDP_TRY(admin.exec("DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)", "drop template " + util::quote(tmpl)));
  }
  if (auto r = admin.exec("DROP ROLE IF EXISTS " + ident, "drop seed role " + util::quote(tmpl)); !r) {
    spdlog::warn("local driver: {}", r.error().message);
  }
  return {};
}

Expected<bool> DatabaseManager::ensure_template(PgConnection& admin, const SeedSource& seed, const std::string& tmpl,
                                                const std::function<void(const std::string&)>& note) {
  IDP_TRY_ASSIGN(auto rows,
                 admin.query("SELECT datistemplate FROM pg_database WHERE datname = $1", {tmpl}, "look up template"));
  if (!rows.empty() && rows[0][0] == std::optional<std::string>("t")) {
    return false; // seeded already: IS_TEMPLATE is set only once the seed succeeded
  }
  if (!rows.empty()) {
    note("removing the half-seeded template database " + tmpl + " (an earlier seed was interrupted)");
    IDP_TRY(drop_template(admin, tmpl));
  }
  IDP_TRY_ASSIGN(std::string key, master_key());
  std::string seed_password = derive_database_password(key, tmpl, "seed");
  IDP_TRY(ensure_role(admin, tmpl, seed_password));
  IDP_TRY_ASSIGN(std::string ident, admin.identifier(tmpl));
  nlohmann::json info = {
      {"repo", seed.repo}, {"seed", seed.path}, {"created_at", util::SystemClock().now_ms()}, {"by", "idp"}};
  IDP_TRY_ASSIGN(std::string comment, admin.literal(util::json_dump(info)));
  IDP_TRY(admin.exec("CREATE DATABASE " + ident + " TEMPLATE template0", "create template " + util::quote(tmpl)));
  IDP_TRY(admin.exec("REVOKE CONNECT, TEMPORARY ON DATABASE " + ident +
                         " FROM PUBLIC; GRANT CONNECT, CREATE, "
                         "TEMPORARY ON DATABASE " +
                         ident + " TO " + ident + "; COMMENT ON DATABASE " + ident + " IS " + comment,
                     "prepare template " + util::quote(tmpl)));
  {
    IDP_TRY_ASSIGN(PgConnection in_tmpl, m_cluster.admin(tmpl));
    IDP_TRY(in_tmpl.exec("GRANT USAGE, CREATE ON SCHEMA public TO " + ident, "prepare template " + util::quote(tmpl)));
  }
  int64_t t0 = util::steady_ms();
  {
    auto params = m_cluster.tcp_params(tmpl, seed_password, tmpl);
    params["options"] = k_seed_statement_timeout;
    auto conn = PgConnection::connect(params);
    Expected<void> applied = conn ? conn->exec(seed.content, "database.seed " + util::quote(seed.path))
                                  : Expected<void>(Unexpected(conn.error()));
    if (!applied) {
      (void)drop_template(admin, tmpl);
      ErrorCode code = applied.error().code == ErrorCode::transient ? ErrorCode::transient : ErrorCode::permanent;
      return make_error(code, applied.error().message);
    }
  }
  IDP_TRY(admin.exec("ALTER DATABASE " + ident + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false",
                     "mark template " + util::quote(tmpl)));
  note("applied seed " + util::quote(seed.path) + " (" + std::to_string(seed.content.size()) +
       " bytes) once, into template database " + tmpl + ", in " + std::to_string(util::steady_ms() - t0) + " ms");
  return true;
}

Expected<void> DatabaseManager::clone(PgConnection& admin, const DatabaseRecord& rec, const std::string& tmpl) {
  IDP_TRY_ASSIGN(std::string db, admin.identifier(rec.name));
  IDP_TRY_ASSIGN(std::string t, admin.identifier(tmpl));
  // FILE_COPY copies the template's files (plus two checkpoints); WAL_LOG would write the
  // whole template to the WAL. bench/seed_clone measures both.
  std::string sql = "CREATE DATABASE " + db + " OWNER " + db + " TEMPLATE " + t + " STRATEGY FILE_COPY";
  for (int attempt = 1;; ++attempt) {
    auto r = admin.exec(sql, "clone template " + util::quote(tmpl) + " as " + util::quote(rec.name));
    if (r) {
      break;
    }
    // Only a leftover session could hold the template (ALLOW_CONNECTIONS is false).
    if (!is_busy_error(r.error()) || attempt >= k_clone_attempts) {
      return r;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200 * attempt));
  }
  IDP_TRY_ASSIGN(PgConnection in_db, m_cluster.admin(rec.name));
  return in_db.exec("REASSIGN OWNED BY " + t + " TO " + db + "; DROP OWNED BY " + t,
                    "give the seeded objects to " + util::quote(rec.name));
}

Expected<std::string> DatabaseManager::ensure(const DatabaseRecord& rec, const std::optional<SeedSource>& seed,
                                              const std::function<void(const std::string&)>& note) {
  IDP_TRY_ASSIGN(PgConnection admin, m_cluster.admin());
  IDP_TRY_ASSIGN(std::string password, password_for(rec));
  IDP_TRY(ensure_role(admin, rec.name, password));
  IDP_FAILPOINT_RETURN("local.database.role_created");
  IDP_TRY_ASSIGN(std::string db, admin.identifier(rec.name));
  IDP_TRY_ASSIGN(auto rows,
                 admin.query("SELECT 1 FROM pg_database WHERE datname = $1", {rec.name}, "look up database"));
  std::string created;
  if (rows.empty()) {
    int64_t t0 = util::steady_ms();
    if (seed) {
      std::string tmpl = seed_template_name(seed->repo, seed->content);
      bool seeded_here = false;
      {
        auto g = m_template_locks.lock(tmpl);
        IDP_TRY_ASSIGN(seeded_here, ensure_template(admin, *seed, tmpl, note));
      }
      {
        // Environments of one seed clone it at the same time (PostgreSQL takes a share
        // lock on the template); only seeding and pruning exclude them.
        auto g = m_template_locks.lock_shared(tmpl);
        IDP_TRY(clone(admin, rec, tmpl));
      }
      created = "cloned from template " + tmpl + (seeded_here ? " (seeded by this environment)" : "");
      note("database " + rec.name + " " + created + ", seed " + util::quote(seed->path) + ", in " +
           std::to_string(util::steady_ms() - t0) + " ms");
    } else {
      IDP_TRY(admin.exec("CREATE DATABASE " + db + " OWNER " + db + " TEMPLATE template0",
                         "create database " + util::quote(rec.name)));
      created = "created empty";
      note("database " + rec.name + " created in " + std::to_string(util::steady_ms() - t0) + " ms");
    }
    IDP_FAILPOINT_RETURN("local.database.created"); // created, not yet restricted to its role
  }
  // Every time: only its role may connect (a clone starts with PUBLIC's defaults).
  IDP_TRY(admin.exec("REVOKE CONNECT, TEMPORARY ON DATABASE " + db +
                         " FROM PUBLIC; GRANT CONNECT, TEMPORARY ON "
                         "DATABASE " +
                         db + " TO " + db,
                     "restrict database " + util::quote(rec.name)));
  return created;
}

Expected<bool> DatabaseManager::exists(const std::string& name) {
  IDP_TRY_ASSIGN(PgConnection admin, m_cluster.admin());
  IDP_TRY_ASSIGN(auto rows, admin.query("SELECT 1 FROM pg_database WHERE datname = $1", {name}, "look up database"));
  return !rows.empty();
}

Expected<void> DatabaseManager::drop(const std::string& name) {
  IDP_TRY_ASSIGN(PgConnection admin, m_cluster.admin());
  IDP_TRY_ASSIGN(std::string ident, admin.identifier(name));
  IDP_TRY(admin.exec("DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)", "drop database " + util::quote(name)));
  IDP_FAILPOINT_RETURN("local.database.dropped"); // the role is still there
  return admin.exec("DROP ROLE IF EXISTS " + ident, "drop role " + util::quote(name));
}

Expected<int64_t> DatabaseManager::size_of(const std::string& name) {
  IDP_TRY_ASSIGN(PgConnection admin, m_cluster.admin());
  IDP_TRY_ASSIGN(auto rows, admin.query("SELECT pg_database_size(datname) FROM pg_database WHERE datname = $1", {name},
                                        "database size"));
  if (rows.empty() || rows[0].empty() || !rows[0][0]) {
    return int64_t{0};
  }
  return util::parse_int<int64_t>(*rows[0][0], 0, INT64_MAX).value_or(0);
}

Expected<std::set<std::string>> DatabaseManager::list_environment_databases() {
  IDP_TRY_ASSIGN(PgConnection admin, m_cluster.admin());
  IDP_TRY_ASSIGN(auto rows, admin.query("SELECT datname FROM pg_database WHERE datname LIKE $1 UNION "
                                        "SELECT rolname FROM pg_roles WHERE rolname LIKE $1",
                                        {"idp\\_%"}, "list databases"));
  std::set<std::string> out;
  for (const auto& r : rows) {
    if (r[0]) {
      out.insert(*r[0]);
    }
  }
  return out;
}

Expected<void> DatabaseManager::prune_templates(const std::string& repo, const std::set<std::string>& in_use) {
  IDP_TRY_ASSIGN(PgConnection admin, m_cluster.admin());
  IDP_TRY_ASSIGN(auto rows, admin.query("SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
                                        "WHERE datname LIKE $1",
                                        {"idpseed\\_%"}, "list templates"));
  std::vector<std::pair<int64_t, std::string>> mine; // created_at, name
  for (const auto& r : rows) {
    if (!r[0] || !r[1]) {
      continue;
    }
    auto info = nlohmann::json::parse(*r[1], nullptr, false);
    if (info.is_object() && info.value("repo", "") == repo) {
      mine.emplace_back(info.value("created_at", int64_t{0}), *r[0]);
    }
  }
  std::sort(mine.rbegin(), mine.rend());
  for (size_t i = 1; i < mine.size(); ++i) {
    const std::string& tmpl = mine[i].second;
    if (in_use.count(tmpl)) {
      continue;
    }
    auto g = m_template_locks.lock(tmpl);
    IDP_TRY(drop_template(admin, tmpl));
    spdlog::info("local driver: dropped the unused seed template {} of {}", tmpl, repo);
  }
  return {};
}

Expected<void> DatabaseManager::harden_once() {
  if (m_hardened.load()) {
    return {};
  }
  // Two first callers may both revoke: REVOKE is idempotent, and neither waits on a lock
  // while the other talks to the server.
  IDP_TRY(harden());
  m_hardened = true;
  return {};
}

void DatabaseManager::set_before_harden_for_test(std::function<void()> hook) { m_before_harden = std::move(hook); }

Expected<void> DatabaseManager::harden() {
  if (m_before_harden) {
    m_before_harden();
  }
  IDP_TRY_ASSIGN(PgConnection admin, m_cluster.admin());
  return admin.exec("REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC; "
                    "REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC; "
                    "REVOKE CONNECT, TEMPORARY ON DATABASE template0 FROM PUBLIC",
                    "restrict the cluster's own databases");
}

} // namespace idp::drivers::local
