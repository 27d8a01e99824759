// Issue 9, HTTPS: with `https: {mode: internal}` the router's Caddy serves the API and the
// dashboard at https://idp.<domain> and every environment over TLS, with certificates of
// its local CA, and only for names that are the API or a live environment.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "support/daemon_process.hpp"
#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/numbers.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

using namespace idp;
using namespace idp::testing;
using nlohmann::json;

namespace {

// What curl got over TLS, trusting only `ca` and resolving `host` to 127.0.0.1.
struct HttpsAnswer {
  int curl_exit = -1; // 0: an answer; 35 (handshake) or 60 (certificate): no TLS session
  int status = 0;
  std::string headers;
  std::string body;
  std::string err;
};

HttpsAnswer curl_https(const std::string& ca, const std::string& host, int port, const std::string& path,
                       const std::vector<std::string>& extra = {}) {
  std::string p = std::to_string(port);
  util::Command c;
  c.argv = {"curl", "-sS", "--max-time",    "30", "--cacert", ca, "--resolve", host + ":" + p + ":127.0.0.1", "-D",
            "-",    "-w",  "\n%{http_code}"};
  c.argv.insert(c.argv.end(), extra.begin(), extra.end());
  c.argv.push_back("https://" + host + ":" + p + path);
  util::RunOptions o;
  o.timeout_ms = 60000;
  auto r = util::run(c, o);
  HttpsAnswer a;
  if (!r) {
    a.err = r.error().message;
    return a;
  }
  a.curl_exit = r->exit_code;
  a.err = r->err;
  auto nl = r->out.rfind('\n');
  if (nl != std::string::npos) {
    a.status = util::parse_int<int>(r->out.substr(nl + 1)).value_or(0);
    std::string rest = r->out.substr(0, nl);
    auto blank = rest.find("\r\n\r\n");
    a.headers = blank == std::string::npos ? rest : rest.substr(0, blank);
    a.body = blank == std::string::npos ? "" : rest.substr(blank + 4);
  }
  return a;
}

// The daemon's answer to Caddy's question for `host` (200 yes, 403 no), over loopback.
long tls_ask_status(const DaemonProcess& d, const std::string& host,
                    const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  util::HttpRequest r;
  r.url = d.api_url() + "/internal/tls-ask?domain=" + util::url_encode(host);
  r.headers = headers;
  auto resp = util::http_request(r);
  return resp ? resp->status : 0;
}

} // namespace

TEST(SecurityHttpsTest, InternalCaServesTheApiAndPreviewsAndNoOtherName) {
  TempDir tmp("idp-sec-https");
  (void)util::ensure_dir(tmp.sub("home"));
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "https:\n  mode: internal\n  port: 0\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  d.start();
  auto info = json::parse(util::read_file(d.home() + "/daemon.json").value_or("{}"));
  int port = info.value("https_port", 0);
  ASSERT_GT(port, 0) << info.dump();
  std::string ca = info.value("ca_root", "");
  EXPECT_EQ(ca, d.home() + "/router/data/pki/authorities/local/root.crt");
  ASSERT_TRUE(util::path_exists(ca)) << "Caddy's local CA, inside the home";
  EXPECT_EQ(info.value("https_url", ""), "https://idp.preview.localhost:" + std::to_string(port));
  EXPECT_NE(d.log().find(ca), std::string::npos) << "idp serve says where the root certificate is:\n" << d.log();
  const std::string api_host = "idp.preview.localhost";

  // The API and the dashboard, over TLS with a certificate of the local CA.
  auto health = curl_https(ca, api_host, port, "/healthz");
  ASSERT_EQ(health.curl_exit, 0) << health.err;
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(json::parse(health.body, nullptr, false).value("status", ""), "ok") << health.body;
  std::string bearer = "Authorization: Bearer " + d.admin_token();
  auto list = curl_https(ca, api_host, port, "/api/v1/environments", {"-H", bearer});
  EXPECT_EQ(list.status, 200) << list.body;
  EXPECT_EQ(curl_https(ca, api_host, port, "/api/v1/environments").status, 401) << "still needs a token";
  auto dashboard = curl_https(ca, api_host, port, "/", {"-H", bearer, "-H", "Accept: text/html"});
  EXPECT_EQ(dashboard.status, 200);
  EXPECT_NE(dashboard.body.find("<html"), std::string::npos) << dashboard.body.substr(0, 200);
  // Signing in over https gives a Secure cookie (the router says X-Forwarded-Proto: https).
  auto login = curl_https(ca, api_host, port, "/login",
                          {"-H", "Content-Type: application/json", "-H",
                           "Origin: https://" + api_host + ":" + std::to_string(port), "--data-binary",
                           json{{"token", d.admin_token()}}.dump()});
  EXPECT_EQ(login.status, 200) << login.body;
  EXPECT_NE(util::to_lower(login.headers).find("set-cookie: idp_session="), std::string::npos) << login.headers;
  EXPECT_NE(login.headers.find("; Secure"), std::string::npos) << login.headers;

  // A real environment: its URL is https, and it is served with a certificate.
  GitRepo repo = make_example_repo(tmp.sub("app"), "api-service", "main");
  auto [created, body] = d.api("POST", "/api/v1/environments", json{{"repo", repo.path()}, {"branch", "main"}}.dump());
  ASSERT_EQ(created, 202) << body.dump();
  std::string name = body.value("name", "");
  ASSERT_FALSE(name.empty()) << body.dump();
  ASSERT_TRUE(d.wait_phase(name, "ready", 180000)) << d.env(name).dump(2);
  std::string host = name + ".preview.localhost";
  EXPECT_EQ(d.env(name).value("url", ""), "https://" + host + ":" + std::to_string(port) + "/");
  EXPECT_EQ(tls_ask_status(d, host), 200);
  auto preview = curl_https(ca, host, port, "/");
  ASSERT_EQ(preview.curl_exit, 0) << preview.err;
  EXPECT_EQ(preview.status, 200);
  EXPECT_EQ(json::parse(preview.body, nullptr, false).value("service", ""), "api-service-demo") << preview.body;

  // A name that is no environment: the daemon says no, and Caddy gets no certificate.
  EXPECT_EQ(tls_ask_status(d, "nothing.preview.localhost"), 403);
  EXPECT_EQ(tls_ask_status(d, "evil.example.com"), 403);
  EXPECT_EQ(tls_ask_status(d, "a." + host), 403) << "only <env>.<domain>";
  auto nothing = curl_https(ca, "nothing.preview.localhost", port, "/");
  EXPECT_NE(nothing.curl_exit, 0) << "a TLS session for a name that is no environment: " << nothing.headers;
  EXPECT_EQ(nothing.status, 0);
  EXPECT_EQ(tls_ask_status(d, api_host), 200) << "the API's own name";

  // The ask endpoint is for the Caddy on this machine: not through the router, not via a proxy.
  EXPECT_EQ(curl_https(ca, api_host, port, "/internal/tls-ask?domain=" + host).status, 404);
  EXPECT_EQ(tls_ask_status(d, host, {{"X-Forwarded-For", "203.0.113.9"}}), 404);

  // Destroyed: no again.
  auto [destroyed, dbody] = d.api("DELETE", "/api/v1/environments/" + name);
  ASSERT_LT(destroyed, 300) << dbody.dump();
  ASSERT_TRUE(d.wait_phase(name, "destroyed", 120000)) << d.env(name).dump(2);
  EXPECT_EQ(tls_ask_status(d, host), 403);
  EXPECT_EQ(curl_https(ca, host, port, "/").status, 404) << "its route is gone";
}

// Without https the daemon has no ask endpoint, and nothing listens for TLS.
TEST(SecurityHttpsTest, OffHasNoAskEndpoint) {
  TempDir tmp("idp-sec-https-off");
  (void)util::ensure_dir(tmp.sub("home"));
  DaemonProcess d(tmp.sub("home"));
  d.start();
  auto info = json::parse(util::read_file(d.home() + "/daemon.json").value_or("{}"));
  EXPECT_FALSE(info.contains("https_port")) << info.dump();
  util::HttpRequest r;
  r.url = d.api_url() + "/internal/tls-ask?domain=idp.preview.localhost";
  r.headers = {d.admin_auth_header()};
  auto resp = util::http_request(r);
  ASSERT_TRUE(resp.has_value());
  EXPECT_EQ(resp->status, 404);
}

// `https.port: 0` chooses a port on the first start and keeps it: it is part of every URL.
TEST(SecurityHttpsTest, ChosenHttpsPortIsKeptAcrossRestarts) {
  TempDir tmp("idp-sec-https-port");
  (void)util::ensure_dir(tmp.sub("home"));
  ASSERT_TRUE(util::write_file_atomic(tmp.sub("server.yml"), "https: {mode: internal, port: 0}\n"));
  DaemonProcess d(tmp.sub("home"), {"--config", tmp.sub("server.yml")});
  auto https_port_now = [&] {
    auto info = json::parse(util::read_file(d.home() + "/daemon.json").value_or("{}"));
    return info.value("https_port", 0);
  };
  d.start();
  int first = https_port_now();
  ASSERT_GT(first, 0);
  EXPECT_EQ(d.stop(), 0);
  d.start();
  EXPECT_EQ(https_port_now(), first);
  std::string ca = d.home() + "/router/data/pki/authorities/local/root.crt";
  auto health = curl_https(ca, "idp.preview.localhost", first, "/healthz");
  EXPECT_EQ(health.curl_exit, 0) << health.err;
  EXPECT_EQ(health.status, 200) << "the same local CA after the restart";
}
