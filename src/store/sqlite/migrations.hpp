#pragma once
// The SQLite schema as an ordered list of migrations. Migration i (0-based) brings the
// database to version i+1; SqliteStore::open applies the missing ones, each in its own
// transaction, and records them in schema_migrations(version, applied_at).
// Never edit a migration that has shipped: append a new one.

#include <span>
#include <string_view>

namespace idp::store::sqlite {

// Every migration, oldest first. Each entry is one or more SQL statements.
std::span<const std::string_view> migrations();

// The schema version this binary brings a database to (migrations().size()).
int latest_schema_version();

} // namespace idp::store::sqlite
