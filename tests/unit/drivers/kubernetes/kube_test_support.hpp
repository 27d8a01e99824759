#pragma once
// Helpers of the Kubernetes driver's tests: a throwaway PKI (openssl, real certificates),
// kubeconfig files, and a driver wired to the API-server double.

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "drivers/driver.hpp"
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
