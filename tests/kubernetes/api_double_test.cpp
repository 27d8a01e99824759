// The API-server double speaks the real protocol: the real kubectl (a client we did not
// write) applies and reads objects through it, and the double refuses what a real API
// server refuses for the requests the driver makes.

#include <fstream>

#include <gtest/gtest.h>

#include "fakes/fake_kube_apiserver.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/subprocess.hpp"

namespace idp::testing {
namespace {

std::string double_kubeconfig(const TempDir& tmp, const FakeKubeApiServer& api) {
  std::string path = tmp.sub("kubeconfig");
  std::ofstream(path) << "apiVersion: v1\nkind: Config\ncurrent-context: double\n"
                         "clusters:\n- name: double\n  cluster:\n    server: "
                      << api.url()
                      << "\nusers:\n- name: u\n  user: {}\n"
                         "contexts:\n- name: double\n  context:\n    cluster: double\n    user: u\n";
  return path;
}

util::RunResult kubectl(const std::string& kubeconfig, const std::vector<std::string>& args) {
  util::Command cmd;
  cmd.argv = {"kubectl", "--kubeconfig", kubeconfig, "--request-timeout=20s"};
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
  cmd.env["HOME"] = util::absolute_path(kubeconfig + ".home"); // kubectl's discovery cache stays in the test
  util::RunOptions opts;
  opts.timeout_ms = 60000;
  auto r = util::run(cmd, opts);
  EXPECT_TRUE(r.has_value()) << r.error().full_message();
  return r.value_or(util::RunResult{});
}

const char* k_manifests = R"(apiVersion: v1
kind: Namespace
metadata:
  name: pr-5
  labels:
    idp.dev/environment: pr-5
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: pr-5
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: nginx:alpine
        ports:
        - containerPort: 80
)";

TEST(KubeApiDoubleTest, KubectlAppliesServerSideAndReadsBackThroughTheDouble) {
  if (!util::find_executable("kubectl")) {
    GTEST_SKIP() << "kubectl is not installed";
  }
  TempDir tmp;
  // Plain HTTP, no token: client-go sends no bearer token over plain HTTP.
  FakeKubeApiServer api;
  std::string kc = double_kubeconfig(tmp, api);
  std::ofstream(tmp.sub("app.yaml")) << k_manifests;
  // --validate=false: the double serves no OpenAPI document for kubectl to validate against
  // (schemas are checked by manifest_schema_test with the official ones instead).
  auto applied = kubectl(
      kc, {"apply", "--server-side", "--field-manager=kubectl-test", "--validate=false", "-f", tmp.sub("app.yaml")});
  ASSERT_EQ(applied.exit_code, 0) << applied.out << applied.err;
  EXPECT_NE(applied.out.find("namespace/pr-5 serverside-applied"), std::string::npos) << applied.out;
  EXPECT_NE(applied.out.find("deployment.apps/web serverside-applied"), std::string::npos) << applied.out;
  auto dep = api.object("deployments", "pr-5", "web");
  ASSERT_TRUE(dep.has_value());
  EXPECT_EQ((*dep)["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:alpine");
  bool saw_apply = false;
  for (const auto& r : api.requests()) {
    if (r.method == "PATCH" && r.path == "/apis/apps/v1/namespaces/pr-5/deployments/web") {
      saw_apply = true;
      EXPECT_EQ(r.content_type, "application/apply-patch+yaml");
      EXPECT_NE(r.query.find("fieldManager=kubectl-test"), std::string::npos) << r.query;
      EXPECT_EQ(r.status, 201);
    }
  }
  EXPECT_TRUE(saw_apply);

  auto got = kubectl(kc, {"get", "namespace", "pr-5", "-o", "json"});
  ASSERT_EQ(got.exit_code, 0) << got.err;
  auto ns = nlohmann::json::parse(got.out);
  EXPECT_EQ(ns["metadata"]["labels"]["idp.dev/environment"], "pr-5");
  EXPECT_EQ(ns["status"]["phase"], "Active");

  auto listed = kubectl(kc, {"get", "deployments", "-n", "pr-5", "-o", "name"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out, "deployment.apps/web\n");
  // The deployment controller (simulated) has caught up by the time kubectl reads it.
  auto status = kubectl(kc, {"get", "deployment", "web", "-n", "pr-5", "-o", "jsonpath={.status.availableReplicas}"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(status.out, "1");

  // A second apply with the same manager changes nothing; another manager changing a field
  // the first one owns is a conflict, as on a real server.
  std::string changed = k_manifests;
  changed.replace(changed.find("replicas: 1"), 11, "replicas: 3");
  std::ofstream(tmp.sub("changed.yaml")) << changed;
  auto conflict = kubectl(kc, {"apply", "--server-side", "--field-manager=someone-else", "--validate=false", "-f",
                               tmp.sub("changed.yaml")});
  EXPECT_NE(conflict.exit_code, 0);
  EXPECT_NE(conflict.err.find("conflict"), std::string::npos) << conflict.err;

  auto missing = kubectl(kc, {"get", "namespace", "nope"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("namespaces \"nope\" not found"), std::string::npos) << missing.err;

  auto deleted = kubectl(kc, {"delete", "namespace", "pr-5", "--wait=false"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ((*api.object("namespaces", "", "pr-5"))["status"]["phase"], "Terminating");
}

const char* k_application = R"(apiVersion: v1
kind: Namespace
metadata:
  name: argocd
---
apiVersion: v1
kind: Namespace
metadata:
  name: pr-6
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: pr-6
  namespace: argocd
  finalizers: [resources-finalizer.argocd.argoproj.io]
spec:
  project: default
  source: {repoURL: "https://github.com/acme/shop.git", targetRevision: COMMIT, path: k8s}
  destination: {server: "https://kubernetes.default.svc", namespace: pr-6}
  syncPolicy: {automated: {prune: true, selfHeal: true}}
)";

// Argo CD mode: kubectl finds the Application kind through discovery, applies one, reads
// the status the simulated Argo CD controller wrote, and its deletion waits for the finalizer.
TEST(KubeApiDoubleTest, KubectlSeesArgoCdApplicationsAndTheirStatus) {
  if (!util::find_executable("kubectl")) {
    GTEST_SKIP() << "kubectl is not installed";
  }
  TempDir tmp;
  FakeKubeApiServer api;
  api.fail_application_revision("bad0", "Deployment \"web\" exceeded its progress deadline");
  std::string kc = double_kubeconfig(tmp, api);
  std::string good = k_application;
  good.replace(good.find("COMMIT"), 6, "0123456789abcdef0123456789abcdef01234567");
  std::ofstream(tmp.sub("app.yaml")) << good;
  auto applied = kubectl(
      kc, {"apply", "--server-side", "--field-manager=kubectl-test", "--validate=false", "-f", tmp.sub("app.yaml")});
  ASSERT_EQ(applied.exit_code, 0) << applied.out << applied.err;
  EXPECT_NE(applied.out.find("application.argoproj.io/pr-6 serverside-applied"), std::string::npos) << applied.out;
  auto status = kubectl(kc, {"get", "applications.argoproj.io", "pr-6", "-n", "argocd", "-o",
                             "jsonpath={.status.sync.status} {.status.sync.revision} {.status.health.status}"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(status.out, "Synced 0123456789abcdef0123456789abcdef01234567 Healthy");

  std::string bad = k_application;
  bad.replace(bad.find("COMMIT"), 6, "bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0");
  std::ofstream(tmp.sub("bad.yaml")) << bad;
  ASSERT_EQ(kubectl(kc, {"apply", "--server-side", "--field-manager=kubectl-test", "--validate=false", "-f",
                         tmp.sub("bad.yaml")})
                .exit_code,
            0);
  auto degraded = kubectl(kc, {"get", "application", "pr-6", "-n", "argocd", "-o",
                               "jsonpath={.status.health.status}: {.status.health.message}"});
  ASSERT_EQ(degraded.exit_code, 0) << degraded.err;
  EXPECT_EQ(degraded.out, "Degraded: Deployment \"web\" exceeded its progress deadline");

  auto deleted = kubectl(kc, {"delete", "application", "pr-6", "-n", "argocd", "--wait=false"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  auto deleting = api.object("applications", "argocd", "pr-6");
  ASSERT_TRUE(deleting.has_value()) << "the finalizer holds it until Argo CD has pruned";
  EXPECT_TRUE((*deleting)["metadata"].contains("deletionTimestamp"));
  // The double's controller finishes after one more read (set_namespace_finalize_reads).
  EXPECT_EQ(kubectl(kc, {"get", "application", "pr-6", "-n", "argocd"}).exit_code, 0);
  auto gone = kubectl(kc, {"get", "application", "pr-6", "-n", "argocd"});
  EXPECT_NE(gone.exit_code, 0);
  EXPECT_NE(gone.err.find("applications.argoproj.io \"pr-6\" not found"), std::string::npos) << gone.err;
}

// Gateway API routing: the double serves httproutes.gateway.networking.k8s.io/v1 as a
// cluster with the Gateway API CRDs does, discovery included (kubectl finds the kind).
TEST(KubeApiDoubleTest, KubectlAppliesAndDeletesAnHttpRouteThroughTheDouble) {
  if (!util::find_executable("kubectl")) {
    GTEST_SKIP() << "kubectl is not installed";
  }
  TempDir tmp;
  FakeKubeApiServer api;
  std::string kc = double_kubeconfig(tmp, api);
  std::ofstream(tmp.sub("route.yaml")) << R"(apiVersion: v1
kind: Namespace
metadata:
  name: pr-6
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: web
  namespace: pr-6
spec:
  parentRefs:
  - name: previews
    namespace: gateways
  hostnames: [pr-6.preview.test]
  rules:
  - backendRefs:
    - name: web
      port: 80
)";
  auto applied = kubectl(
      kc, {"apply", "--server-side", "--field-manager=kubectl-test", "--validate=false", "-f", tmp.sub("route.yaml")});
  ASSERT_EQ(applied.exit_code, 0) << applied.out << applied.err;
  EXPECT_NE(applied.out.find("httproute.gateway.networking.k8s.io/web serverside-applied"), std::string::npos)
      << applied.out;
  auto route = api.object("httproutes", "pr-6", "web");
  ASSERT_TRUE(route.has_value());
  EXPECT_EQ((*route)["spec"]["hostnames"][0], "pr-6.preview.test");
  auto listed = kubectl(kc, {"get", "httproutes", "-n", "pr-6", "-o", "name"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out, "httproute.gateway.networking.k8s.io/web\n");
  auto deleted = kubectl(kc, {"delete", "httproute", "web", "-n", "pr-6", "--wait=false"});
  ASSERT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_FALSE(api.object("httproutes", "pr-6", "web").has_value());
}

util::HttpResponse send(const FakeKubeApiServer& api, const std::string& method, const std::string& path,
                        const std::string& body, const std::string& content_type) {
  util::HttpRequest req;
  req.method = method;
  req.url = api.url() + path;
  req.body = body;
  if (!content_type.empty()) {
    req.headers.emplace_back("Content-Type", content_type);
  }
  auto r = util::http_request(req);
  EXPECT_TRUE(r.has_value());
  return r.value_or(util::HttpResponse{});
}

TEST(KubeApiDoubleTest, RefusesWhatARealServerRefuses) {
  FakeKubeApiServer api;
  std::string ns = R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"pr-1"}})";
  // Server-side apply needs its content type and a field manager.
  EXPECT_EQ(send(api, "PATCH", "/api/v1/namespaces/pr-1?fieldManager=idp", ns, "application/json").status, 415);
  EXPECT_EQ(send(api, "PATCH", "/api/v1/namespaces/pr-1", ns, "application/apply-patch+yaml").status, 422);
  EXPECT_EQ(send(api, "PATCH", "/api/v1/namespaces/pr-1?fieldManager=idp", ns, "application/apply-patch+yaml").status,
            201);
  // The name in the body is the name in the URL.
  EXPECT_EQ(send(api, "PATCH", "/api/v1/namespaces/other?fieldManager=idp", ns, "application/apply-patch+yaml").status,
            400);
  // Namespaced objects only in an existing namespace, and with the URL's namespace.
  std::string sa = R"({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"app","namespace":"pr-1"}})";
  EXPECT_EQ(send(api, "PATCH", "/api/v1/namespaces/pr-2/serviceaccounts/app?fieldManager=idp", sa,
                 "application/apply-patch+yaml")
                .status,
            400);
  std::string sa2 = R"({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"app"}})";
  auto no_ns = send(api, "PATCH", "/api/v1/namespaces/pr-2/serviceaccounts/app?fieldManager=idp", sa2,
                    "application/apply-patch+yaml");
  EXPECT_EQ(no_ns.status, 404);
  EXPECT_NE(no_ns.body.find("namespaces \\\"pr-2\\\" not found"), std::string::npos) << no_ns.body;
  EXPECT_EQ(send(api, "PATCH", "/api/v1/namespaces/pr-1/serviceaccounts/app?fieldManager=idp", sa2,
                 "application/apply-patch+yaml")
                .status,
            201);
  // Create of an existing object is 409; delete of a missing one is 404.
  EXPECT_EQ(send(api, "POST", "/api/v1/namespaces/pr-1/serviceaccounts", sa2, "application/json").status, 409);
  EXPECT_EQ(send(api, "DELETE", "/api/v1/namespaces/pr-1/serviceaccounts/nope", "", "").status, 404);
  // Label values a real server rejects.
  std::string bad_label =
      R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"pr-3","labels":{"idp.dev/owner":"a@b.c"}}})";
  EXPECT_EQ(
      send(api, "PATCH", "/api/v1/namespaces/pr-3?fieldManager=idp", bad_label, "application/apply-patch+yaml").status,
      422);
  // Nothing can be created in a terminating namespace.
  EXPECT_EQ(send(api, "DELETE", "/api/v1/namespaces/pr-1", "", "").status, 200);
  std::string sa3 = R"({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"other"}})";
  EXPECT_EQ(send(api, "PATCH", "/api/v1/namespaces/pr-1/serviceaccounts/other?fieldManager=idp", sa3,
                 "application/apply-patch+yaml")
                .status,
            403);
  // After it is finalized, it and everything in it are gone.
  EXPECT_EQ(send(api, "GET", "/api/v1/namespaces/pr-1", "", "").status, 200); // still Terminating
  EXPECT_EQ(send(api, "GET", "/api/v1/namespaces/pr-1", "", "").status, 404);
  EXPECT_FALSE(api.object("serviceaccounts", "pr-1", "app").has_value());
}

TEST(KubeApiDoubleTest, AnyRequestCanBeMadeToFail) {
  FakeKubeApiServer api;
  api.fail("GET", "/api/v1/namespaces", 503, 2);
  EXPECT_EQ(send(api, "GET", "/api/v1/namespaces/a", "", "").status, 503);
  EXPECT_EQ(send(api, "GET", "/api/v1/namespaces/a", "", "").status, 503);
  EXPECT_EQ(send(api, "GET", "/api/v1/namespaces/a", "", "").status, 404);
}

} // namespace
} // namespace idp::testing
