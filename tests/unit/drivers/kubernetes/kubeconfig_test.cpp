// kubeconfig loading: contexts, merged $KUBECONFIG lists, credentials, and the errors a
// bad kubeconfig gets.

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "drivers/kubernetes/kubeconfig.hpp"
#include "support/test_support.hpp"
#include "unit/drivers/kubernetes/kube_test_support.hpp"
#include "util/base64.hpp"

namespace idp::drivers::kubernetes {
namespace {

using testing::TempDir;

std::string write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

TEST(KubeconfigTest, LoadsTheCurrentContextWithTokenAndCaData) {
  TempDir tmp;
  std::string ca_b64 = util::base64_encode("-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n");
  auto f = testing::kube::write_kubeconfig(tmp.sub("config"), "https://10.0.0.1:6443/", "    token: secret-token\n",
                                           "    certificate-authority-data: " + ca_b64 + "\n");
  auto c = load_kubeconfig({f});
  ASSERT_TRUE(c.has_value()) << c.error().full_message();
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->token, "secret-token");
  EXPECT_EQ(c->context, "test");
  EXPECT_EQ(c->default_namespace, "default");
  EXPECT_NE(c->ca_pem.find("BEGIN CERTIFICATE"), std::string::npos);
}

TEST(KubeconfigTest, AnExplicitContextIsChosenAndAnUnknownOneSuggestsTheClosest) {
  TempDir tmp;
  auto f = write(tmp.sub("config"), R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev
  cluster: {server: "https://dev:6443"}
- name: prod
  cluster: {server: "https://prod:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: dev
  context: {cluster: dev, user: u}
- name: previews
  context: {cluster: prod, user: u}
)");
  auto c = load_kubeconfig({f}, "previews");
  ASSERT_TRUE(c.has_value()) << c.error().full_message();
  EXPECT_EQ(c->server, "https://prod:6443");
  auto bad = load_kubeconfig({f}, "preview");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, ErrorCode::invalid_config);
  EXPECT_NE(bad.error().message.find("no context \"preview\""), std::string::npos) << bad.error().message;
  EXPECT_NE(bad.error().message.find("did you mean \"previews\"?"), std::string::npos) << bad.error().message;
}

TEST(KubeconfigTest, RelativeCertificatePathsResolveAgainstTheKubeconfigsDirectory) {
  TempDir tmp;
  ASSERT_TRUE(util::ensure_dir(tmp.sub("kube/certs")).has_value());
  write(tmp.sub("kube/certs/ca.crt"), "CA PEM");
  write(tmp.sub("kube/certs/client.crt"), "CERT PEM");
  write(tmp.sub("kube/certs/client.key"), "KEY PEM");
  auto f =
      testing::kube::write_kubeconfig(tmp.sub("kube/config"), "https://h:6443",
                                      "    client-certificate: certs/client.crt\n    client-key: certs/client.key\n",
                                      "    certificate-authority: certs/ca.crt\n");
  auto c = load_kubeconfig({f});
  ASSERT_TRUE(c.has_value()) << c.error().full_message();
  EXPECT_EQ(c->ca_pem, "CA PEM");
  EXPECT_EQ(c->client_cert_pem, "CERT PEM");
  EXPECT_EQ(c->client_key_pem, "KEY PEM");
}

TEST(KubeconfigTest, KubeconfigListsMergeWithTheFirstFileWinning) {
  TempDir tmp;
  write(tmp.sub("a"), R"(current-context: one
clusters:
- name: c
  cluster: {server: "https://first:6443"}
users:
- name: u
  user: {token: first}
contexts:
- name: one
  context: {cluster: c, user: u}
)");
  write(tmp.sub("b"), R"(current-context: two
clusters:
- name: c
  cluster: {server: "https://second:6443"}
- name: only-b
  cluster: {server: "https://b:6443"}
users:
- name: u
  user: {token: second}
contexts:
- name: two
  context: {cluster: only-b, user: u}
)");
  ::setenv("KUBECONFIG", (tmp.sub("a") + ":" + tmp.sub("missing") + ":" + tmp.sub("b")).c_str(), 1);
  auto files = kubeconfig_files("");
  ::unsetenv("KUBECONFIG");
  ASSERT_EQ(files.size(), 3u);
  auto c = load_kubeconfig(files);
  ASSERT_TRUE(c.has_value()) << c.error().full_message();
  EXPECT_EQ(c->server, "https://first:6443"); // current-context "one" from the first file
  EXPECT_EQ(c->token, "first");
  auto two = load_kubeconfig(files, "two");
  ASSERT_TRUE(two.has_value()) << two.error().full_message();
  EXPECT_EQ(two->server, "https://b:6443");
  EXPECT_EQ(two->token, "first"); // user "u" of the first file wins
}

struct BadKubeconfig {
  const char* name;
  std::string user;
  std::string cluster;
  std::string expected;
};

TEST(KubeconfigTest, EachBadKubeconfigGetsAClearError) {
  std::vector<BadKubeconfig> cases = {
      {"key-without-cert", "    client-key-data: " + util::base64_encode("k") + "\n", "",
       "client-certificate and client-key go together"},
      {"bad-base64", "    token: t\n", "    certificate-authority-data: '***'\n",
       "certificate-authority-data: expected base64"},
      {"missing-ca-file", "    token: t\n", "    certificate-authority: /nonexistent/ca.crt\n",
       "certificate-authority: cannot read \"/nonexistent/ca.crt\""},
      {"exec-v1-without-interactive-mode",
       "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n", "",
       "interactiveMode: required for client.authentication.k8s.io/v1"},
      {"exec-always-interactive",
       "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n      interactiveMode: "
       "Always\n",
       "", "has no terminal"},
      {"exec-old-api", "    exec:\n      apiVersion: client.authentication.k8s.io/v1alpha1\n      command: aws\n", "",
       "apiVersion: expected client.authentication.k8s.io/v1 or /v1beta1"},
      {"auth-provider", "    auth-provider:\n      name: gcp\n", "", "auth-provider \"gcp\" is not supported"},
      {"tls-server-name-not-a-name", "    token: t\n", "    tls-server-name: 'kube internal'\n",
       "tls-server-name: expected a DNS name"},
      {"tls-server-name-empty-label", "    token: t\n", "    tls-server-name: kube..internal\n",
       "tls-server-name: expected a DNS name"},
      {"proxy-of-another-scheme", "    token: t\n", "    proxy-url: ftp://proxy.example:21\n",
       "proxy-url: expected an http://, https:// or socks5:// URL, got scheme \"ftp\""},
      {"proxy-without-scheme", "    token: t\n", "    proxy-url: proxy.example:3128\n", "(no scheme given)"},
  };
  TempDir tmp;
  for (const auto& c : cases) {
    auto f = testing::kube::write_kubeconfig(tmp.sub(c.name), "https://h:6443", c.user, c.cluster);
    auto r = load_kubeconfig({f});
    ASSERT_FALSE(r.has_value()) << c.name;
    EXPECT_EQ(r.error().code, ErrorCode::invalid_config) << c.name;
    EXPECT_NE(r.error().message.find(c.expected), std::string::npos) << c.name << ": " << r.error().message;
    EXPECT_NE(r.error().message.find(f), std::string::npos) << c.name << " names the file: " << r.error().message;
  }
}

TEST(KubeconfigTest, AMissingOrMalformedFileIsNamed) {
  TempDir tmp;
  auto missing = load_kubeconfig({tmp.sub("nope")});
  ASSERT_FALSE(missing.has_value());
  EXPECT_NE(missing.error().message.find(tmp.sub("nope")), std::string::npos) << missing.error().message;
  auto f = write(tmp.sub("broken"), "clusters:\n- name: c\n  cluster: {server: [\n");
  auto broken = load_kubeconfig({f});
  ASSERT_FALSE(broken.has_value());
  EXPECT_EQ(broken.error().code, ErrorCode::invalid_config);
  EXPECT_NE(broken.error().message.find(f + ":"), std::string::npos) << broken.error().message;
  auto http = load_kubeconfig({testing::kube::write_kubeconfig(tmp.sub("ftp"), "ftp://h", "    token: t\n")});
  ASSERT_FALSE(http.has_value());
  EXPECT_NE(http.error().message.find("server: expected an https:// URL"), std::string::npos) << http.error().message;
}

TEST(KubeconfigTest, TlsServerNameAndProxyUrlAreLoadedAndAProxysCredentialsNeverShow) {
  TempDir tmp;
  auto ok = load_kubeconfig({testing::kube::write_kubeconfig(
      tmp.sub("ok"), "https://10.0.0.1:6443", "    token: t\n",
      "    tls-server-name: kubernetes.default.svc\n    proxy-url: socks5://127.0.0.1:1080\n")});
  ASSERT_TRUE(ok.has_value()) << ok.error().full_message();
  EXPECT_EQ(ok->tls_server_name, "kubernetes.default.svc");
  EXPECT_EQ(ok->proxy_url, "socks5://127.0.0.1:1080");

  auto plain = load_kubeconfig({testing::kube::write_kubeconfig(
      tmp.sub("plain"), "http://10.0.0.1:8080", "    token: t\n", "    tls-server-name: kube.internal\n")});
  ASSERT_FALSE(plain.has_value());
  EXPECT_NE(plain.error().message.find("tls-server-name is set but the server is not https://"), std::string::npos)
      << plain.error().message;

  auto secret = load_kubeconfig({testing::kube::write_kubeconfig(tmp.sub("secret"), "https://h:6443", "    token: t\n",
                                                                 "    proxy-url: gopher://user:hunter2@proxy:70\n")});
  ASSERT_FALSE(secret.has_value());
  EXPECT_EQ(secret.error().message.find("hunter2"), std::string::npos) << secret.error().message;
}

TEST(KubeconfigTest, InClusterReadsTheServiceAccount) {
  TempDir tmp;
  ASSERT_TRUE(util::ensure_dir(tmp.sub("sa")).has_value());
  write(tmp.sub("sa/token"), "sa-token\n");
  write(tmp.sub("sa/ca.crt"), "SA CA");
  write(tmp.sub("sa/namespace"), "idp-system\n");
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  auto outside = in_cluster_connection(tmp.sub("sa"));
  ASSERT_FALSE(outside.has_value());
  EXPECT_NE(outside.error().message.find("not running in a pod"), std::string::npos);
  ::setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  auto c = in_cluster_connection(tmp.sub("sa"));
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_TRUE(c.has_value()) << c.error().full_message();
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->token_file, tmp.sub("sa/token"));
  EXPECT_EQ(c->ca_pem, "SA CA");
  EXPECT_EQ(c->default_namespace, "idp-system");
}

} // namespace
} // namespace idp::drivers::kubernetes
