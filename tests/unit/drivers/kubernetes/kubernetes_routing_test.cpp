// Gateway API routing (routing: gateway) and the static-site template against the
// API-server double: what apply leaves on the cluster, and that switching the server's
// routing removes the route object of the other kind on each environment's next apply.

#include <gtest/gtest.h>

#include "drivers/kubernetes/kubernetes_driver.hpp"
#include "drivers/kubernetes/kubernetes_driver_factory.hpp"
#include "fakes/fake_kube_apiserver.hpp"
#include "support/test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"

namespace idp::drivers::kubernetes {

using KubeRoutingProgress = testing::kube::RecordingProgress;

class KubernetesRoutingTest : public ::testing::Test {
protected:
  void SetUp() override {
    m_kubeconfig = testing::kube::write_kubeconfig(m_tmp.sub("kubeconfig"), m_api.url(), "    token: t\n");
  }
  static nlohmann::json gateway() {
    return {{"routing", "gateway"}, {"gateway_name", "previews"}, {"gateway_namespace", "gateways"}};
  }
  std::unique_ptr<KubernetesDriver> make_driver(nlohmann::json extra = nlohmann::json::object()) {
    return testing::kube::make_driver(m_tmp.sub("home"), m_kubeconfig, std::move(extra));
  }
  std::string routing_annotation(const std::string& ns) {
    auto o = m_api.object("namespaces", "", ns);
    return o ? (*o)["metadata"]["annotations"].value("idp.dev/routing", "<none>") : "<no namespace>";
  }

  testing::TempDir m_tmp;
  testing::FakeKubeApiServer m_api;
  std::string m_kubeconfig;
  KubeRoutingProgress m_progress;
};

namespace {

using json = nlohmann::json;

TEST_F(KubernetesRoutingTest, GatewayRoutingAppliesAnHttpRouteAndNoIngress) {
  auto d = make_driver(gateway());
  auto r = d->apply(testing::kube::sample_spec(), m_progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_EQ(r->url, "https://pr-42.preview.test") << "the Gateway's listener terminates TLS (gateway_tls)";
  auto route = m_api.object("httproutes", "pr-42", "web");
  ASSERT_TRUE(route.has_value());
  EXPECT_EQ((*route)["spec"]["parentRefs"][0]["name"], "previews");
  EXPECT_EQ((*route)["spec"]["parentRefs"][0]["namespace"], "gateways");
  EXPECT_EQ((*route)["spec"]["hostnames"][0], "pr-42.preview.test");
  EXPECT_FALSE(m_api.object("ingresses", "pr-42", "web").has_value());
  EXPECT_TRUE(m_api.objects("ingresses").empty());
  EXPECT_EQ(m_api.requests().size(), 12u) << "an Ingress's 11, and one read of the Gateway's verdict on the route";
  EXPECT_TRUE(r->warnings.empty()) << "the Gateway accepted the route";
  EXPECT_EQ(routing_annotation("pr-42"), "gateway");
  auto np = m_api.object("networkpolicies", "pr-42", "idp-default-deny");
  ASSERT_TRUE(np.has_value());
  EXPECT_EQ((*np)["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "gateways");

  // A redeploy with the same routing deletes nothing.
  m_api.clear_requests();
  auto again = testing::kube::sample_spec();
  again.revision_id = 2;
  again.env.commit = "fedcba9876543210fedcba9876543210fedcba98";
  ASSERT_TRUE(d->apply(again, m_progress).has_value());
  for (const auto& q : m_api.requests()) {
    EXPECT_NE(q.method, "DELETE") << q.path;
  }

  auto plain = make_driver({{"routing", "gateway"},
                            {"gateway_name", "previews"},
                            {"gateway_namespace", "gateways"},
                            {"gateway_tls", false}});
  auto p = plain->apply(testing::kube::sample_spec("pr-43"), m_progress);
  ASSERT_TRUE(p.has_value()) << p.error().full_message();
  EXPECT_EQ(p->url, "http://pr-43.preview.test");
}

TEST_F(KubernetesRoutingTest, SwitchingTheServersRoutingRemovesTheOldRouteOnTheNextApply) {
  auto spec = testing::kube::sample_spec();
  ASSERT_TRUE(make_driver()->apply(spec, m_progress).has_value());
  ASSERT_TRUE(m_api.object("ingresses", "pr-42", "web").has_value());
  EXPECT_EQ(routing_annotation("pr-42"), "ingress");

  // The server restarts with routing: gateway; the environment's next apply.
  spec.revision_id = 2;
  auto r = make_driver(gateway())->apply(spec, m_progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_FALSE(m_api.object("ingresses", "pr-42", "web").has_value()) << "no stale Ingress left behind";
  EXPECT_TRUE(m_api.object("httproutes", "pr-42", "web").has_value());
  EXPECT_EQ(routing_annotation("pr-42"), "gateway");
  // The new route existed before the old one was deleted: no moment without either.
  int route_applied = -1, ingress_deleted = -1, i = 0;
  for (const auto& q : m_api.requests()) {
    if (q.method == "PATCH" && q.path == "/apis/gateway.networking.k8s.io/v1/namespaces/pr-42/httproutes/web") {
      route_applied = i;
    }
    if (q.method == "DELETE" && q.path == "/apis/networking.k8s.io/v1/namespaces/pr-42/ingresses/web") {
      ingress_deleted = i;
    }
    ++i;
  }
  ASSERT_GE(route_applied, 0);
  EXPECT_GT(ingress_deleted, route_applied);

  // And back.
  spec.revision_id = 3;
  ASSERT_TRUE(make_driver()->apply(spec, m_progress).has_value());
  EXPECT_FALSE(m_api.object("httproutes", "pr-42", "web").has_value());
  EXPECT_TRUE(m_api.object("ingresses", "pr-42", "web").has_value());
  EXPECT_EQ(routing_annotation("pr-42"), "ingress");
}

// A namespace made before the routing annotation existed had an Ingress: it is removed too.
TEST_F(KubernetesRoutingTest, ANamespaceWithoutTheRoutingAnnotationCountsAsIngressRouted) {
  auto spec = testing::kube::sample_spec();
  ASSERT_TRUE(make_driver()->apply(spec, m_progress).has_value());
  auto ns = *m_api.object("namespaces", "", "pr-42");
  ns["metadata"]["annotations"].erase("idp.dev/routing");
  m_api.put_object(ns);
  ASSERT_EQ(routing_annotation("pr-42"), "<none>");
  ASSERT_TRUE(make_driver(gateway())->apply(spec, m_progress).has_value());
  EXPECT_FALSE(m_api.object("ingresses", "pr-42", "web").has_value());
}

TEST_F(KubernetesRoutingTest, AFailedRemovalOfTheOldRouteIsRetriedByTheNextApply) {
  auto spec = testing::kube::sample_spec();
  ASSERT_TRUE(make_driver()->apply(spec, m_progress).has_value());
  auto d = make_driver(gateway());
  m_api.fail("DELETE", "/ingresses/web", 503);
  auto r = d->apply(spec, m_progress);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::transient) << r.error().full_message();
  EXPECT_NE(r.error().full_message().find("removing the Ingress left by routing ingress"), std::string::npos)
      << r.error().full_message();
  EXPECT_TRUE(m_api.object("ingresses", "pr-42", "web").has_value());
  EXPECT_EQ(routing_annotation("pr-42"), "ingress") << "still says what may be left";
  ASSERT_TRUE(d->apply(spec, m_progress).has_value());
  EXPECT_FALSE(m_api.object("ingresses", "pr-42", "web").has_value());
  EXPECT_EQ(routing_annotation("pr-42"), "gateway");
}

TEST_F(KubernetesRoutingTest, AStaticSiteRunsItsImageBehindTheRouteWithASpaWarning) {
  auto spec = testing::kube::static_site_spec();
  spec.config.static_site.spa = true;
  auto d = make_driver(gateway());
  auto r = d->apply(spec, m_progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_EQ(r->url, "https://docs-7.preview.test");
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("static.spa"), std::string::npos) << r->warnings[0];
  auto dep = m_api.object("deployments", "docs-7", "web");
  ASSERT_TRUE(dep.has_value());
  json c = (*dep)["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["image"], "registry.example.com/docs-site:0123456789abcdef0123456789abcdef01234567");
  EXPECT_EQ(c["readinessProbe"]["httpGet"]["path"], "/");
  EXPECT_TRUE(m_api.object("services", "docs-7", "web").has_value());
  EXPECT_TRUE(m_api.object("httproutes", "docs-7", "web").has_value());
  auto obs = d->observe(spec.env);
  ASSERT_TRUE(obs.has_value()) << obs.error().full_message();
  EXPECT_EQ(obs->health, Health::healthy) << obs->detail;
  EXPECT_EQ(obs->warnings, r->warnings) << "observe keeps reporting it (the engine replaces warnings with observe's)";
  ASSERT_TRUE(d->destroy(spec.env, m_progress).has_value());
  EXPECT_FALSE(m_api.object("httproutes", "docs-7", "web").has_value());

  // Without container_image the runtime serves static.dir itself (kubernetes_static_site_test):
  // without a static.dir there is nothing to serve.
  auto no_image = testing::kube::static_site_spec("docs-8");
  no_image.config.keys_set = {"template"};
  no_image.config.static_site.dir = "";
  auto refused = d->apply(no_image, m_progress);
  ASSERT_FALSE(refused.has_value());
  EXPECT_EQ(refused.error().code, ErrorCode::invalid_config);
  EXPECT_FALSE(m_api.object("namespaces", "", "docs-8").has_value()) << "nothing changes";
}

// Rules between options: checked on a whole section (check_options with more than one
// option, and create()), never on one option alone (the server config's line finder).
Expected<void> check_all(const nlohmann::json& options) {
  auto o = KubernetesOptions::parse(options);
  if (!o) {
    return Unexpected(o.error());
  }
  return o->check_combinations(options);
}

// The Gateway refuses the route (its listener does not admit the namespace): the workload
// is up, so the apply succeeds, with the Gateway's reason as a warning that observe keeps
// reporting (from the watch too) until an apply finds the route attached.
TEST_F(KubernetesRoutingTest, ARouteTheGatewayRefusesIsAWarningObserveKeepsUntilTheRouteIsAttached) {
  m_api.refuse_routes("NotAllowedByListeners", "no listener admits routes from namespace pr-42");
  auto d = make_driver(gateway());
  ASSERT_TRUE(d->start({}).has_value());
  auto spec = testing::kube::sample_spec();
  auto r = d->apply(spec, m_progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_EQ(r->warnings[0], "Gateway gateways/previews did not accept HTTPRoute web: Accepted is False "
                            "(NotAllowedByListeners): no listener admits routes from namespace pr-42");
  auto dep = m_api.object("deployments", "pr-42", "web");
  ASSERT_TRUE(dep.has_value());
  EXPECT_EQ((*dep)["metadata"]["annotations"].value("idp.dev/route-problem", ""), r->warnings[0]);
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto obs = d->observe(spec.env);
        return obs && obs->health == Health::healthy && obs->warnings == r->warnings;
      },
      10000))
      << "observe reports it while it holds";

  // The next deploy (same workload) keeps it; once the Gateway admits the route, the next
  // apply clears it.
  auto again = spec;
  again.revision_id = 2;
  auto r2 = d->apply(again, m_progress);
  ASSERT_TRUE(r2.has_value());
  EXPECT_EQ(r2->warnings, r->warnings) << "the workload's apply does not drop it";
  m_api.refuse_routes("", "");
  auto third = spec;
  third.revision_id = 3;
  third.env.commit = "fedcba9876543210fedcba9876543210fedcba98";
  auto r3 = d->apply(third, m_progress);
  ASSERT_TRUE(r3.has_value());
  EXPECT_TRUE(r3->warnings.empty());
  dep = m_api.object("deployments", "pr-42", "web");
  EXPECT_FALSE((*dep)["metadata"]["annotations"].contains("idp.dev/route-problem")) << dep->dump(2);
  ASSERT_TRUE(testing::wait_until(
      [&] {
        auto obs = d->observe(spec.env);
        return obs && obs->warnings.empty();
      },
      10000));
  d->stop(false);
}

TEST_F(KubernetesRoutingTest, AGatewayWithNoControllerAnsweringIsAWarningAfterTheRouteTimeout) {
  m_api.silence_routes(true);
  auto extra = gateway();
  extra["route_timeout_ms"] = 200;
  auto d = make_driver(extra);
  auto r = d->apply(testing::kube::sample_spec(), m_progress);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("no controller of Gateway gateways/previews reported on HTTPRoute web within"),
            std::string::npos)
      << r->warnings[0];
}

TEST(KubernetesRouteVerdictTest, OnlyTheServersGatewayAtTheRoutesGenerationCounts) {
  RenderSettings s;
  s.routing = "gateway";
  s.gateway_name = "previews";
  s.gateway_namespace = "gateways";
  auto parent = [](const std::string& name, const std::string& ns, const std::string& type, const std::string& status,
                   int64_t gen) {
    return json{{"parentRef", {{"name", name}, {"namespace", ns}}},
                {"conditions", json::array({{{"type", type},
                                             {"status", status},
                                             {"reason", status == "True" ? type : "Refused"},
                                             {"message", "m"},
                                             {"observedGeneration", gen}}})}};
  };
  auto route = [](json parents) {
    return json{{"metadata", {{"name", "web"}, {"namespace", "pr-1"}, {"generation", 2}}},
                {"status", {{"parents", parents}}}};
  };
  EXPECT_FALSE(route_verdict(route(json::array()), s).reported) << "no status yet";
  EXPECT_FALSE(route_verdict(route(json::array({parent("previews", "gateways", "Accepted", "True", 1)})), s).reported)
      << "the controller has not seen this generation";
  EXPECT_FALSE(route_verdict(route(json::array({parent("other", "gateways", "Accepted", "False", 2)})), s).reported)
      << "another Gateway's entry";
  auto ok = route_verdict(route(json::array({parent("previews", "gateways", "Accepted", "True", 2)})), s);
  EXPECT_TRUE(ok.reported);
  EXPECT_EQ(ok.problem, "");
  json both = parent("previews", "gateways", "Accepted", "True", 2);
  both["conditions"].push_back({{"type", "ResolvedRefs"},
                                {"status", "False"},
                                {"reason", "BackendNotFound"},
                                {"message", "service web not found"},
                                {"observedGeneration", 2}});
  auto unresolved = route_verdict(route(json::array({both})), s);
  EXPECT_TRUE(unresolved.reported);
  EXPECT_EQ(unresolved.problem, "Gateway gateways/previews cannot resolve the backend of HTTPRoute web: ResolvedRefs "
                                "is False (BackendNotFound): service web not found");
  s.gateway_section = "https";
  EXPECT_FALSE(route_verdict(route(json::array({parent("previews", "gateways", "Accepted", "True", 2)})), s).reported)
      << "with a section, only that listener's entry";
}

TEST(KubernetesRoutingOptionsTest, GatewayRoutingNeedsAGatewayAndGatewayOptionsNeedGatewayRouting) {
  auto no_gateway = check_all({{"routing", "gateway"}});
  ASSERT_FALSE(no_gateway.has_value());
  EXPECT_EQ(no_gateway.error().code, ErrorCode::invalid_config);
  EXPECT_NE(no_gateway.error().message.find("gateway_name is missing; gateway_namespace is missing"), std::string::npos)
      << no_gateway.error().message;
  const auto& f = kubernetes_driver_factory();
  auto no_ns = f.check_options({{"routing", "gateway"}, {"gateway_name", "previews"}});
  ASSERT_FALSE(no_ns.has_value());
  EXPECT_EQ(no_ns.error().message.find("gateway_name is missing"), std::string::npos) << no_ns.error().message;
  EXPECT_NE(no_ns.error().message.find("gateway_namespace is missing"), std::string::npos) << no_ns.error().message;
  auto bad = f.check_options({{"routing", "istio"}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.error().message.find("option \"routing\": expected ingress or gateway, got \"istio\""),
            std::string::npos)
      << bad.error().message;
  auto stray = check_all({{"gateway_name", "previews"}});
  ASSERT_FALSE(stray.has_value());
  EXPECT_NE(stray.error().message.find("\"gateway_name\" is for routing gateway"), std::string::npos)
      << stray.error().message;
  EXPECT_FALSE(f.check_options({{"routing", "ingress"}, {"gateway_name", "previews"}}).has_value());
  auto tls = f.check_options({{"routing", "gateway"},
                              {"gateway_name", "previews"},
                              {"gateway_namespace", "gateways"},
                              {"tls_secret", "wildcard"}});
  ASSERT_FALSE(tls.has_value());
  EXPECT_NE(tls.error().message.find("tls_secret"), std::string::npos) << tls.error().message;
  auto section = f.check_options({{"gateway_section", "HTTPS"}});
  ASSERT_FALSE(section.has_value());
  EXPECT_NE(section.error().message.find("option \"gateway_section\""), std::string::npos) << section.error().message;
  nlohmann::json good = {{"routing", "gateway"},
                         {"gateway_name", "previews"},
                         {"gateway_namespace", "gateways"},
                         {"gateway_section", "https.previews"},
                         {"gateway_proxy_namespace", "envoy-gateway-system"},
                         {"gateway_tls", false}};
  EXPECT_TRUE(f.check_options(good).has_value());
  // Each option alone passes (so the server config blames only a wrong value's line).
  for (const auto& [k, v] : good.items()) {
    EXPECT_TRUE(f.check_options({{k, v}}).has_value()) << k;
  }
  // The daemon does not start with a gateway routing it cannot render.
  DriverContext ctx;
  ctx.options = {{"routing", "gateway"}};
  auto created = f.create(ctx);
  ASSERT_FALSE(created.has_value());
  EXPECT_NE(created.error().message.find("routing gateway needs gateway_name"), std::string::npos)
      << created.error().message;
}

} // namespace
} // namespace idp::drivers::kubernetes
