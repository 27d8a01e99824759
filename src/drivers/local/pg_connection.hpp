#pragma once
// A libpq connection for the managed PostgreSQL: connect with keyword/value parameters
// (no conninfo string to escape), run statements, run queries with $n parameters, escape
// identifiers and literals, and compute SCRAM verifiers client-side.
//
// Error messages carry PostgreSQL's message but never the statement text: statements may
// carry password verifiers and seed data. Not thread-safe; one connection per operation.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/expected.hpp"

struct pg_conn;

namespace idp::drivers::local {

using PgRow = std::vector<std::optional<std::string>>; // nullopt = SQL NULL

class PgConnection {
public:
  // Connects with libpq keywords (host, port, dbname, user, password, connect_timeout, ...).
  // transient when the server does not answer (not running yet, restarting), permanent
  // when it refuses (authentication, missing database).
  static Expected<PgConnection> connect(const std::map<std::string, std::string>& params);

  PgConnection(PgConnection&&) noexcept;
  PgConnection& operator=(PgConnection&&) noexcept;
  ~PgConnection();

  // Runs one or more statements (the simple query protocol: a multi-statement text runs
  // as one implicit transaction unless it has its own BEGIN/COMMIT). `what` names the
  // operation in the error ("create role \"idp_pr_1\"").
  Expected<void> exec(std::string_view sql, std::string_view what);
  // One statement with $1..$n text parameters; the rows of its result.
  Expected<std::vector<PgRow>> query(std::string_view sql, const std::vector<std::string>& params,
                                     std::string_view what);

  // "name" quoted as an identifier, "'value'" quoted as a literal, by this server's rules.
  Expected<std::string> identifier(std::string_view name) const;
  Expected<std::string> literal(std::string_view value) const;
  // The SCRAM-SHA-256 verifier of `password` for `role`, computed here so the password
  // itself never reaches the server (nor its logs).
  Expected<std::string> scram_verifier(std::string_view password, std::string_view role) const;

private:
  explicit PgConnection(pg_conn* conn) : m_conn(conn) {}
  std::string last_error() const;

  pg_conn* m_conn = nullptr;
};

// True when the error text means "the server is not accepting connections right now"
// (starting up, shutting down, socket missing).
bool pg_error_is_transient(std::string_view message);

} // namespace idp::drivers::local
