// What an api-database environment's database becomes on Kubernetes: a StatefulSet (or a
// CloudNativePG Cluster), its Service and credentials, the app's DATABASE_URL/DB_*, and the
// seed's ConfigMap and Job (schemas: tests/kubernetes).

#include <gtest/gtest.h>

#include "drivers/kubernetes/manifests.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"
#include "util/json.hpp"

namespace idp::drivers::kubernetes {
namespace {

using json = nlohmann::json;

json find_db(const std::vector<json>& objs, const std::string& kind, const std::string& name = "") {
  for (const auto& o : objs) {
    if (o["kind"] == kind && (name.empty() || o["metadata"]["name"] == name)) {
      return o;
    }
  }
  ADD_FAILURE() << "no " << kind << " " << name;
  return json::object();
}

// The variables' Secret (app-env-<hash>).
json find_env_secret(const std::vector<json>& objs) {
  for (const auto& o : objs) {
    if (o["kind"] == "Secret" && is_env_secret_name(o["metadata"]["name"])) {
      return o;
    }
  }
  ADD_FAILURE() << "no variables' Secret";
  return json::object();
}

size_t index_of(const std::vector<json>& objs, const std::string& kind) {
  for (size_t i = 0; i < objs.size(); ++i) {
    if (objs[i]["kind"] == kind) {
      return i;
    }
  }
  return objs.size();
}

DeploySpec with_password(DeploySpec spec, const std::string& pw) {
  spec.template_values["database_password"] = pw;
  return spec;
}

TEST(KubernetesManifestsTest, ApiDatabaseGetsAStatefulSetWithAVolumeAHeadlessServiceAndItsCredentials) {
  auto objs = render_environment(with_password(testing::kube::database_spec(), "pw0123"), RenderSettings{}, {});
  ASSERT_TRUE(objs.has_value()) << objs.error().full_message();
  json sts = find_db(*objs, "StatefulSet", "db");
  EXPECT_EQ(sts["spec"]["replicas"], 1);
  EXPECT_EQ(sts["spec"]["serviceName"], "db");
  const json& c = sts["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["image"], "postgres:15.10-alpine") << "a pinned official image by default";
  EXPECT_EQ(c["readinessProbe"]["exec"]["command"][0], "pg_isready") << "argv, no shell";
  EXPECT_EQ(c["resources"]["limits"]["memory"], "512Mi") << "within the LimitRange";
  const json& pvc = sts["spec"]["volumeClaimTemplates"][0];
  EXPECT_EQ(pvc["spec"]["resources"]["requests"]["storage"], "1Gi");
  EXPECT_FALSE(pvc["spec"].contains("storageClassName")) << "the cluster's default class";
  EXPECT_EQ(sts["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"], "db");
  json svc = find_db(*objs, "Service", "db");
  EXPECT_EQ(svc["spec"]["clusterIP"], "None");
  EXPECT_EQ(svc["spec"]["selector"], sts["spec"]["selector"]["matchLabels"]);
  json creds = find_db(*objs, "Secret", "db-credentials");
  EXPECT_EQ(creds["stringData"]["POSTGRES_USER"], "app");
  EXPECT_EQ(creds["stringData"]["POSTGRES_PASSWORD"], "pw0123");
  EXPECT_EQ(creds["stringData"]["POSTGRES_DB"], "app");
  EXPECT_LT(index_of(*objs, "StatefulSet"), index_of(*objs, "Deployment")) << "the database before the app";
  EXPECT_EQ(find_db(*objs, "ResourceQuota")["spec"]["hard"]["pods"], "6") << "room for the db and seed pods";
  // The default-deny policy lets the environment's own pods in: the app reaches the db.
  json np = find_db(*objs, "NetworkPolicy", "idp-default-deny");
  EXPECT_EQ(np["spec"]["ingress"][0]["from"][1]["podSelector"], json::object());
}

TEST(KubernetesManifestsTest, TheAppGetsTheSameDatabaseVariablesAsOnTheLocalRuntime) {
  auto spec = with_password(testing::kube::database_spec(), "pw0123");
  spec.config.environment["DB_HOST"] = "overridden?";
  auto objs = render_environment(spec, RenderSettings{}, {});
  ASSERT_TRUE(objs.has_value());
  json env = find_env_secret(*objs)["stringData"];
  EXPECT_EQ(env["DATABASE_URL"], "postgresql://app:pw0123@db:5432/app");
  EXPECT_EQ(env["DB_HOST"], "db") << "the database's variables win";
  EXPECT_EQ(env["DB_PORT"], "5432");
  EXPECT_EQ(env["DB_NAME"], "app");
  EXPECT_EQ(env["DB_USER"], "app");
  EXPECT_EQ(env["DB_PASSWORD"], "pw0123");
  EXPECT_EQ(env["LOG_LEVEL"], "debug");
  // A new password restarts the app's pods (the Secret's hash is in the pod template).
  auto other = render_environment(with_password(testing::kube::database_spec(), "other"), RenderSettings{}, {});
  ASSERT_TRUE(other.has_value());
  EXPECT_NE(find_db(*objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["idp.dev/env-hash"],
            find_db(*other, "Deployment")["spec"]["template"]["metadata"]["annotations"]["idp.dev/env-hash"]);
}

TEST(KubernetesManifestsTest, ImageStorageAndStorageClassComeFromTheSettings) {
  RenderSettings s;
  s.database.image = "registry.example.com/postgres:16";
  s.database.storage = "5Gi";
  s.database.storage_class = "fast-ssd";
  auto objs = render_environment(testing::kube::database_spec(), s, {});
  ASSERT_TRUE(objs.has_value());
  json sts = find_db(*objs, "StatefulSet", "db");
  EXPECT_EQ(sts["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example.com/postgres:16");
  EXPECT_EQ(sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"], "5Gi");
  EXPECT_EQ(sts["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"], "fast-ssd");
  s.database.storage = "lots";
  auto bad = render_environment(testing::kube::database_spec(), s, {});
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_config);
  EXPECT_NE(bad.error().message.find("postgres_storage"), std::string::npos) << bad.error().message;
}

TEST(KubernetesManifestsTest, WithoutAPasswordTheRenderShowsAPlaceholder) {
  auto objs = render_environment(testing::kube::database_spec(), RenderSettings{}, {});
  ASSERT_TRUE(objs.has_value());
  EXPECT_EQ(find_env_secret(*objs)["stringData"]["DB_PASSWORD"], k_db_password_placeholder);
  EXPECT_EQ(find_db(*objs, "Secret", "db-credentials")["stringData"]["POSTGRES_PASSWORD"], k_db_password_placeholder);
}

TEST(KubernetesManifestsTest, CloudNativePgRendersAClusterAndTheAppUsesItsRwService) {
  RenderSettings s;
  s.database.cloudnative_pg = true;
  s.database.storage = "2Gi";
  s.database.storage_class = "standard";
  auto objs = render_environment(with_password(testing::kube::database_spec(), "pw0123"), s, {});
  ASSERT_TRUE(objs.has_value()) << objs.error().full_message();
  EXPECT_EQ(index_of(*objs, "StatefulSet"), objs->size()) << "no StatefulSet with CloudNativePG";
  json cl = find_db(*objs, "Cluster", "db");
  EXPECT_EQ(cl["apiVersion"], "postgresql.cnpg.io/v1");
  EXPECT_EQ(cl["spec"]["instances"], 1);
  EXPECT_EQ(cl["spec"]["storage"]["size"], "2Gi");
  EXPECT_EQ(cl["spec"]["storage"]["storageClass"], "standard");
  EXPECT_EQ(cl["spec"]["bootstrap"]["initdb"]["database"], "app");
  EXPECT_EQ(cl["spec"]["bootstrap"]["initdb"]["owner"], "app");
  EXPECT_EQ(cl["spec"]["bootstrap"]["initdb"]["secret"]["name"], "db-credentials");
  json creds = find_db(*objs, "Secret", "db-credentials");
  EXPECT_EQ(creds["type"], "kubernetes.io/basic-auth");
  EXPECT_EQ(creds["stringData"]["username"], "app");
  EXPECT_EQ(creds["stringData"]["password"], "pw0123");
  json env = find_env_secret(*objs)["stringData"];
  EXPECT_EQ(env["DB_HOST"], "db-rw");
  EXPECT_EQ(env["DATABASE_URL"], "postgresql://app:pw0123@db-rw:5432/app");
  json np = find_db(*objs, "NetworkPolicy", "idp-allow-cnpg-operator");
  EXPECT_EQ(np["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "cnpg-system")
      << "the operator reaches the instance through the default deny";
  EXPECT_LT(index_of(*objs, "Cluster"), index_of(*objs, "Deployment"));
}

TEST(KubernetesManifestsTest, TheSeedIsAConfigMapAndAJobNamedAfterItsContent) {
  const std::string sql = "CREATE TABLE items (id int);\nINSERT INTO items VALUES (1);\n";
  auto objs = render_environment(with_password(testing::kube::database_spec("pr-7", sql), "pw"), RenderSettings{}, {});
  ASSERT_TRUE(objs.has_value()) << objs.error().full_message();
  std::string name = seed_job_name(sql);
  EXPECT_EQ(name.rfind("db-seed-", 0), 0u);
  EXPECT_EQ(name.size(), 8u + 16u);
  EXPECT_NE(name, seed_job_name(sql + "-- changed\n")) << "a new seed content is a new Job";
  json cm = find_db(*objs, "ConfigMap", name);
  EXPECT_EQ(cm["data"]["seed.sql"], sql);
  json job = find_db(*objs, "Job", name);
  const json& pod = job["spec"]["template"]["spec"];
  const json& c = pod["containers"][0];
  EXPECT_EQ(c["command"], json::array({"psql", "--no-psqlrc", "--set=ON_ERROR_STOP=1", "--single-transaction",
                                       "--file=/seed/seed.sql"}))
      << "argv: no shell";
  EXPECT_EQ(pod["volumes"][0]["configMap"]["name"], name);
  EXPECT_EQ(pod["restartPolicy"], "Never");
  bool password_from_secret = false;
  for (const auto& e : c["env"]) {
    EXPECT_NE(e.value("value", ""), "pw") << "the password is not in the Job";
    if (e["name"] == "PGPASSWORD") {
      password_from_secret = e["valueFrom"]["secretKeyRef"]["name"] == "db-credentials";
    }
  }
  EXPECT_TRUE(password_from_secret);
  EXPECT_LT(index_of(*objs, "Job"), index_of(*objs, "Deployment")) << "the seed before the app";
}

TEST(KubernetesManifestsTest, ASeedLargerThanAConfigMapTakesIsAClearConfigError) {
  auto spec = testing::kube::database_spec("pr-7", std::string(k_max_seed_bytes + 1, 'x'));
  auto r = render_environment(spec, RenderSettings{}, {});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_NE(r.error().message.find("database.seed \"db/seed.sql\""), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("ConfigMap"), std::string::npos) << r.error().message;
  spec.template_values["database_seed"] = std::string(k_max_seed_bytes, 'x');
  EXPECT_TRUE(render_environment(spec, RenderSettings{}, {}).has_value()) << "the limit itself fits";
}

} // namespace
} // namespace idp::drivers::kubernetes
