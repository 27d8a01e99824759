// The REST client against the API-server double: each kind of kubeconfig user reaches it
// (token, client certificate over TLS, exec plugin with its token refreshed after expiry),
// and each failure gets an error naming what went wrong.

#include <fstream>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include "drivers/kubernetes/kube_client.hpp"
#include "fakes/fake_clock.hpp"
#include "fakes/fake_kube_apiserver.hpp"
#include "support/test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"
#include "util/ports.hpp"

namespace idp::drivers::kubernetes {
namespace {

using testing::FakeClock;
using testing::FakeKubeApiServer;
using testing::TempDir;

const ResourceKind& ns_kind() { return *find_kind("v1", "Namespace"); }
const ResourceKind& deploy_kind() { return *find_kind("apps/v1", "Deployment"); }

KubeClient client_for(const std::string& kubeconfig, util::Clock* clock) {
  auto c = load_kubeconfig({kubeconfig});
  EXPECT_TRUE(c.has_value()) << c.error().full_message();
  return KubeClient(c.value_or(ClusterConnection{}), clock, 5000);
}

nlohmann::json namespace_obj(const std::string& name) {
  return {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}};
}

TEST(KubeClientTest, ATokenUserReachesTheServerWithItsBearerToken) {
  TempDir tmp;
  FakeKubeApiServer api(FakeKubeApiServer::Options{"", "", "", {"t-123"}});
  FakeClock clock;
  auto c = client_for(testing::kube::write_kubeconfig(tmp.sub("config"), api.url(), "    token: t-123\n"), &clock);
  auto got = c.get(ns_kind(), "", "pr-1");
  ASSERT_TRUE(got.has_value()) << got.error().full_message();
  EXPECT_FALSE(got->has_value()); // 404 is "not there", not an error
  auto applied = c.apply(namespace_obj("pr-1"), "idp");
  ASSERT_TRUE(applied.has_value()) << applied.error().full_message();
  EXPECT_EQ((*applied)["metadata"]["name"], "pr-1");
  auto reqs = api.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].authorization, "Bearer t-123");
  EXPECT_EQ(reqs[1].method, "PATCH");
  EXPECT_EQ(reqs[1].content_type, "application/apply-patch+yaml");
  EXPECT_NE(reqs[1].query.find("fieldManager=idp"), std::string::npos);
}

TEST(KubeClientTest, ARejectedTokenIs401NamingVerbResourceAndNamespace) {
  TempDir tmp;
  FakeKubeApiServer api(FakeKubeApiServer::Options{"", "", "", {"right"}});
  FakeClock clock;
  auto c = client_for(testing::kube::write_kubeconfig(tmp.sub("config"), api.url(), "    token: wrong\n"), &clock);
  auto r = c.get(deploy_kind(), "pr-1", "web");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
  EXPECT_NE(r.error().message.find("401 Unauthorized"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("get deployments \"web\" in namespace \"pr-1\""), std::string::npos)
      << r.error().message;
  EXPECT_EQ(r.error().message.find("wrong"), std::string::npos) << "the token never appears: " << r.error().message;
}

TEST(KubeClientTest, AForbiddenRequestIs403NamingVerbResourceAndNamespace) {
  TempDir tmp;
  FakeKubeApiServer api;
  FakeClock clock;
  auto c = client_for(testing::kube::write_kubeconfig(tmp.sub("config"), api.url(), "    token: t\n"), &clock);
  ASSERT_TRUE(c.apply(namespace_obj("pr-1"), "idp").has_value());
  api.forbid("patch", "deployments", "pr-1");
  nlohmann::json dep = {{"apiVersion", "apps/v1"},
                        {"kind", "Deployment"},
                        {"metadata", {{"name", "web"}, {"namespace", "pr-1"}}},
                        {"spec",
                         {{"selector", {{"matchLabels", {{"a", "b"}}}}},
                          {"template",
                           {{"metadata", {{"labels", {{"a", "b"}}}}},
                            {"spec", {{"containers", {{{"name", "app"}, {"image", "nginx"}}}}}}}}}}};
  auto r = c.apply(dep, "idp");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
  EXPECT_NE(r.error().message.find("refused to patch deployments \"web\" in namespace \"pr-1\" (403 Forbidden)"),
            std::string::npos)
      << r.error().message;
}

TEST(KubeClientTest, AnUnreachableServerIsATransientErrorNamingIt) {
  TempDir tmp;
  int port = util::find_free_port().value();
  FakeClock clock;
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  auto c = client_for(testing::kube::write_kubeconfig(tmp.sub("config"), url, "    token: t\n"), &clock);
  auto r = c.get(ns_kind(), "", "pr-1");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::transient);
  EXPECT_NE(r.error().message.find(url), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("unreachable"), std::string::npos) << r.error().message;
}

} // namespace

// Outside the anonymous namespace: unity builds turn a fixture there into
// -Wsubobject-linkage errors.
class KubeClientTlsTest : public ::testing::Test {
protected:
  void SetUp() override { m_pki = testing::kube::make_test_pki(m_tmp.sub("pki")); }
  testing::TempDir m_tmp;
  testing::kube::TestPki m_pki;
  testing::FakeClock m_clock;
};

namespace {

TEST_F(KubeClientTlsTest, ACertificateUserReachesAServerThatRequiresClientCertificates) {
  FakeKubeApiServer api(FakeKubeApiServer::Options{m_pki.server_crt, m_pki.server_key, m_pki.ca_crt, {}});
  auto c = client_for(testing::kube::write_kubeconfig(m_tmp.sub("config"), api.url(),
                                                      "    client-certificate: " + m_pki.client_crt +
                                                          "\n    client-key: " + m_pki.client_key + "\n",
                                                      "    certificate-authority: " + m_pki.ca_crt + "\n"),
                      &m_clock);
  auto r = c.apply(namespace_obj("pr-7"), "idp");
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_TRUE(api.object("namespaces", "", "pr-7").has_value());
}

TEST_F(KubeClientTlsTest, AServerCertificateOfAnotherCaIsNotTrusted) {
  FakeKubeApiServer api(FakeKubeApiServer::Options{m_pki.server_crt, m_pki.server_key, "", {}});
  auto c = client_for(testing::kube::write_kubeconfig(m_tmp.sub("config"), api.url(), "    token: t\n",
                                                      "    certificate-authority: " + m_pki.other_ca_crt + "\n"),
                      &m_clock);
  auto r = c.get(ns_kind(), "", "pr-1");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::permanent);
  EXPECT_NE(r.error().message.find("TLS certificate is not trusted"), std::string::npos) << r.error().message;
}

TEST_F(KubeClientTlsTest, TlsServerNameChecksTheCertificateAgainstThatNameWhileConnectingToTheServer) {
  // A certificate for the name kube.internal alone (no IP): reached at 127.0.0.1, it is
  // trusted only when the kubeconfig says which name to check.
  testing::kube::make_leaf(m_pki.dir, "named", "kube.internal",
                           "subjectAltName=DNS:kube.internal\nextendedKeyUsage=serverAuth");
  FakeKubeApiServer api(FakeKubeApiServer::Options{m_pki.dir + "/named.crt", m_pki.dir + "/named.key", "", {"t"}});
  auto with_name = [&](const std::string& file, const std::string& name) {
    return client_for(testing::kube::write_kubeconfig(m_tmp.sub(file), api.url(), "    token: t\n",
                                                      "    certificate-authority: " + m_pki.ca_crt + "\n" +
                                                          (name.empty() ? "" : "    tls-server-name: " + name + "\n")),
                      &m_clock);
  };
  auto named = with_name("named", "kube.internal");
  auto r = named.apply(namespace_obj("pr-8"), "idp");
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_TRUE(api.object("namespaces", "", "pr-8").has_value());

  for (const auto& [file, name] :
       std::vector<std::pair<std::string, std::string>>{{"unnamed", ""}, {"other", "other.internal"}}) {
    auto c = with_name(file, name);
    auto g = c.get(ns_kind(), "", "pr-8");
    ASSERT_FALSE(g.has_value()) << file;
    EXPECT_EQ(g.error().code, ErrorCode::permanent) << file;
    EXPECT_NE(g.error().message.find("TLS certificate is not trusted"), std::string::npos) << g.error().message;
  }
}

TEST_F(KubeClientTlsTest, AProxyUrlTunnelsEveryRequestThroughTheProxy) {
  FakeKubeApiServer api(FakeKubeApiServer::Options{m_pki.server_crt, m_pki.server_key, "", {"t"}});
  testing::kube::ConnectProxy proxy;
  auto c = client_for(
      testing::kube::write_kubeconfig(m_tmp.sub("proxied"), api.url(), "    token: t\n",
                                      "    certificate-authority: " + m_pki.ca_crt +
                                          "\n    proxy-url: http://127.0.0.1:" + std::to_string(proxy.port()) + "\n"),
      &m_clock);
  auto r = c.apply(namespace_obj("pr-9"), "idp");
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_TRUE(api.object("namespaces", "", "pr-9").has_value());
  auto targets = proxy.targets();
  ASSERT_FALSE(targets.empty()) << "the request went through the proxy";
  for (const auto& t : targets) {
    EXPECT_EQ(t, "127.0.0.1:" + std::to_string(api.port()));
  }

  // A proxy that is not there: the server is unreachable, a transient error.
  int closed = util::find_free_port().value();
  auto d = client_for(
      testing::kube::write_kubeconfig(m_tmp.sub("dead-proxy"), api.url(), "    token: t\n",
                                      "    certificate-authority: " + m_pki.ca_crt +
                                          "\n    proxy-url: http://127.0.0.1:" + std::to_string(closed) + "\n"),
      &m_clock);
  auto dead = d.get(ns_kind(), "", "pr-9");
  ASSERT_FALSE(dead.has_value());
  EXPECT_EQ(dead.error().code, ErrorCode::transient) << dead.error().full_message();
}

TEST_F(KubeClientTlsTest, NoClientCertificateWhereOneIsRequiredFailsTheHandshake) {
  FakeKubeApiServer api(FakeKubeApiServer::Options{m_pki.server_crt, m_pki.server_key, m_pki.ca_crt, {}});
  auto c = client_for(testing::kube::write_kubeconfig(m_tmp.sub("config"), api.url(), "    token: t\n",
                                                      "    certificate-authority: " + m_pki.ca_crt + "\n"),
                      &m_clock);
  auto r = c.get(ns_kind(), "", "pr-1");
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message.find(api.url()), std::string::npos) << r.error().message;
  EXPECT_TRUE(r.error().code == ErrorCode::permanent || r.error().code == ErrorCode::transient)
      << r.error().full_message();
}

// An exec plugin (a shell script, like `aws eks get-token`) that prints token-<run number>,
// expiring at the time in <dir>/expiry when that file exists, and records its input.
std::string write_plugin(const std::string& dir) {
  std::string path = dir + "/get-token.sh";
  std::ofstream(path) << R"SH(#!/bin/sh
d=$(dirname "$0")
n=$(cat "$d/count" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$d/count"
printf '%s' "$KUBERNETES_EXEC_INFO" > "$d/exec-info.json"
if [ -n "$FAIL_WITH" ]; then echo "$FAIL_WITH" >&2; exit 3; fi
if [ -f "$d/expiry" ]; then
  printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"token-%s","expirationTimestamp":"%s"}}' "$n" "$(cat "$d/expiry")"
else
  printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"token-%s"}}' "$n"
fi
)SH";
  ::chmod(path.c_str(), 0755);
  return path;
}

std::string exec_user(const std::string& command, const std::string& extra = "") {
  return "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: " + command +
         "\n      interactiveMode: Never\n      provideClusterInfo: true\n      installHint: install the test "
         "plugin\n" +
         extra;
}

TEST(KubeClientExecTest, ThePluginsTokenIsCachedUntilItsExpiryThenRefreshed) {
  TempDir tmp;
  FakeKubeApiServer api(FakeKubeApiServer::Options{"", "", "", {"token-1", "token-2"}});
  FakeClock clock;
  std::string plugin = write_plugin(tmp.path());
  std::ofstream(tmp.sub("expiry")) << util::format_iso8601(clock.now_ms() + 60000);
  auto c = client_for(testing::kube::write_kubeconfig(tmp.sub("config"), api.url(), exec_user(plugin)), &clock);
  ASSERT_TRUE(c.get(ns_kind(), "", "a").has_value());
  ASSERT_TRUE(c.get(ns_kind(), "", "b").has_value());
  EXPECT_EQ(c.exec_runs(), 1) << "a token that has not expired is reused";
  clock.advance(60001);
  std::ofstream(tmp.sub("expiry")) << util::format_iso8601(clock.now_ms() + 60000);
  auto r = c.get(ns_kind(), "", "c");
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_EQ(c.exec_runs(), 2) << "an expired token is refreshed";
  auto reqs = api.requests();
  ASSERT_EQ(reqs.size(), 3u);
  EXPECT_EQ(reqs[0].authorization, "Bearer token-1");
  EXPECT_EQ(reqs[1].authorization, "Bearer token-1");
  EXPECT_EQ(reqs[2].authorization, "Bearer token-2");
  // What the plugin was told (client.authentication.k8s.io/v1 ExecCredential input).
  auto info = nlohmann::json::parse(util::read_file(tmp.sub("exec-info.json")).value());
  EXPECT_EQ(info["apiVersion"], "client.authentication.k8s.io/v1");
  EXPECT_EQ(info["kind"], "ExecCredential");
  EXPECT_EQ(info["spec"]["interactive"], false);
  EXPECT_EQ(info["spec"]["cluster"]["server"], api.url());
}

TEST(KubeClientExecTest, ATokenTheServerRejectsIsRefreshedOnce) {
  TempDir tmp;
  FakeKubeApiServer api(FakeKubeApiServer::Options{"", "", "", {"token-2"}});
  FakeClock clock;
  std::string plugin = write_plugin(tmp.path());
  auto c = client_for(testing::kube::write_kubeconfig(tmp.sub("config"), api.url(), exec_user(plugin)), &clock);
  auto r = c.get(ns_kind(), "", "a");
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  EXPECT_EQ(c.exec_runs(), 2);
}

TEST(KubeClientExecTest, APluginThatFailsOrIsMissingGetsAClearError) {
  TempDir tmp;
  FakeKubeApiServer api;
  FakeClock clock;
  std::string plugin = write_plugin(tmp.path());
  auto c = client_for(testing::kube::write_kubeconfig(tmp.sub("config"), api.url(),
                                                      exec_user(plugin, "      env:\n      - name: FAIL_WITH\n"
                                                                        "        value: not logged in to the cloud\n")),
                      &clock);
  auto r = c.get(ns_kind(), "", "a");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code, ErrorCode::invalid_config);
  EXPECT_NE(r.error().message.find("exited with code 3: not logged in to the cloud"), std::string::npos)
      << r.error().message;
  EXPECT_TRUE(api.requests().empty()) << "nothing is sent without a credential";

  auto missing = client_for(
      testing::kube::write_kubeconfig(tmp.sub("config2"), api.url(), exec_user(tmp.sub("no-such-plugin"))), &clock);
  auto m = missing.get(ns_kind(), "", "a");
  ASSERT_FALSE(m.has_value());
  EXPECT_NE(m.error().message.find("install the test plugin"), std::string::npos) << m.error().message;
}

} // namespace
} // namespace idp::drivers::kubernetes
