// api-database on the Kubernetes driver against the API-server double: the database (a
// StatefulSet, or a CloudNativePG Cluster when the cluster serves its API) ready and the
// seed Job complete before the app's rollout, the password kept across redeploys and never
// shown, and the seed run once per content.

#include <gtest/gtest.h>

#include "drivers/kubernetes/kubernetes_driver.hpp"
#include "drivers/kubernetes/kubernetes_driver_factory.hpp"
#include "fakes/fake_kube_apiserver.hpp"
#include "support/test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"
#include "util/base64.hpp"
#include "util/json.hpp"

namespace idp::drivers::kubernetes {

using KubeDbProgress = testing::kube::RecordingProgress;

class KubernetesDatabaseDriverTest : public ::testing::Test {
protected:
  void SetUp() override {
    m_kubeconfig = testing::kube::write_kubeconfig(m_tmp.sub("kubeconfig"), m_api.url(), "    token: t\n");
  }
  std::unique_ptr<KubernetesDriver> make_driver(nlohmann::json extra = nlohmann::json::object()) {
    return testing::kube::make_driver(m_tmp.sub("home"), m_kubeconfig, std::move(extra), 2000);
  }
  // The value of `key` in Secret `name` as the cluster has it.
  // (k_env_secret: the variables' Secret the app's Deployment uses.)
  std::string secret_value(const std::string& ns, const std::string& name, const std::string& key) {
    auto s = name == k_env_secret ? testing::kube::env_secret(m_api, ns) : m_api.object("secrets", ns, name);
    if (!s || !(*s)["data"].contains(key)) {
      return "";
    }
    return util::base64_decode((*s)["data"][key].get<std::string>()).value_or("");
  }
  // Index of the first request with `method` whose path ends with `tail` (-1 = none).
  int first(const std::vector<testing::FakeKubeApiServer::Request>& reqs, const std::string& method,
            const std::string& tail) {
    for (size_t i = 0; i < reqs.size(); ++i) {
      const auto& p = reqs[i].path;
      if (reqs[i].method == method && p.size() >= tail.size() &&
          p.compare(p.size() - tail.size(), tail.size(), tail) == 0) {
        return static_cast<int>(i);
      }
    }
    return -1;
  }
  int count_path(const std::string& method, const std::string& part) {
    int n = 0;
    for (const auto& r : m_api.requests()) {
      n += r.method == method && r.path.find(part) != std::string::npos;
    }
    return n;
  }

  testing::TempDir m_tmp;
  testing::FakeKubeApiServer m_api;
  std::string m_kubeconfig;
  KubeDbProgress m_progress;
};

namespace {

using json = nlohmann::json;

const std::string k_seed = "CREATE TABLE items (id int);\n";

TEST_F(KubernetesDatabaseDriverTest, TheDatabaseIsReadyAndTheSeedCompleteBeforeTheAppIsApplied) {
  auto d = make_driver();
  auto spec = testing::kube::database_spec("pr-7", k_seed);
  auto r = d->apply(spec, m_progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  auto reqs = m_api.requests();
  std::string job = seed_job_name(k_seed);
  int sts_applied = first(reqs, "PATCH", "/statefulsets/db");
  int sts_read = first(reqs, "GET", "/statefulsets/db");
  int job_applied = first(reqs, "PATCH", "/jobs/" + job);
  int app_applied = first(reqs, "PATCH", "/deployments/web");
  ASSERT_GE(sts_applied, 0);
  EXPECT_GT(sts_read, sts_applied) << "the database's readiness is read back, not assumed";
  EXPECT_GT(job_applied, sts_read) << "the seed runs once the database is ready";
  EXPECT_GT(app_applied, job_applied) << "the app after the seed";
  int job_done = -1;
  for (size_t i = static_cast<size_t>(job_applied); i < reqs.size(); ++i) {
    if (reqs[i].method == "GET" && reqs[i].path.find("/jobs/" + job) != std::string::npos) {
      job_done = static_cast<int>(i);
    }
  }
  EXPECT_GT(job_done, job_applied);
  EXPECT_LT(job_done, app_applied) << "the Job's completion is read before the app is applied";
  EXPECT_EQ((*m_api.object("jobs", "pr-7", job))["status"]["succeeded"], 1);

  std::string pw = secret_value("pr-7", "db-credentials", "POSTGRES_PASSWORD");
  EXPECT_EQ(pw.size(), 32u) << "a generated password";
  EXPECT_EQ(secret_value("pr-7", k_env_secret, "DB_PASSWORD"), pw);
  EXPECT_EQ(secret_value("pr-7", k_env_secret, "DATABASE_URL"), "postgresql://app:" + pw + "@db:5432/app");
  for (const auto& s : m_progress.steps) {
    EXPECT_EQ(s.find(pw), std::string::npos) << s;
  }
  EXPECT_EQ(util::json_dump(r->outputs).find(pw), std::string::npos);
  auto obs = d->observe(spec.env);
  ASSERT_TRUE(obs.has_value());
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
}

TEST_F(KubernetesDatabaseDriverTest, ARedeployKeepsThePasswordAndRunsTheSameSeedOnlyOnce) {
  auto d = make_driver();
  auto spec = testing::kube::database_spec("pr-7", k_seed);
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  std::string pw = secret_value("pr-7", "db-credentials", "POSTGRES_PASSWORD");
  spec.revision_id = 2;
  spec.env.commit = "1111111111111111111111111111111111111111";
  auto again = d->apply(spec, m_progress);
  ASSERT_TRUE(again.has_value()) << again.error().full_message();
  EXPECT_EQ(secret_value("pr-7", "db-credentials", "POSTGRES_PASSWORD"), pw) << "the database keeps its password";
  EXPECT_EQ(secret_value("pr-7", k_env_secret, "DB_PASSWORD"), pw);
  EXPECT_EQ(count_path("PATCH", "/jobs/"), 1) << "the same seed is not run again";
  // A changed seed is a new Job, run once.
  spec.revision_id = 3;
  spec.template_values["database_seed"] = k_seed + "INSERT INTO items VALUES (1);\n";
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  EXPECT_EQ(count_path("PATCH", "/jobs/"), 2);
  EXPECT_TRUE(m_api.object("jobs", "pr-7", seed_job_name(k_seed + "INSERT INTO items VALUES (1);\n")).has_value());
}

TEST_F(KubernetesDatabaseDriverTest, AFailingSeedFailsTheDeployWithItsReasonAndTheAppIsNotApplied) {
  m_api.fail_jobs("db-seed-", "psql:/seed/seed.sql:1: ERROR:  syntax error at or near \"CREATE\"");
  auto d = make_driver();
  auto r = d->apply(testing::kube::database_spec("pr-7", k_seed), m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
  std::string msg = r.error().full_message();
  EXPECT_NE(msg.find("database.seed \"db/seed.sql\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("syntax error"), std::string::npos) << msg;
  EXPECT_NE(msg.find("BackoffLimitExceeded"), std::string::npos) << msg;
  EXPECT_EQ(msg.find(secret_value("pr-7", "db-credentials", "POSTGRES_PASSWORD")), std::string::npos);
  EXPECT_EQ(count_path("PATCH", "/deployments/"), 0) << "no app on an unseeded database";
}

TEST_F(KubernetesDatabaseDriverTest, RenderAndPlanShowAPlaceholderNeverThePassword) {
  auto d = make_driver();
  auto spec = testing::kube::database_spec("pr-7", k_seed);
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  std::string pw = secret_value("pr-7", "db-credentials", "POSTGRES_PASSWORD");
  ASSERT_FALSE(pw.empty());
  auto objs = d->render(spec);
  ASSERT_TRUE(objs.has_value());
  std::string text = util::json_dump(*objs);
  EXPECT_EQ(text.find(pw), std::string::npos);
  EXPECT_NE(text.find(k_db_password_placeholder), std::string::npos);
  EXPECT_TRUE(d->plan(spec).has_value());
}

TEST_F(KubernetesDatabaseDriverTest, WhenTheClusterServesCloudNativePgAutoMakesACluster) {
  m_api.serve_cloudnative_pg(true);
  auto d = make_driver();
  auto r = d->apply(testing::kube::database_spec("pr-7", k_seed), m_progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_GE(first(m_api.requests(), "GET", "/apis/postgresql.cnpg.io/v1"), 0) << "discovery of the CNPG API";
  auto cl = m_api.object("clusters", "pr-7", "db");
  ASSERT_TRUE(cl.has_value());
  EXPECT_EQ((*cl)["status"]["readyInstances"], 1);
  EXPECT_FALSE(m_api.object("statefulsets", "pr-7", "db").has_value());
  std::string pw = secret_value("pr-7", "db-credentials", "password");
  EXPECT_EQ(pw.size(), 32u);
  EXPECT_EQ(secret_value("pr-7", k_env_secret, "DB_HOST"), "db-rw");
  EXPECT_EQ(secret_value("pr-7", k_env_secret, "DATABASE_URL"), "postgresql://app:" + pw + "@db-rw:5432/app");
  auto reqs = m_api.requests();
  EXPECT_LT(first(reqs, "GET", "/clusters/db"), first(reqs, "PATCH", "/deployments/web"));
  // The seed's Job reads the Cluster's secret key.
  auto job = m_api.object("jobs", "pr-7", seed_job_name(k_seed));
  ASSERT_TRUE(job.has_value());
  EXPECT_EQ(util::json_dump(*job).find("\"POSTGRES_PASSWORD\""), std::string::npos);
}

TEST_F(KubernetesDatabaseDriverTest, AnEnvironmentKeepsItsStatefulSetWhenCloudNativePgAppearsLater) {
  auto d = make_driver();
  auto spec = testing::kube::database_spec("pr-7");
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  ASSERT_TRUE(m_api.object("statefulsets", "pr-7", "db").has_value());
  m_api.serve_cloudnative_pg(true);
  spec.revision_id = 2;
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  EXPECT_FALSE(m_api.object("clusters", "pr-7", "db").has_value()) << "its data stays in the StatefulSet's volume";
  EXPECT_EQ(secret_value("pr-7", k_env_secret, "DB_HOST"), "db");
}

TEST_F(KubernetesDatabaseDriverTest, StatefulsetModeNeverAsksForCloudNativePg) {
  m_api.serve_cloudnative_pg(true);
  auto d = make_driver({{"database", "statefulset"}, {"postgres_image", "postgres:16.4"}});
  ASSERT_TRUE(d->apply(testing::kube::database_spec("pr-7"), m_progress).has_value());
  EXPECT_EQ(count_path("GET", "postgresql.cnpg.io"), 0);
  auto sts = m_api.object("statefulsets", "pr-7", "db");
  ASSERT_TRUE(sts.has_value());
  EXPECT_EQ((*sts)["spec"]["template"]["spec"]["containers"][0]["image"], "postgres:16.4");
}

TEST_F(KubernetesDatabaseDriverTest, CloudNativePgModeWithoutItsApiIsAClearError) {
  auto d = make_driver({{"database", "cloudnative-pg"}});
  auto r = d->apply(testing::kube::database_spec("pr-7"), m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_NE(r.error().message.find("postgresql.cnpg.io/v1"), std::string::npos) << r.error().message;
  EXPECT_EQ(count_path("PATCH", ""), 0) << "nothing applied";
}

TEST_F(KubernetesDatabaseDriverTest, ASeedThatDidNotReachTheDriverIsAConfigError) {
  auto d = make_driver();
  auto spec = testing::kube::database_spec("pr-7");
  spec.config.database.seed = "db/missing.sql"; // the engine found no such file at the commit
  auto r = d->apply(spec, m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_NE(r.error().message.find("db/missing.sql"), std::string::npos) << r.error().message;
}

TEST(KubernetesOptionsTest, DatabaseOptionsAreCheckedAndNamed) {
  auto ok = KubernetesOptions::parse({{"database", "cloudnative-pg"},
                                      {"postgres_image", "postgres:16"},
                                      {"postgres_storage", "5Gi"},
                                      {"storage_class", "fast-ssd"}});
  ASSERT_TRUE(ok.has_value()) << ok.error().message;
  EXPECT_EQ(ok->database, "cloudnative-pg");
  EXPECT_EQ(ok->postgres_storage, "5Gi");
  for (const auto& [key, value] : std::vector<std::pair<std::string, json>>{{"database", "postgres"},
                                                                            {"postgres_storage", "5GB"},
                                                                            {"postgres_image", "postgres 16"},
                                                                            {"storage_class", "Fast_SSD"}}) {
    auto bad = KubernetesOptions::parse({{key, value}});
    ASSERT_FALSE(bad.has_value()) << key;
    EXPECT_NE(bad.error().message.find("option \"" + key + "\""), std::string::npos) << bad.error().message;
  }
  EXPECT_EQ(KubernetesOptions::parse(nullptr)->database, "auto");
}

} // namespace
} // namespace idp::drivers::kubernetes
