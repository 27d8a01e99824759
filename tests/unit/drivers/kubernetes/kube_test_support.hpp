#pragma once
// Helpers of the Kubernetes driver's tests: a throwaway PKI (openssl, real certificates),
// kubeconfig files, and a driver wired to the API-server double.

#include <arpa/inet.h>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <gtest/gtest.h>

#include "drivers/driver.hpp"
#include "drivers/kubernetes/kubernetes_driver.hpp"
#include "drivers/kubernetes/kubernetes_driver_factory.hpp"
#include "fakes/fake_kube_apiserver.hpp"
#include "util/fs.hpp"
#include "util/subprocess.hpp"

namespace idp::testing::kube {

// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
struct TestPki {
  std::string dir;
  std::string ca_crt, ca_key;
  std::string server_crt, server_key;
  std::string client_crt, client_key;
  std::string other_ca_crt; // a CA that signed nothing here: "not trusted"
};

inline void run_openssl(const std::vector<std::string>& args) {
  util::Command cmd;
  cmd.argv = {"openssl"};
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
  auto r = util::run(cmd);
  ASSERT_TRUE(r.has_value()) << r.error().full_message();
  ASSERT_EQ(r->exit_code, 0) << r->err;
}

inline void make_ca(const std::string& dir, const std::string& name) {
  run_openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
               dir + "/" + name + ".key", "-out", dir + "/" + name + ".crt", "-days", "2", "-subj", "/CN=" + name});
}

inline void make_leaf(const std::string& dir, const std::string& name, const std::string& cn, const std::string& ext) {
  std::ofstream(dir + "/" + name + ".ext") << ext << "\n";
  run_openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
               dir + "/" + name + ".key", "-out", dir + "/" + name + ".csr", "-subj", "/CN=" + cn});
  run_openssl({"x509", "-req", "-in", dir + "/" + name + ".csr", "-CA", dir + "/ca.crt", "-CAkey", dir + "/ca.key",
               "-CAcreateserial", "-out", dir + "/" + name + ".crt", "-days", "2", "-extfile",
               dir + "/" + name + ".ext"});
}

inline TestPki make_test_pki(const std::string& dir) {
  TestPki p;
  p.dir = dir;
  EXPECT_TRUE(util::ensure_dir(dir).has_value());
  make_ca(dir, "ca");
  make_ca(dir, "other-ca");
  make_leaf(dir, "server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth");
  make_leaf(dir, "client", "idp-test", "extendedKeyUsage=clientAuth");
  p.ca_crt = dir + "/ca.crt";
  p.ca_key = dir + "/ca.key";
  p.server_crt = dir + "/server.crt";
  p.server_key = dir + "/server.key";
  p.client_crt = dir + "/client.crt";
  p.client_key = dir + "/client.key";
  p.other_ca_crt = dir + "/other-ca.crt";
  return p;
}

// An HTTP proxy that tunnels CONNECT host:port (what a client does through a proxy to an
// https:// server) and records each target. One connection at a time, on 127.0.0.1.
class ConnectProxy {
public:
  ConnectProxy() {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (m_fd < 0 || ::bind(m_fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(m_fd, 8) != 0 ||
        ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "ConnectProxy: cannot listen: " << std::strerror(errno);
      return;
    }
    m_port = ntohs(a.sin_port);
    m_thread = std::thread([this] { serve(); });
  }
  ~ConnectProxy() {
    m_stop = true;
    ::shutdown(m_fd, SHUT_RDWR);
    if (m_thread.joinable()) {
      m_thread.join();
    }
    ::close(m_fd);
  }
  ConnectProxy(const ConnectProxy&) = delete;
  ConnectProxy& operator=(const ConnectProxy&) = delete;

  int port() const { return m_port; }
  std::vector<std::string> targets() const {
    std::lock_guard<std::mutex> lock(m_mu);
    return m_targets;
  }

private:
  void serve() {
    while (!m_stop) {
      int c = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        return;
      }
      tunnel(c);
      ::close(c);
    }
  }
  static bool send_all(int fd, const char* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w <= 0) {
        return false;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }
  void tunnel(int c) {
    std::string head;
    char buf[16384];
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 65536) {
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) {
        return;
      }
      head.append(buf, static_cast<size_t>(n));
    }
    // "CONNECT 127.0.0.1:6443 HTTP/1.1"
    std::string line = head.substr(0, head.find("\r\n"));
    if (line.rfind("CONNECT ", 0) != 0) {
      (void)send_all(c, "HTTP/1.1 405 Method Not Allowed\r\n\r\n", 35);
      return;
    }
    std::string target = line.substr(8, line.find(' ', 8) - 8);
    {
      std::lock_guard<std::mutex> lock(m_mu);
      m_targets.push_back(target);
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(std::stoi(target.substr(target.rfind(':') + 1))));
    ::inet_pton(AF_INET, target.substr(0, target.rfind(':')).c_str(), &to.sin_addr);
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || ::connect(s, reinterpret_cast<sockaddr*>(&to), sizeof(to)) != 0) {
      (void)send_all(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n", 28);
      if (s >= 0) {
        ::close(s);
      }
      return;
    }
    const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    bool open = send_all(c, ok, sizeof(ok) - 1);
    while (open && !m_stop) {
      pollfd fds[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
      if (::poll(fds, 2, 100) < 0) {
        break;
      }
      for (int i = 0; i < 2 && open; ++i) {
        if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
          ssize_t n = ::recv(fds[i].fd, buf, sizeof(buf), 0);
          open = n > 0 && send_all(fds[1 - i].fd, buf, static_cast<size_t>(n));
        }
      }
    }
    ::close(s);
  }

  int m_fd = -1;
  int m_port = 0;
  std::atomic<bool> m_stop{false};
  std::thread m_thread;
  mutable std::mutex m_mu;
  std::vector<std::string> m_targets;
};

// The variables' Secret (app-env-<hash>) the environment's workload uses now: the
// Deployment web's, else the CronJob job's; nullopt when there is none.
inline std::optional<nlohmann::json> env_secret(const FakeKubeApiServer& api, const std::string& ns) {
  nlohmann::json pod;
  if (auto dep = api.object("deployments", ns, "web")) {
    pod = (*dep)["spec"]["template"];
  } else if (auto cj = api.object("cronjobs", ns, "job")) {
    pod = (*cj)["spec"]["jobTemplate"]["spec"]["template"];
  } else {
    return std::nullopt;
  }
  const nlohmann::json& from = pod["spec"]["containers"][0].value("envFrom", nlohmann::json::array());
  if (from.empty()) {
    return std::nullopt;
  }
  return api.object("secrets", ns, from[0]["secretRef"].value("name", ""));
}

// A driver Progress that records the steps and revision statuses it is told.
class RecordingProgress final : public drivers::Progress {
public:
  void step(std::string_view what) override {
    steps.emplace_back(what);
    if (!cancel_at.empty() && what.rfind(cancel_at, 0) == 0) {
      m_cancel = true;
    }
  }
  void revision_status(core::RevisionStatus status, std::string_view message) override {
    statuses.push_back(std::string(core::revision_status_name(status)) + ": " + std::string(message));
  }
  bool cancelled() const override { return m_cancel.load(); }
  const std::atomic<bool>* cancel_flag() const override { return &m_cancel; }
  std::vector<std::string> steps;
  std::vector<std::string> statuses; // "starting: …", "failed: …"
  // A step's prefix: the operation is cancelled from that step on (a newer push, a stop).
  std::string cancel_at;

private:
  std::atomic<bool> m_cancel{false};
};

// A kubeconfig with one context "test" (current) for `server` and the user given as YAML
// lines (indented under `user:`), plus cluster lines (indented under `cluster:`).
inline std::string write_kubeconfig(const std::string& path, const std::string& server, const std::string& user_yaml,
                                    const std::string& cluster_extra = "") {
  std::string text = "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
                     "clusters:\n- name: c\n  cluster:\n    server: " +
                     server + "\n" + cluster_extra + "users:\n- name: u\n  user:\n" + user_yaml +
                     "contexts:\n- name: test\n  context:\n    cluster: c\n    user: u\n    namespace: default\n";
  std::ofstream(path) << text;
  return path;
}

// A driver talking to the double through `kubeconfig`, its home `home`, domain
// preview.test, quick polls and a short rollout deadline; `extra` options over those.
inline std::unique_ptr<drivers::kubernetes::KubernetesDriver>
make_driver(const std::string& home, const std::string& kubeconfig, nlohmann::json extra = nlohmann::json::object(),
            int64_t rollout_timeout_ms = 1000) {
  drivers::DriverContext ctx;
  ctx.home = home;
  ctx.domain = "preview.test";
  ctx.options = {{"kubeconfig", kubeconfig}, {"rollout_timeout_ms", rollout_timeout_ms}, {"poll_interval_ms", 10}};
  ctx.options.update(extra);
  auto d = drivers::kubernetes::kubernetes_driver_factory().create(ctx);
  EXPECT_TRUE(d.has_value()) << d.error().full_message();
  return std::unique_ptr<drivers::kubernetes::KubernetesDriver>(
      static_cast<drivers::kubernetes::KubernetesDriver*>(d->release()));
}

// An api-service environment as the engine would hand it to the driver.
inline drivers::DeploySpec sample_spec(const std::string& name = "pr-42") {
  drivers::DeploySpec s;
  s.env.name = name;
  s.env.repo = "https://github.com/acme/shop.git";
  s.env.branch = "feature/login";
  s.env.template_name = "api-service";
  s.env.runtime = "kubernetes";
  s.env.owner = "alice@example.com";
  s.env.commit = "0123456789abcdef0123456789abcdef01234567";
  s.env.created_at = 1767225600000;
  s.env.expires_at = s.env.created_at + 86400000;
  s.revision_id = 1;
  s.config.container_image = "registry.example.com/shop:{commit}";
  s.config.container_port = 8080;
  s.config.health_check_path = "/healthz";
  s.config.environment = {{"LOG_LEVEL", "debug"}};
  return s;
}

// An api-database environment (a web app and its database), `seed_sql` as the engine
// hands the seed's content over ("" = no seed).
inline drivers::DeploySpec database_spec(const std::string& name = "pr-7", const std::string& seed_sql = "") {
  drivers::DeploySpec s = sample_spec(name);
  s.env.template_name = "api-database";
  s.components = {"web", "database"};
  if (!seed_sql.empty()) {
    s.config.database.seed = "db/seed.sql";
    s.template_values["database_seed"] = seed_sql;
  }
  return s;
}

// A static-site environment: the image the app's CI built with the site in it.
inline drivers::DeploySpec static_site_spec(const std::string& name = "docs-7") {
  drivers::DeploySpec s = sample_spec(name);
  s.env.template_name = "static-site";
  s.components = {"static"};
  s.config.container_image = "registry.example.com/docs-site:{commit}";
  s.config.container_port = 80; // api-service's field: a static-site config cannot set it
  s.config.health_check_path = "/";
  s.config.static_site.dir = "dist";
  s.config.keys_set = {"template", "container_image", "static.dir"};
  return s;
}

} // namespace idp::testing::kube
