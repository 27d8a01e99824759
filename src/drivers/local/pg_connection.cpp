#include "drivers/local/pg_connection.hpp"

#include <libpq-fe.h>

#include "util/strings.hpp"

namespace idp::drivers::local {

namespace {

// PostgreSQL messages end with a newline and sometimes carry a DETAIL/HINT line.
std::string clean(const char* msg) {
  if (!msg) {
    return "unknown error";
  }
  std::vector<std::string> lines;
  for (auto& l : util::split(util::trim(msg), '\n')) {
    std::string t = util::trim(l);
    if (!t.empty()) {
      lines.push_back(t);
    }
  }
  return lines.empty() ? "unknown error" : util::join(lines, "; ");
}

struct ResultGuard {
  PGresult* r;
  ~ResultGuard() { PQclear(r); }
};

} // namespace

bool pg_error_is_transient(std::string_view m) {
  for (std::string_view needle :
       {"could not connect", "Connection refused", "No such file or directory", "the database system is starting up",
        "the database system is shutting down", "the database system is in recovery mode",
        "server closed the connection", "terminating connection", "timeout expired",
        "the database system is not yet accepting"}) {
    if (m.find(needle) != std::string_view::npos) {
      return true;
    }
  }
  return false;
}

Expected<PgConnection> PgConnection::connect(const std::map<std::string, std::string>& params) {
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  pg_conn* c = PQconnectdbParams(keys.data(), values.data(), 0);
  if (!c) {
    return make_error(ErrorCode::transient, "postgresql: out of memory");
  }
  if (PQstatus(c) != CONNECTION_OK) {
    std::string msg = clean(PQerrorMessage(c));
    PQfinish(c);
    return make_error(pg_error_is_transient(msg) ? ErrorCode::transient : ErrorCode::permanent,
                      "cannot connect to postgresql: " + msg);
  }
  return PgConnection(c);
}

PgConnection::PgConnection(PgConnection&& o) noexcept : m_conn(o.m_conn) { o.m_conn = nullptr; }

PgConnection& PgConnection::operator=(PgConnection&& o) noexcept {
  if (this != &o) {
    if (m_conn) {
      PQfinish(m_conn);
    }
    m_conn = o.m_conn;
    o.m_conn = nullptr;
  }
  return *this;
}

PgConnection::~PgConnection() {
  if (m_conn) {
    PQfinish(m_conn);
  }
}

std::string PgConnection::last_error() const { return clean(PQerrorMessage(m_conn)); }

Expected<void> PgConnection::exec(std::string_view sql, std::string_view what) {
  std::string text(sql);
  // PQexec returns only the last result of a multi-statement text; PQsendQuery lets us
  // see each one and report the first failure.
  if (!PQsendQuery(m_conn, text.c_str())) {
    std::string msg = last_error();
    return make_error(pg_error_is_transient(msg) ? ErrorCode::transient : ErrorCode::permanent,
                      std::string(what) + ": " + msg);
  }
  std::optional<std::string> failure;
  while (PGresult* r = PQgetResult(m_conn)) {
    ResultGuard g{r};
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
      // A COPY ... FROM STDIN in a seed: psql feeds it the following lines; we do not.
      if (st == PGRES_COPY_IN) {
        PQputCopyEnd(m_conn, "COPY FROM STDIN is not supported (use INSERT or COPY FROM a server file)");
      }
      continue;
    }
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY && !failure) {
      failure = clean(PQresultErrorMessage(r));
    }
  }
  if (failure) {
    return make_error(pg_error_is_transient(*failure) ? ErrorCode::transient : ErrorCode::permanent,
                      std::string(what) + ": " + *failure);
  }
  if (PQstatus(m_conn) != CONNECTION_OK) {
    return make_error(ErrorCode::transient, std::string(what) + ": " + last_error());
  }
  return {};
}

Expected<std::vector<PgRow>> PgConnection::query(std::string_view sql, const std::vector<std::string>& params,
                                                 std::string_view what) {
  std::string text(sql);
  std::vector<const char*> values;
  for (const auto& p : params) {
    values.push_back(p.c_str());
  }
  PGresult* r = PQexecParams(m_conn, text.c_str(), static_cast<int>(values.size()), nullptr,
                             values.empty() ? nullptr : values.data(), nullptr, nullptr, 0);
  ResultGuard g{r};
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
    std::string msg = r ? clean(PQresultErrorMessage(r)) : last_error();
    return make_error(pg_error_is_transient(msg) ? ErrorCode::transient : ErrorCode::permanent,
                      std::string(what) + ": " + msg);
  }
  std::vector<PgRow> rows;
  int n = PQntuples(r);
  int cols = PQnfields(r);
  for (int i = 0; i < n; ++i) {
    PgRow row;
    for (int j = 0; j < cols; ++j) {
      if (PQgetisnull(r, i, j)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(r, i, j), static_cast<size_t>(PQgetlength(r, i, j))));
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

Expected<std::string> PgConnection::identifier(std::string_view name) const {
  char* q = PQescapeIdentifier(m_conn, name.data(), name.size());
  if (!q) {
    return make_error(ErrorCode::invalid_argument, "cannot quote identifier: " + last_error());
  }
  std::string out(q);
  PQfreemem(q);
  return out;
}

Expected<std::string> PgConnection::literal(std::string_view value) const {
  char* q = PQescapeLiteral(m_conn, value.data(), value.size());
  if (!q) {
    return make_error(ErrorCode::invalid_argument, "cannot quote literal: " + last_error());
  }
  std::string out(q);
  PQfreemem(q);
  return out;
}

Expected<std::string> PgConnection::scram_verifier(std::string_view password, std::string_view role) const {
  std::string p(password);
  std::string r(role);
  char* v = PQencryptPasswordConn(m_conn, p.c_str(), r.c_str(), "scram-sha-256");
  if (!v) {
    return make_error(ErrorCode::permanent, "cannot compute the password verifier: " + last_error());
  }
  std::string out(v);
  PQfreemem(v);
  return out;
}

} // namespace idp::drivers::local
