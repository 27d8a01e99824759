#include "drivers/kubernetes/manifests_database.hpp"

#include <regex>

#include "drivers/kubernetes/manifests.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"

namespace idp::drivers::kubernetes {

namespace {

using json = nlohmann::json;

constexpr int k_db_port = 5432;
constexpr const char* k_seed_key = "seed.sql";
constexpr const char* k_seed_mount = "/seed";

json db_object(const std::string& api_version, const std::string& kind, const std::string& name, const std::string& ns,
               const json& labels) {
  return {{"apiVersion", api_version},
          {"kind", kind},
          {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}}}};
}

bool is_quantity(const std::string& q) {
  static const std::regex k_re("^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$");
  return std::regex_match(q, k_re);
}

} // namespace

std::string seed_job_name(const std::string& sql) { return k_db_seed_prefix + util::sha256_hex(sql).substr(0, 16); }

Expected<DatabaseObjects> render_database(const DeploySpec& spec, const RenderSettings& s, const json& labels,
                                          const json& container_resources) {
  const DatabaseSettings& db = s.database;
  const std::string& ns = spec.env.name;
  if (!is_quantity(db.storage)) {
    return make_error(ErrorCode::invalid_config,
                      "drivers.kubernetes: postgres_storage: expected a size like 1Gi, got " + util::quote(db.storage));
  }
  const json& tv = spec.template_values;
  std::string password = k_db_password_placeholder;
  if (tv.is_object() && tv.contains(k_value_db_password) && tv[k_value_db_password].is_string()) {
    password = tv[k_value_db_password].get<std::string>();
  }
  std::string host = db.cloudnative_pg ? std::string(k_db_name) + "-rw" : k_db_name;
  DatabaseObjects out;
  out.env = {{"DB_HOST", host},
             {"DB_PORT", std::to_string(k_db_port)},
             {"DB_NAME", k_db_user},
             {"DB_USER", k_db_user},
             {"DB_PASSWORD", password},
             {"DATABASE_URL", "postgresql://" + std::string(k_db_user) + ":" + password + "@" + host + ":" +
                                  std::to_string(k_db_port) + "/" + k_db_user}};

  json db_labels = labels;
  db_labels["app.kubernetes.io/name"] = k_db_name;

  // The credentials: CloudNativePG's initdb takes a basic-auth Secret (username,
  // password); the postgres image takes POSTGRES_* variables.
  json creds = db_object("v1", "Secret", k_db_credentials, ns, labels);
  if (db.cloudnative_pg) {
    creds["type"] = "kubernetes.io/basic-auth";
    creds["stringData"] = {{"username", k_db_user}, {"password", password}};
  } else {
    creds["type"] = "Opaque";
    creds["stringData"] = {{"POSTGRES_USER", k_db_user}, {"POSTGRES_PASSWORD", password}, {"POSTGRES_DB", k_db_user}};
  }
  out.objects.push_back(creds);

  if (db.cloudnative_pg) {
    json cluster = db_object("postgresql.cnpg.io/v1", "Cluster", k_db_name, ns, labels);
    json storage = {{"size", db.storage}};
    if (!db.storage_class.empty()) {
      storage["storageClass"] = db.storage_class;
    }
    cluster["spec"] = {
        {"instances", 1},
        {"storage", storage},
        {"enableSuperuserAccess", false},
        {"resources", container_resources},
        {"bootstrap",
         {{"initdb", {{"database", k_db_user}, {"owner", k_db_user}, {"secret", {{"name", k_db_credentials}}}}}}}};
    out.objects.push_back(cluster);
    // The default-deny policy keeps the operator out; it must reach the instance's status
    // port (8000) and PostgreSQL to manage it.
    json netpol = db_object("networking.k8s.io/v1", "NetworkPolicy", "idp-allow-cnpg-operator", ns, labels);
    netpol["spec"] = {
        {"podSelector", {{"matchLabels", {{"cnpg.io/cluster", k_db_name}}}}},
        {"policyTypes", {"Ingress"}},
        {"ingress",
         {{{"from", {{{"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", db.cnpg_namespace}}}}}}}},
           {"ports", {{{"port", 8000}, {"protocol", "TCP"}}, {{"port", k_db_port}, {"protocol", "TCP"}}}}}}}};
    out.objects.push_back(netpol);
  } else {
    json svc = db_object("v1", "Service", k_db_name, ns, labels);
    svc["spec"] = {
        {"clusterIP", "None"},
        {"selector", {{"app.kubernetes.io/name", k_db_name}, {k_label_environment, ns}}},
        {"ports", {{{"name", "postgres"}, {"port", k_db_port}, {"targetPort", "postgres"}, {"protocol", "TCP"}}}}};
    out.objects.push_back(svc);

    json sel = {{"app.kubernetes.io/name", k_db_name}, {k_label_environment, ns}};
    json pod_labels = labels;
    pod_labels.update(sel);
    auto secret_env = [](const char* name, const char* key) {
      return json{{"name", name}, {"valueFrom", {{"secretKeyRef", {{"name", k_db_credentials}, {"key", key}}}}}};
    };
    json container = {
        {"name", "postgres"},
        {"image", db.image},
        {"ports", {{{"name", "postgres"}, {"containerPort", k_db_port}, {"protocol", "TCP"}}}},
        {"env",
         {secret_env("POSTGRES_USER", "POSTGRES_USER"),
          secret_env("POSTGRES_PASSWORD", "POSTGRES_PASSWORD"),
          secret_env("POSTGRES_DB", "POSTGRES_DB"),
          // A subdirectory: the volume's root may hold lost+found, which initdb refuses.
          {{"name", "PGDATA"}, {"value", "/var/lib/postgresql/data/pgdata"}}}},
        {"readinessProbe",
         {{"exec", {{"command", {"pg_isready", "--host=127.0.0.1", "--username=app", "--dbname=app"}}}},
          {"periodSeconds", 2},
          {"timeoutSeconds", 2},
          {"failureThreshold", 3}}},
        {"volumeMounts", {{{"name", "data"}, {"mountPath", "/var/lib/postgresql/data"}}}},
        {"resources", container_resources},
        {"securityContext", {{"allowPrivilegeEscalation", false}}},
    };
    json pvc_spec = {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", db.storage}}}}}};
    if (!db.storage_class.empty()) {
      pvc_spec["storageClassName"] = db.storage_class;
    }
    json sts = db_object("apps/v1", "StatefulSet", k_db_name, ns, labels);
    sts["spec"] = {
        {"replicas", 1},
        {"serviceName", k_db_name},
        {"selector", {{"matchLabels", sel}}},
        {"template",
         {{"metadata", {{"labels", pod_labels}}},
          {"spec",
           {{"automountServiceAccountToken", false},
            {"enableServiceLinks", false},
            {"terminationGracePeriodSeconds", 30},
            {"containers", {container}}}}}},
        {"volumeClaimTemplates", {{{"metadata", {{"name", "data"}, {"labels", labels}}}, {"spec", pvc_spec}}}}};
    out.objects.push_back(sts);
  }

  if (tv.is_object() && tv.contains(k_value_db_seed) && tv[k_value_db_seed].is_string()) {
    const std::string sql = tv[k_value_db_seed].get<std::string>();
    if (sql.size() > k_max_seed_bytes) {
      return make_error(ErrorCode::invalid_config,
                        "database.seed " + util::quote(spec.config.database.seed) + " is " +
                            std::to_string(sql.size()) +
                            " bytes; the kubernetes runtime passes the seed in a ConfigMap, which holds at most " +
                            std::to_string(k_max_seed_bytes) + " bytes (1 MiB less room for its metadata)");
    }
    out.seed_job = seed_job_name(sql);
    json cm = db_object("v1", "ConfigMap", out.seed_job, ns, labels);
    cm["data"] = {{k_seed_key, sql}};
    out.objects.push_back(cm);

    json job_labels = labels;
    job_labels["app.kubernetes.io/name"] = "db-seed";
    const char* password_key = db.cloudnative_pg ? "password" : "POSTGRES_PASSWORD";
    json container = {
        {"name", "seed"},
        {"image", db.image},
        // argv, no shell: the file and the connection come as arguments and variables.
        {"command",
         {"psql", "--no-psqlrc", "--set=ON_ERROR_STOP=1", "--single-transaction",
          "--file=" + std::string(k_seed_mount) + "/" + k_seed_key}},
        {"env",
         {{{"name", "PGHOST"}, {"value", host}},
          {{"name", "PGPORT"}, {"value", std::to_string(k_db_port)}},
          {{"name", "PGDATABASE"}, {"value", k_db_user}},
          {{"name", "PGUSER"}, {"value", k_db_user}},
          {{"name", "PGPASSWORD"},
           {"valueFrom", {{"secretKeyRef", {{"name", k_db_credentials}, {"key", password_key}}}}}}}},
        {"volumeMounts", {{{"name", "seed"}, {"mountPath", k_seed_mount}, {"readOnly", true}}}},
        {"resources", container_resources},
        {"securityContext", {{"allowPrivilegeEscalation", false}}},
    };
    json job = db_object("batch/v1", "Job", out.seed_job, ns, labels);
    job["metadata"]["annotations"] = {{"idp.dev/seed", spec.config.database.seed}};
    job["spec"] = {{"backoffLimit", 2},
                   {"activeDeadlineSeconds", 900},
                   {"template",
                    {{"metadata", {{"labels", job_labels}}},
                     {"spec",
                      {{"restartPolicy", "Never"},
                       {"automountServiceAccountToken", false},
                       {"enableServiceLinks", false},
                       {"containers", {container}},
                       {"volumes", {{{"name", "seed"}, {"configMap", {{"name", out.seed_job}}}}}}}}}}};
    out.objects.push_back(job);
  }
  return out;
}

} // namespace idp::drivers::kubernetes
