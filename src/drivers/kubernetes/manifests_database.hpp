#pragma once
// The "database" component on Kubernetes (api-database): a PostgreSQL in the environment's
// namespace, either a StatefulSet `db` (one replica, a PVC, headless Service `db`) or a
// CloudNativePG `Cluster` `db` (its operator makes the `db-rw` Service), the credentials
// in Secret `db-credentials`, the app's DATABASE_URL/DB_* for its Secret `app-env`, and the
// seed (`database.seed`) as a ConfigMap and a Job `db-seed-<hash of the SQL>` running psql.
// Pure functions, as manifests.hpp.

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "drivers/driver.hpp"
#include "util/expected.hpp"

namespace idp::drivers::kubernetes {

struct RenderSettings;

struct DatabaseSettings {
  std::string image = "postgres:15.10-alpine"; // the StatefulSet's image (CloudNativePG picks its own)
  std::string storage = "1Gi";                 // the PVC's size
  std::string storage_class;                   // "" = the cluster's default class
  bool cloudnative_pg = false;                 // a CloudNativePG Cluster instead of the StatefulSet
  std::string cnpg_namespace = "cnpg-system";  // the operator's namespace (let in by a NetworkPolicy)
};

// Names in the environment's namespace.
inline constexpr const char* k_db_name = "db";                    // StatefulSet, Service, or Cluster
inline constexpr const char* k_db_credentials = "db-credentials"; // Secret
inline constexpr const char* k_db_user = "app";                   // role and database
inline constexpr const char* k_db_seed_prefix = "db-seed-";       // ConfigMap and Job of a seed
// Keys of DeploySpec::template_values the rendering reads.
inline constexpr const char* k_value_db_password = "database_password"; // set by the driver at apply
inline constexpr const char* k_value_db_seed = "database_seed";         // the seed's SQL, from the engine
// What `idp render` (and plan) show instead of the password.
inline constexpr const char* k_db_password_placeholder = "<generated at apply>";
// The largest seed a ConfigMap takes (1 MiB for the whole object, less room for the rest).
inline constexpr size_t k_max_seed_bytes = 1024 * 1024 - 4096;

struct DatabaseObjects {
  std::vector<nlohmann::json> objects;    // in apply order; the seed's Job last
  std::map<std::string, std::string> env; // DATABASE_URL, DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD
  std::string seed_job;                   // the Job's name; "" without a seed
};

// The database of `spec`, labelled `labels`. The password is template_values'
// k_value_db_password (the placeholder when absent); the seed's SQL is template_values'
// k_value_db_seed (no seed objects when absent). invalid_config for a seed over
// k_max_seed_bytes or a storage size that is no Kubernetes quantity.
Expected<DatabaseObjects> render_database(const DeploySpec& spec, const RenderSettings& settings,
                                          const nlohmann::json& labels, const nlohmann::json& container_resources);

// "db-seed-" + the first 16 hex digits of sha256(sql).
std::string seed_job_name(const std::string& sql);

} // namespace idp::drivers::kubernetes
