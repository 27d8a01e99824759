// GitOps on the Kubernetes runtime, end to end (issue 11, "must show" 5): a real `idp serve`
// with `runtime: kubernetes` and the driver's kubeconfig pointing at the API-server double,
// driven by signed webhooks. A push applies the namespace and the workload; a second push
// rolls the new revision out; closing the pull request deletes the namespace and waits
// until it is gone; a namespace of this server whose environment was deleted behind the
// server's back is swept at the next start, and another server's namespace is left alone.
#include <gtest/gtest.h>

#include <optional>

#include "fakes/fake_kube_apiserver.hpp"
#include "integration/gitops/gitops_test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"
#include "util/base64.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

constexpr const char* k_server_id = "idp-e2e";

std::string label_of(const json& obj, const std::string& key) {
  return obj["metadata"].value("labels", json::object()).value(key, "");
}

// A key of the environment's variables' Secret, decoded ("" when absent).
std::string secret_value(const FakeKubeApiServer& api, const std::string& ns, const std::string& key) {
  auto secret = kube::env_secret(api, ns);
  if (!secret || !secret->contains("data") || !(*secret)["data"].contains(key)) {
    return "";
  }
  return util::base64_decode((*secret)["data"][key].get<std::string>()).value_or("");
}

bool terminating_or_gone(const FakeKubeApiServer& api, const std::string& ns) {
  auto obj = api.object("namespaces", "", ns);
  return !obj || (*obj)["metadata"].contains("deletionTimestamp");
}

json namespace_of(const std::string& name, const std::string& server_id) {
  return json{
      {"apiVersion", "v1"},
      {"kind", "Namespace"},
      {"metadata", {{"name", name}, {"labels", {{"idp.dev/environment", name}, {"idp.dev/managed-by", server_id}}}}}};
}

struct KubernetesRig {
  TempDir dir{"idp-gitops-kube-config"};
  FakeKubeApiServer api{FakeKubeApiServer::Options{.tokens = {"e2e-token"}}};
  std::unique_ptr<GitopsRig> rig;

  explicit KubernetesRig(const std::string& rollout_timeout = "30s") {
    std::string kubeconfig = kube::write_kubeconfig(dir.sub("kubeconfig"), api.url(), "    token: e2e-token\n");
    GitopsOptions o{.poll = false};
    o.server_config_extra = "runtime: kubernetes\n"
                            "drivers:\n"
                            "  kubernetes:\n"
                            "    kubeconfig: " +
                            json(kubeconfig).dump() +
                            "\n"
                            "    server_id: " +
                            std::string(k_server_id) +
                            "\n"
                            "    poll_interval: 20ms\n"
                            "    rollout_timeout: " +
                            rollout_timeout +
                            "\n"
                            "    destroy_timeout: 30s\n";
    rig = std::make_unique<GitopsRig>("idp-gitops-kube", o);
  }
};

} // namespace

TEST(KubernetesGitopsTest, PushAppliesTheNamespaceAPushRollsOutAndClosingThePullRequestDeletesIt) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  KubernetesRig k;
  GitopsRig& rig = *k.rig;
  rig.start();

  std::string c1 = rig.commit_version("feature/kube", "v1");
  auto [s1, b1] = rig.webhook("push", push_payload(rig.payload_repo(), "feature/kube", k_zero_commit, c1));
  ASSERT_EQ(s1, 202) << b1.dump();
  std::string name = rig.wait_env("feature/kube", 30000);
  ASSERT_EQ(name, "preview-kube") << rig.daemon->log();
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 60000)) << rig.daemon->env(name).dump(2) << rig.daemon->log();

  json env = rig.daemon->env(name);
  EXPECT_EQ(env["runtime"], "kubernetes");
  EXPECT_EQ(env["url"], "http://preview-kube.preview.localhost") << env.dump(2);
  auto ns = k.api.object("namespaces", "", name);
  ASSERT_TRUE(ns.has_value()) << "the push applied the environment's namespace";
  EXPECT_EQ(label_of(*ns, "idp.dev/managed-by"), k_server_id);
  EXPECT_EQ(label_of(*ns, "idp.dev/environment"), name);
  EXPECT_EQ(label_of(*ns, "idp.dev/owner"), "Codertocat") << "the pusher owns it";
  EXPECT_TRUE((*ns)["metadata"]["annotations"].contains("idp.dev/expires-at")) << ns->dump(2);
  for (const auto& [plural, obj] : std::vector<std::pair<std::string, std::string>>{{"resourcequotas", ""},
                                                                                    {"limitranges", ""},
                                                                                    {"networkpolicies", ""},
                                                                                    {"serviceaccounts", ""},
                                                                                    {"deployments", "web"},
                                                                                    {"services", "web"},
                                                                                    {"ingresses", "web"}}) {
    bool found = false;
    for (const auto& o : k.api.objects(plural)) {
      found = found || (o["metadata"].value("namespace", "") == name && (obj.empty() || o["metadata"]["name"] == obj));
    }
    EXPECT_TRUE(found) << plural << " of " << name;
  }
  EXPECT_EQ(secret_value(k.api, name, "APP_VERSION"), "v1");
  auto dep1 = k.api.object("deployments", name, "web");
  ASSERT_TRUE(dep1.has_value());
  std::string rev1 = (*dep1)["metadata"]["annotations"].value("idp.dev/revision", "");

  // The pull request is opened, then a second commit is pushed to it: the new revision is
  // rolled out (the Secret and the Deployment change) in the same namespace.
  auto [s2, b2] =
      rig.webhook("pull_request", pull_request_payload(rig.payload_repo(), "opened", 7, "feature/kube", c1));
  ASSERT_EQ(s2, 202) << b2.dump();
  ASSERT_TRUE(wait_until([&] { return rig.daemon->env(name)["pr_number"] == 7; }, 30000));
  std::string c2 = rig.commit_version("feature/kube", "v2");
  auto [s3, b3] =
      rig.webhook("pull_request", pull_request_payload(rig.payload_repo(), "synchronize", 7, "feature/kube", c2));
  ASSERT_EQ(s3, 202) << b3.dump();
  ASSERT_TRUE(rig.wait_ready_at(name, c2, 60000)) << rig.daemon->env(name).dump(2) << rig.daemon->log();
  EXPECT_EQ(secret_value(k.api, name, "APP_VERSION"), "v2");
  auto dep2 = k.api.object("deployments", name, "web");
  ASSERT_TRUE(dep2.has_value());
  EXPECT_NE((*dep2)["metadata"]["annotations"].value("idp.dev/revision", ""), rev1) << "a new revision rolled out";
  EXPECT_EQ(k.api.objects("namespaces").size(), 1u) << "the redeploy reused the namespace";

  // Closing the pull request destroys the environment: the namespace is deleted and the
  // driver waits until the cluster has removed it.
  auto [s4, b4] =
      rig.webhook("pull_request", pull_request_payload(rig.payload_repo(), "closed", 7, "feature/kube", c2));
  ASSERT_EQ(s4, 202) << b4.dump();
  ASSERT_TRUE(rig.daemon->wait_phase(name, "destroyed", 60000)) << rig.daemon->env(name).dump(2);
  EXPECT_FALSE(k.api.object("namespaces", "", name).has_value()) << "destroyed only once the namespace was gone";
  EXPECT_FALSE(k.api.object("deployments", name, "web").has_value());
  bool deleted = false;
  for (const auto& r : k.api.requests()) {
    deleted = deleted || (r.method == "DELETE" && r.path == "/api/v1/namespaces/" + name);
  }
  EXPECT_TRUE(deleted);
}

TEST(KubernetesGitopsTest, ARolloutThatNeverBecomesReadyIsRolledBackAndItsRevisionFailsWithThePodsReason) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  KubernetesRig k("3s");
  GitopsRig& rig = *k.rig;
  k.api.fail_pods_with_image("registry.invalid", "ImagePullBackOff");
  rig.start();
  std::string c1 = rig.commit_version("feature/bad-image", "v1");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/bad-image", k_zero_commit, c1)).first, 202);
  std::string name = rig.wait_env("feature/bad-image", 30000);
  ASSERT_FALSE(name.empty());
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 60000)) << rig.daemon->env(name).dump(2) << rig.daemon->log();
  auto before = k.api.object("deployments", name, "web");
  ASSERT_TRUE(before.has_value());
  std::string good_image = (*before)["spec"]["template"]["spec"]["containers"][0]["image"];

  // The next commit names an image whose pods never pull.
  auto config = util::read_file(source_dir() + "/examples/api-service/.idp/config.yml");
  ASSERT_TRUE(config.has_value());
  std::string c2 = rig.commit_file("feature/bad-image", ".idp/config.yml",
                                   *config + "container_image: registry.invalid/app:{commit}\n");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/bad-image", c1, c2)).first, 202);
  json failed = rig.wait_failed_and_ready(name, c2, 60000);
  ASSERT_TRUE(failed.is_object()) << rig.daemon->env(name).dump(2) << rig.daemon->log();
  std::string reason = failed.value("message", "");
  EXPECT_NE(reason.find("ImagePullBackOff"), std::string::npos) << failed.dump(2);
  EXPECT_NE(reason.find("rolled back to the pod template of revision"), std::string::npos) << failed.dump(2);

  json env = rig.daemon->env(name);
  EXPECT_EQ(env["deployed_commit"], c1) << "the old revision still serves: " << env.dump(2);
  EXPECT_EQ(env["phase"], "ready") << env.dump(2);
  auto after = k.api.object("deployments", name, "web");
  ASSERT_TRUE(after.has_value());
  EXPECT_EQ((*after)["spec"]["template"]["spec"]["containers"][0]["image"], good_image)
      << "the Deployment is back on the pod template that served";
}

// A push lands while the previous one is still rolling out: that rollout is cancelled and
// leaves the Deployment on its template, which never served. When the newer one fails too,
// the Deployment goes back to the template that served, not to the cancelled one's.
TEST(KubernetesGitopsTest, APushDuringABrokenRolloutThatFailsTooGoesBackToTheTemplateThatServed) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  KubernetesRig k("6s"); // room for the newer push to land while the first rollout waits
  GitopsRig& rig = *k.rig;
  k.api.fail_pods_with_image("registry.invalid", "ImagePullBackOff");
  rig.start();
  std::string c1 = rig.commit_version("feature/two-bad", "v1");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/two-bad", k_zero_commit, c1)).first, 202);
  std::string name = rig.wait_env("feature/two-bad", 30000);
  ASSERT_FALSE(name.empty());
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 60000)) << rig.daemon->env(name).dump(2) << rig.daemon->log();
  auto image_now = [&] {
    auto dep = k.api.object("deployments", name, "web");
    return dep ? (*dep)["spec"]["template"]["spec"]["containers"][0].value("image", "") : std::string();
  };
  std::string good_image = image_now();
  ASSERT_FALSE(good_image.empty());

  auto config = util::read_file(source_dir() + "/examples/api-service/.idp/config.yml");
  ASSERT_TRUE(config.has_value());
  std::string c2 = rig.commit_file("feature/two-bad", ".idp/config.yml",
                                   *config + "container_image: registry.invalid/first:{commit}\n");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/two-bad", c1, c2)).first, 202);
  ASSERT_TRUE(wait_until([&] { return image_now().find("registry.invalid/first:") == 0; }, 60000))
      << "the second revision is rolling out\n"
      << rig.daemon->log();
  std::string c3 = rig.commit_file("feature/two-bad", ".idp/config.yml",
                                   *config + "container_image: registry.invalid/second:{commit}\n");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/two-bad", c2, c3)).first, 202);

  json failed = rig.wait_failed_and_ready(name, c3, 60000);
  ASSERT_TRUE(failed.is_object()) << rig.daemon->env(name).dump(2) << rig.daemon->log();
  std::string first_rev;
  for (const auto& r : rig.revisions(name)) {
    if (r["commit"] == c1) {
      first_rev = std::to_string(r["id"].get<int64_t>());
    }
    if (r["commit"] == c2) {
      EXPECT_NE(r["status"], "serving") << r.dump(2);
    }
  }
  ASSERT_FALSE(first_rev.empty()) << rig.revisions(name).dump(2);
  std::string message = failed.value("message", "");
  std::string phrase = "rolled back to the pod template of revision ";
  size_t at = message.find(phrase);
  ASSERT_NE(at, std::string::npos) << failed.dump(2);
  size_t end = message.find_first_not_of("0123456789", at + phrase.size());
  EXPECT_EQ(message.substr(at + phrase.size(), end == std::string::npos ? std::string::npos : end - at - phrase.size()),
            first_rev)
      << "the first commit's revision, not the cancelled rollout's: " << failed.dump(2);
  EXPECT_EQ(image_now(), good_image) << "the Deployment serves the first commit's template again";
  EXPECT_EQ(rig.daemon->env(name)["deployed_commit"], c1);
}

TEST(KubernetesGitopsTest, TheNextStartSweepsANamespaceWhoseEnvironmentIsGoneAndKeepsOtherServers) {
  IDP_REQUIRE_WEBHOOK_EXAMPLES();
  KubernetesRig k;
  GitopsRig& rig = *k.rig;
  rig.start();
  std::string c1 = rig.commit_version("feature/live", "v1");
  ASSERT_EQ(rig.webhook("push", push_payload(rig.payload_repo(), "feature/live", k_zero_commit, c1)).first, 202);
  std::string name = rig.wait_env("feature/live", 30000);
  ASSERT_EQ(name, "preview-live");
  ASSERT_TRUE(rig.wait_ready_at(name, c1, 60000)) << rig.daemon->env(name).dump(2) << rig.daemon->log();

  // Behind the server's back: a namespace of this server for an environment it does not
  // know (its record was lost), and one of another idp server on the same cluster.
  k.api.put_object(namespace_of("preview-ghost", k_server_id));
  k.api.put_object(namespace_of("preview-theirs", "another-idp"));
  rig.restart();

  ASSERT_TRUE(wait_until([&] { return terminating_or_gone(k.api, "preview-ghost"); }, 30000))
      << "the orphan sweep deletes this server's namespace without an environment\n"
      << rig.daemon->log();
  EXPECT_FALSE(terminating_or_gone(k.api, "preview-theirs")) << "another server's namespace is not ours to delete";
  EXPECT_FALSE(terminating_or_gone(k.api, name)) << "a live environment's namespace stays";
  EXPECT_EQ(rig.daemon->env(name)["phase"], "ready");
}

TEST(KubernetesGitopsTest, RenderPrintsTheManifestsOfABranchWithoutApplyingAnything) {
  KubernetesRig k;
  GitopsRig& rig = *k.rig;
  rig.start();
  std::string c1 = rig.commit_version("feature/render", "v7");
  size_t requests_before = k.api.requests().size();

  auto r =
      rig.daemon->cli({"render", "--runtime", "kubernetes", "--repo", rig.remote_path, "--branch", "feature/render"});
  ASSERT_EQ(r.exit_code, 0) << r.err << rig.daemon->log();
  for (const char* part :
       {"kind: Namespace", "name: preview-render", "idp.dev/managed-by: idp-e2e", "kind: ResourceQuota",
        "kind: NetworkPolicy", "kind: Deployment", "kind: Service", "kind: Ingress",
        "host: preview-render.preview.localhost", "APP_VERSION: v7", "maxUnavailable: 0"}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << part << " in\n" << r.out;
  }
  EXPECT_NE(r.err.find(short_sha(c1)), std::string::npos) << "names the commit it rendered: " << r.err;
  EXPECT_EQ(k.api.requests().size(), requests_before) << "rendering needs no cluster";
  EXPECT_TRUE(k.api.objects("namespaces").empty());
  EXPECT_TRUE(rig.env_of("feature/render").is_null()) << "nothing recorded";

  auto j = rig.daemon->cli(
      {"render", "--json", "--repo", rig.remote_path, "--branch", "feature/render", "--name", "review-7"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  json out = json::parse(j.out, nullptr, false);
  ASSERT_TRUE(out.is_object()) << j.out;
  EXPECT_EQ(out["runtime"], "kubernetes") << "the server's default runtime";
  EXPECT_EQ(out["commit"], c1);
  EXPECT_EQ(out["template"], "api-service");
  EXPECT_NE(out["manifests"].get<std::string>().find("name: review-7"), std::string::npos);

  // A runtime with nothing to render, an unknown runtime, a branch that does not exist:
  // each a clear error, and still nothing on the cluster.
  auto local =
      rig.daemon->cli({"render", "--runtime", "local", "--repo", rig.remote_path, "--branch", "feature/render"});
  EXPECT_NE(local.exit_code, 0);
  EXPECT_NE(local.err.find("render is not supported by driver local"), std::string::npos) << local.err;
  auto unknown = rig.daemon->cli({"render", "--runtime", "nomad", "--repo", rig.remote_path, "--branch", "main"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_NE(unknown.err.find("\"nomad\" is not enabled"), std::string::npos) << unknown.err;
  auto missing = rig.daemon->cli({"render", "--repo", rig.remote_path, "--branch", "no/such-branch"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_NE(missing.err.find("no/such-branch"), std::string::npos) << missing.err;
  EXPECT_TRUE(k.api.objects("namespaces").empty());

  // It clones what it is given: a viewer may not.
  auto viewer = rig.daemon->cli({"token", "create", "--name", "render-viewer", "--role", "viewer"});
  ASSERT_EQ(viewer.exit_code, 0) << viewer.err;
  auto [status, body] = rig.daemon->api_as(util::trim(viewer.out), "POST", "/api/v1/render",
                                           json{{"repo", rig.remote_path}, {"branch", "feature/render"}}.dump());
  EXPECT_EQ(status, 403) << body.dump();
}

TEST(KubernetesGitopsTest, ATemplateWithoutKubernetesPartsIsRefusedWithItsReason) {
  KubernetesRig k;
  GitopsRig& rig = *k.rig;
  rig.start();
  std::string c1 = rig.commit_file("feature/infra", ".idp/config.yml", "template: tf-test\n");
  auto created = rig.daemon->cli({"create", "--repo", rig.remote_path, "--branch", "feature/infra"});
  EXPECT_NE(created.exit_code, 0) << created.out;
  EXPECT_NE(created.err.find("tf-test"), std::string::npos) << created.err;
  EXPECT_NE(created.err.find("kubernetes"), std::string::npos) << created.err;
  EXPECT_TRUE(k.api.objects("namespaces").empty()) << "nothing was applied";
  (void)c1;
}
