// Runs the Driver contract (driver_contract.cpp) against the Kubernetes driver: always
// against the API-server double (tests/fakes/fake_kube_apiserver), and against a real
// cluster when IDP_TEST_KUBECONFIG names a kubeconfig (kind, k3s: docs/kubernetes.md); and
// in Argo CD mode (mode: argocd) against the double, which plays Argo CD's controller.

#include <cstdlib>
#include <fstream>

#include "contract/driver_contract.hpp"
#include "drivers/kubernetes/kubernetes_driver_factory.hpp"
#include "fakes/fake_kube_apiserver.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"

namespace idp::testing {
namespace {

constexpr const char* k_broken_image = "registry.example.com/never-pulls:1";

DriverContractSetup make_kubernetes_setup(const std::string& tmpdir, const std::string& kubeconfig,
                                          std::shared_ptr<void> resources, const std::string& healthy_image,
                                          const nlohmann::json& extra_options = nlohmann::json::object()) {
  DriverContractSetup s;
  s.resources = std::move(resources);
  drivers::DriverContext ctx;
  ctx.home = tmpdir + "/home";
  ctx.domain = "preview.test";
  ctx.options = {{"kubeconfig", kubeconfig},
                 {"server_id", "idp-contract"},
                 {"rollout_timeout_ms", 1000},
                 {"destroy_timeout_ms", 120000},
                 {"poll_interval_ms", 20}};
  ctx.options.update(extra_options);
  if (std::getenv("IDP_TEST_KUBECONFIG")) {
    ctx.options["rollout_timeout_ms"] = 120000; // real pods take a while to start
    ctx.options["poll_interval_ms"] = 500;
  }
  auto d = drivers::kubernetes::kubernetes_driver_factory().create(ctx);
  if (!d) {
    ADD_FAILURE() << d.error().full_message();
    return s;
  }
  s.driver = std::move(*d);
  s.healthy = kube::sample_spec("idp-contract");
  s.healthy.config.container_image = healthy_image;
  s.healthy.config.container_port = 80;
  s.healthy.config.health_check_path = "/";
  s.unhealthy = s.healthy;
  s.unhealthy.revision_id = 2;
  s.unhealthy.config.container_image = k_broken_image;
  return s;
}

DriverContractSetup make_double(const std::string& tmpdir) {
  auto api = std::make_shared<FakeKubeApiServer>();
  api->fail_pods_with_image("never-pulls", "ImagePullBackOff");
  std::string kc = kube::write_kubeconfig(tmpdir + "/kubeconfig", api->url(), "    token: contract\n");
  return make_kubernetes_setup(tmpdir, kc, api, "nginx:alpine");
}

// Argo CD mode: the double plays Argo CD's controller; the unhealthy spec is a commit whose
// sync goes Degraded (its pods never become ready).
constexpr const char* k_broken_commit = "bad0bad0bad0bad0bad0bad0bad0bad0bad0bad0";

DriverContractSetup make_argocd_double(const std::string& tmpdir) {
  auto api = std::make_shared<FakeKubeApiServer>();
  api->put_object({{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "argocd"}}}});
  api->fail_application_revision(k_broken_commit, "Deployment \"web\" exceeded its progress deadline");
  std::string kc = kube::write_kubeconfig(tmpdir + "/kubeconfig", api->url(), "    token: contract\n");
  auto s = make_kubernetes_setup(tmpdir, kc, api, "nginx:alpine", {{"mode", "argocd"}});
  s.unhealthy.env.commit = k_broken_commit;
  return s;
}

// The same contract with Gateway API routing: an HTTPRoute per environment instead of an
// Ingress (the double serves gateway.networking.k8s.io/v1 httproutes as the CRD would).
DriverContractSetup make_double_gateway(const std::string& tmpdir) {
  auto api = std::make_shared<FakeKubeApiServer>();
  api->fail_pods_with_image("never-pulls", "ImagePullBackOff");
  std::string kc = kube::write_kubeconfig(tmpdir + "/kubeconfig", api->url(), "    token: contract\n");
  return make_kubernetes_setup(
      tmpdir, kc, api, "nginx:alpine",
      {{"routing", "gateway"}, {"gateway_name", "previews"}, {"gateway_namespace", "gateways"}});
}

DriverContractSetup make_real(const std::string& tmpdir) {
  return make_kubernetes_setup(tmpdir, std::getenv("IDP_TEST_KUBECONFIG"), nullptr, "nginx:alpine");
}

std::vector<DriverContractFactory> kubernetes_factories() {
  std::vector<DriverContractFactory> out = {DriverContractFactory{"kubernetes_double", make_double},
                                            DriverContractFactory{"kubernetes_argocd_double", make_argocd_double},
                                            DriverContractFactory{"kubernetes_double_gateway", make_double_gateway}};
  if (std::getenv("IDP_TEST_KUBECONFIG")) {
    out.push_back(DriverContractFactory{"kubernetes_real_cluster", make_real});
  }
  return out;
}

} // namespace

INSTANTIATE_TEST_SUITE_P(Kubernetes, DriverContract, ::testing::ValuesIn(kubernetes_factories()), driver_contract_name);

// Without IDP_TEST_KUBECONFIG the real-cluster run is skipped, visibly.
TEST(DriverContractKubernetesRealCluster, RunsWhenIdpTestKubeconfigIsSet) {
  if (!std::getenv("IDP_TEST_KUBECONFIG")) {
    GTEST_SKIP() << "IDP_TEST_KUBECONFIG is not set: the contract ran against the API-server double only "
                    "(docs/kubernetes.md: running it against kind or k3s)";
  }
  SUCCEED() << "instantiated as Kubernetes/DriverContract.*/kubernetes_real_cluster";
}

} // namespace idp::testing
