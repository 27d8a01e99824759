#pragma once
// Where the Kubernetes API server is and how to sign in to it: a kubeconfig (the files
// kubectl reads, with a context chosen) or the pod's service account (in-cluster).
// Pure loading and validation; nothing here talks to the network or runs the plugin.

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/expected.hpp"

namespace idp::drivers::kubernetes {

// A user's `exec:` credential plugin (client.authentication.k8s.io, e.g. `aws eks get-token`).
struct ExecConfig {
  std::string api_version; // client.authentication.k8s.io/v1 or /v1beta1
  std::string command;     // a path with '/' is resolved against the kubeconfig's directory
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  std::string install_hint;     // shown when the command is missing
  std::string interactive_mode; // Never | IfAvailable | Always (v1 requires it)
  bool provide_cluster_info = false;
  nlohmann::json cluster_config; // the cluster's extensions[client.authentication.k8s.io/exec]
};

// Everything needed to reach and authenticate to one API server.
struct ClusterConnection {
  std::string source; // for messages: "kubeconfig /home/a/.kube/config, context \"dev\""
  std::string context;
  std::string server; // "https://host:port" (no trailing slash)
  std::string ca_pem; // "" = the system's roots
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name; // the name the server's certificate is checked against ("" = the server's host)
  std::string proxy_url;       // http://, https:// or socks5:// proxy to reach the server ("" = none)
  std::string client_cert_pem; // with client_key_pem: TLS client certificate
  std::string client_key_pem;
  std::string token;      // bearer token
  std::string token_file; // re-read for each request (projected tokens rotate)
  bool has_exec = false;
  ExecConfig exec;
  std::string default_namespace;
};

// The kubeconfig files to read: `explicit_path` alone when set, else every file of
// $KUBECONFIG (':'-separated), else ~/.kube/config.
std::vector<std::string> kubeconfig_files(const std::string& explicit_path);

// Loads `files` merged as kubectl does (the first file to name a cluster, user or context
// wins; current-context from the first file that sets it) and resolves `context` ("" =
// current-context). invalid_config naming the file and what is wrong: unreadable or
// malformed file, unknown context ("did you mean"), missing cluster/user/server,
// unreadable certificate files, a key without a certificate, an auth-provider user, a
// tls-server-name that is no DNS name or goes with an http:// server, a proxy-url of
// another scheme than http, https or socks5.
Expected<ClusterConnection> load_kubeconfig(const std::vector<std::string>& files, const std::string& context = "");

// The pod's own service account: $KUBERNETES_SERVICE_HOST/PORT, the token (re-read per
// request) and CA in `sa_dir`. invalid_config when not running in a pod.
Expected<ClusterConnection>
in_cluster_connection(const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

} // namespace idp::drivers::kubernetes
