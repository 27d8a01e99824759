// The Kubernetes runtime through the whole product: `idp serve` with drivers.kubernetes
// pointing at the API-server double, `idp create --runtime kubernetes` on the static-site
// template (its template.json lists kubernetes) with Gateway API routing, status, destroy.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "fakes/fake_kube_apiserver.hpp"
#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"
#include "util/base64.hpp"
#include "util/fs.hpp"
#include "util/subprocess.hpp"

using namespace idp;
using namespace idp::testing;

TEST(KubernetesDaemonTest, AStaticSiteIsCreatedWithAnHttpRouteAndDestroyedThroughTheServer) {
  TempDir tmp("idp-kube-daemon");
  (void)util::ensure_dir(tmp.sub("home"));
  FakeKubeApiServer api(FakeKubeApiServer::Options{{}, {}, {}, {"daemon-token"}});
  kube::write_kubeconfig(tmp.sub("kubeconfig"), api.url(), "    token: daemon-token\n");
  std::ofstream(tmp.sub("server.yml")) << "drivers:\n  kubernetes:\n    kubeconfig: " << tmp.sub("kubeconfig")
                                       << "\n    domain: previews.example.com\n"
                                          "    routing: gateway\n    gateway_name: previews\n"
                                          "    gateway_namespace: gateways\n    gateway_section: https\n"
                                          "    rollout_timeout: 30s\n    poll_interval: 20ms\n";
  GitRepo repo(tmp.sub("site"));
  repo.write_file(".idp/config.yml", "template: static-site\n"
                                     "container_image: registry.example.com/site:{commit}\n"
                                     "static:\n  dir: dist\n  spa: true\n"
                                     "ttl: 2h\n");
  repo.commit("static site");
  repo.checkout_new_branch("feature/site");
  std::string commit = repo.head();
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();

  auto created = d.cli({"create", "--repo", repo.path(), "--branch", "feature/site", "--runtime", "kubernetes"});
  ASSERT_EQ(created.exit_code, 0) << created.err << d.log();
  EXPECT_EQ(created.out, "https://preview-site.previews.example.com\n");
  auto env = d.env("preview-site");
  EXPECT_EQ(env["runtime"], "kubernetes");
  EXPECT_EQ(env["phase"], "ready") << env.dump(2);
  auto route = api.object("httproutes", "preview-site", "web");
  ASSERT_TRUE(route.has_value());
  EXPECT_EQ((*route)["spec"]["hostnames"][0], "preview-site.previews.example.com");
  EXPECT_EQ((*route)["spec"]["parentRefs"][0]["sectionName"], "https");
  EXPECT_TRUE(api.objects("ingresses").empty());
  auto dep = api.object("deployments", "preview-site", "web");
  ASSERT_TRUE(dep.has_value());
  EXPECT_EQ((*dep)["spec"]["template"]["spec"]["containers"][0]["image"], "registry.example.com/site:" + commit);
  auto status = d.cli({"status", "preview-site", "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("static.spa is not applied by the kubernetes runtime"), std::string::npos) << status.out;
  // What the cluster shows: the pods and the namespace's events, in the JSON and the table.
  auto status_json = nlohmann::json::parse(status.out, nullptr, false);
  ASSERT_TRUE(status_json.is_object()) << status.out;
  ASSERT_EQ(status_json["runtime_status"]["pods"].size(), 1u) << status.out;
  EXPECT_EQ(status_json["runtime_status"]["pods"][0]["ready"], "1/1") << status.out;
  auto table = d.cli({"status", "preview-site"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.out.find("pods:\n"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(status_json["runtime_status"]["pods"][0]["name"].get<std::string>()), std::string::npos)
      << table.out;
  EXPECT_NE(table.out.find("cluster events:\n"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("Started container app"), std::string::npos) << table.out;
  auto logs = d.cli({"logs", "preview-site", "--tail", "20"});
  ASSERT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_NE(logs.out.find("listening with image registry.example.com/site:" + commit), std::string::npos) << logs.out;

  auto destroyed = d.cli({"destroy", "preview-site", "--yes"});
  ASSERT_EQ(destroyed.exit_code, 0) << destroyed.err << d.log();
  EXPECT_FALSE(api.object("namespaces", "", "preview-site").has_value());
  EXPECT_EQ(d.env("preview-site")["phase"], "destroyed");
  EXPECT_EQ(d.stop(), 0);
}

// static-site without container_image through the server: `idp render` and `idp create`
// ship the committed static.dir in ConfigMaps that the pod's nginx serves (static.spa by
// nginx itself, so no warning), and destroy leaves none of them.
TEST(KubernetesDaemonTest, AStaticSiteWithoutAnImageServesItsCommittedDirectoryThroughTheServer) {
  TempDir tmp("idp-kube-daemon-files");
  (void)util::ensure_dir(tmp.sub("home"));
  FakeKubeApiServer api(FakeKubeApiServer::Options{{}, {}, {}, {"daemon-token"}});
  kube::write_kubeconfig(tmp.sub("kubeconfig"), api.url(), "    token: daemon-token\n");
  std::ofstream(tmp.sub("server.yml")) << "drivers:\n  kubernetes:\n    kubeconfig: " << tmp.sub("kubeconfig")
                                       << "\n    domain: previews.example.com\n"
                                          "    static_image: nginx:1.27.3-alpine\n"
                                          "    rollout_timeout: 30s\n    poll_interval: 20ms\n";
  GitRepo repo(tmp.sub("site"));
  repo.write_file(".idp/config.yml", "template: static-site\n"
                                     "static:\n  dir: public\n  spa: true\n"
                                     "ttl: 2h\n");
  repo.write_file("public/index.html", "<h1>handbook</h1>\n");
  repo.commit("static site");
  repo.checkout_new_branch("feature/handbook");
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();

  auto rendered = d.cli({"render", "--runtime", "kubernetes", "--repo", repo.path(), "--branch", "feature/handbook"});
  ASSERT_EQ(rendered.exit_code, 0) << rendered.err << d.log();
  EXPECT_NE(rendered.out.find("kind: ConfigMap"), std::string::npos) << rendered.out;
  EXPECT_NE(rendered.out.find("image: nginx:1.27.3-alpine"), std::string::npos) << rendered.out;
  EXPECT_TRUE(api.objects("namespaces").empty()) << "render applies nothing";

  auto created = d.cli({"create", "--repo", repo.path(), "--branch", "feature/handbook", "--runtime", "kubernetes"});
  ASSERT_EQ(created.exit_code, 0) << created.err << d.log();
  EXPECT_EQ(created.out, "http://preview-handbook.previews.example.com\n");
  auto env = d.env("preview-handbook");
  EXPECT_EQ(env["phase"], "ready") << env.dump(2);
  EXPECT_TRUE(env.value("warnings", nlohmann::json::array()).empty()) << env.dump(2);
  auto dep = api.object("deployments", "preview-handbook", "web");
  ASSERT_TRUE(dep.has_value());
  nlohmann::json pod = (*dep)["spec"]["template"]["spec"];
  EXPECT_EQ(pod["containers"][0]["image"], "nginx:1.27.3-alpine");
  EXPECT_EQ(pod["initContainers"][0]["name"], "site");
  size_t site_maps = 0;
  for (const auto& cm : api.objects("configmaps")) {
    site_maps += cm["metadata"].value("namespace", "") == "preview-handbook" &&
                 cm["metadata"].value("name", "").rfind("site-", 0) == 0;
  }
  EXPECT_EQ(site_maps, 2u) << "the files' part and nginx's server block";

  auto destroyed = d.cli({"destroy", "preview-handbook", "--yes"});
  ASSERT_EQ(destroyed.exit_code, 0) << destroyed.err << d.log();
  EXPECT_FALSE(api.object("namespaces", "", "preview-handbook").has_value());
  for (const auto& cm : api.objects("configmaps")) {
    EXPECT_NE(cm["metadata"].value("namespace", ""), "preview-handbook") << cm.dump();
  }
  EXPECT_EQ(d.stop(), 0);
}

// api-database on Kubernetes through the server: the engine hands the seed at the commit
// to the driver, which runs PostgreSQL in the namespace (a StatefulSet against the double:
// no CloudNativePG), applies the seed once by a Job, and gives the app DATABASE_URL/DB_*;
// the generated password never shows in what the server answers or logs.
TEST(KubernetesDaemonTest, AnApiDatabaseGetsItsDatabaseAndSeedThroughTheServer) {
  TempDir tmp("idp-kube-daemon-db");
  (void)util::ensure_dir(tmp.sub("home"));
  FakeKubeApiServer api(FakeKubeApiServer::Options{{}, {}, {}, {"daemon-token"}});
  kube::write_kubeconfig(tmp.sub("kubeconfig"), api.url(), "    token: daemon-token\n");
  std::ofstream(tmp.sub("server.yml")) << "runtime: kubernetes\ndrivers:\n  kubernetes:\n    kubeconfig: "
                                       << tmp.sub("kubeconfig")
                                       << "\n    rollout_timeout: 30s\n    poll_interval: 20ms\n";
  GitRepo repo(tmp.sub("app"));
  repo.write_file(".idp/config.yml", "template: api-database\n"
                                     "container_image: registry.example.com/shop:{commit}\n"
                                     "container_port: 3000\n"
                                     "health_check_path: /health\n"
                                     "database:\n  seed: db/seed.sql\n"
                                     "ttl: 2h\n");
  repo.write_file("db/seed.sql", "CREATE TABLE items (id int);\nINSERT INTO items VALUES (1);\n");
  repo.commit("api with a database");
  repo.checkout_new_branch("feature/orders");
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();

  auto created = d.cli({"create", "--repo", repo.path(), "--branch", "feature/orders"});
  ASSERT_EQ(created.exit_code, 0) << created.err << d.log();
  const std::string ns = "preview-orders";
  EXPECT_EQ(d.env(ns)["runtime"], "kubernetes");
  EXPECT_TRUE(api.object("statefulsets", ns, "db").has_value()) << "PostgreSQL runs in the namespace";
  auto credentials = api.object("secrets", ns, "db-credentials");
  ASSERT_TRUE(credentials.has_value());
  std::string password =
      util::base64_decode((*credentials)["data"]["POSTGRES_PASSWORD"].get<std::string>()).value_or("");
  ASSERT_GE(password.size(), 16u);
  auto app_env = kube::env_secret(api, ns);
  ASSERT_TRUE(app_env.has_value());
  std::string url = util::base64_decode((*app_env)["data"]["DATABASE_URL"].get<std::string>()).value_or("");
  EXPECT_NE(url.find("postgresql://"), std::string::npos) << url;
  EXPECT_NE(url.find(password), std::string::npos) << "the app connects with the generated password";
  EXPECT_TRUE((*app_env)["data"].contains("DB_HOST"));
  int seed_jobs = 0;
  for (const auto& job : api.objects("jobs")) {
    seed_jobs +=
        job["metadata"].value("namespace", "") == ns && job["metadata"].value("name", "").rfind("db-seed-", 0) == 0;
  }
  EXPECT_EQ(seed_jobs, 1) << "the seed at the commit ran once";
  bool seed_sql = false;
  for (const auto& cm : api.objects("configmaps")) {
    seed_sql = seed_sql || cm.dump().find("INSERT INTO items VALUES (1);") != std::string::npos;
  }
  EXPECT_TRUE(seed_sql) << "the engine handed the seed file at the commit to the driver";

  // The password is the cluster's business: not in the environment, its events, its
  // status or the server's log.
  auto status = d.cli({"status", ns, "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  auto events = d.cli({"events", ns});
  for (const std::string& text : {d.env(ns).dump(), status.out, events.out, d.log()}) {
    EXPECT_EQ(text.find(password), std::string::npos);
  }

  auto destroyed = d.cli({"destroy", ns, "--yes"});
  ASSERT_EQ(destroyed.exit_code, 0) << destroyed.err << d.log();
  EXPECT_FALSE(api.object("namespaces", "", ns).has_value());
  EXPECT_FALSE(api.object("statefulsets", ns, "db").has_value());
  EXPECT_EQ(d.stop(), 0);
}

// `idp serve --check-config` says which line of drivers.kubernetes is wrong, and a rule
// between options (routing gateway needs its Gateway) is reported once, for the section.
TEST(KubernetesDaemonTest, CheckConfigNamesTheWrongGatewayOptionAndOnlyIt) {
  TempDir tmp("idp-kube-check");
  auto check = [&](const std::string& options) {
    std::ofstream(tmp.sub("server.yml")) << "drivers:\n  kubernetes:\n" << options;
    util::Command cmd;
    cmd.argv = {idp_binary(), "serve", "--check-config", "--config", tmp.sub("server.yml")};
    auto r = util::run(cmd);
    EXPECT_TRUE(r.has_value());
    return r.value_or(util::RunResult{});
  };
  std::string gateway = "    routing: gateway\n    gateway_name: previews\n";
  auto ok = check(gateway + "    gateway_namespace: gateways\n");
  EXPECT_EQ(ok.exit_code, 0) << ok.out << ok.err;

  auto missing = check(gateway);
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("gateway_namespace is missing"), std::string::npos) << missing.err;
  EXPECT_EQ(missing.err.find("\"gateway_name\" is for routing gateway"), std::string::npos) << missing.err;

  auto replicas = check(gateway + "    gateway_namespace: gateways\n    replicas: 50\n");
  EXPECT_EQ(replicas.exit_code, 1);
  EXPECT_NE(replicas.err.find("server.yml:6:15: key \"drivers.kubernetes.replicas\""), std::string::npos)
      << replicas.err;
  EXPECT_EQ(replicas.err.find("routing"), std::string::npos) << "only the wrong line: " << replicas.err;
}
