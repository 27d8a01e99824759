#include "drivers/kubernetes/kubeconfig.hpp"

#include <cctype>
#include <cstdlib>
#include <map>

#include "drivers/kubernetes/yaml_json.hpp"
#include "util/base64.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace idp::drivers::kubernetes {

namespace {

struct Named {
  nlohmann::json value;
  std::string file; // where it came from: relative paths resolve against its directory
};

struct Merged {
  std::map<std::string, Named> clusters, users, contexts;
  std::string current_context;
};

std::string dir_of(const std::string& file) {
  auto slash = file.rfind('/');
  return slash == std::string::npos ? std::string(".") : file.substr(0, slash);
}

// kubectl resolves relative paths in a kubeconfig against the file's own directory.
std::string resolve_path(const std::string& path, const std::string& file) {
  if (path.empty() || path.front() == '/') {
    return path;
  }
  return dir_of(util::absolute_path(file)) + "/" + path;
}

// A DNS name as a certificate names a host: dot-separated labels of [A-Za-z0-9-], none
// empty or longer than 63, at most 253 in all.
bool valid_dns_name(const std::string& name) {
  if (name.empty() || name.size() > 253) {
    return false;
  }
  size_t label = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      if (label == 0 || label > 63 || name[i - 1] == '-' || name[i - label] == '-') {
        return false;
      }
      label = 0;
      continue;
    }
    char ch = name[i];
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '-') {
      return false;
    }
    label += 1;
  }
  return true;
}

Expected<std::string> str_field(const nlohmann::json& obj, const char* key, const std::string& where) {
  if (!obj.is_object() || !obj.contains(key) || obj[key].is_null()) {
    return std::string();
  }
  if (!obj[key].is_string()) {
    return make_error(ErrorCode::invalid_config, where + ": " + key + ": expected a string");
  }
  return obj[key].get<std::string>();
}

// `<key>-data` (base64 PEM) or `<key>` (a file path).
Expected<std::string> pem_field(const nlohmann::json& obj, const std::string& key, const std::string& where,
                                const std::string& file) {
  IDP_TRY_ASSIGN(std::string data, str_field(obj, (key + "-data").c_str(), where));
  if (!data.empty()) {
    auto decoded = util::base64_decode(util::trim(data));
    if (!decoded) {
      return make_error(ErrorCode::invalid_config, where + ": " + key + "-data: expected base64-encoded PEM");
    }
    return *decoded;
  }
  IDP_TRY_ASSIGN(std::string path, str_field(obj, key.c_str(), where));
  if (path.empty()) {
    return std::string();
  }
  std::string full = resolve_path(path, file);
  auto text = util::read_file(full);
  if (!text) {
    return make_error(ErrorCode::invalid_config,
                      where + ": " + key + ": cannot read " + util::quote(full) + ": " + text.error().message);
  }
  return *text;
}

Expected<void> merge_file(const std::string& file, Merged& m) {
  auto text = util::read_file(file);
  if (!text) {
    return make_error(ErrorCode::invalid_config,
                      "kubeconfig " + util::quote(file) + ": cannot read it: " + text.error().message);
  }
  IDP_TRY_ASSIGN(nlohmann::json doc, yaml_to_json(*text, file));
  if (doc.is_null()) {
    return {}; // an empty file contributes nothing, as for kubectl
  }
  if (!doc.is_object()) {
    return make_error(ErrorCode::invalid_config,
                      "kubeconfig " + util::quote(file) + ": expected a mapping (kind: Config)");
  }
  auto take = [&](const char* list, const char* inner, std::map<std::string, Named>& into) -> Expected<void> {
    if (!doc.contains(list) || doc[list].is_null()) {
      return {};
    }
    if (!doc[list].is_array()) {
      return make_error(ErrorCode::invalid_config,
                        "kubeconfig " + util::quote(file) + ": " + list + ": expected a list");
    }
    for (const auto& e : doc[list]) {
      if (!e.is_object() || !e.contains("name") || !e["name"].is_string()) {
        return make_error(ErrorCode::invalid_config,
                          "kubeconfig " + util::quote(file) + ": " + list + ": every entry needs a name");
      }
      std::string name = e["name"].get<std::string>();
      if (!into.count(name)) { // the first file to define a name wins
        into[name] = Named{e.contains(inner) ? e[inner] : nlohmann::json::object(), file};
      }
    }
    return {};
  };
  IDP_TRY(take("clusters", "cluster", m.clusters));
  IDP_TRY(take("users", "user", m.users));
  IDP_TRY(take("contexts", "context", m.contexts));
  if (m.current_context.empty() && doc.contains("current-context") && doc["current-context"].is_string()) {
    m.current_context = doc["current-context"].get<std::string>();
  }
  return {};
}

Expected<void> read_exec(const nlohmann::json& e, const std::string& where, const std::string& file,
                         ClusterConnection& c) {
  if (!e.is_object()) {
    return make_error(ErrorCode::invalid_config, where + ": exec: expected a mapping");
  }
  ExecConfig x;
  IDP_TRY_ASSIGN(x.api_version, str_field(e, "apiVersion", where + ": exec"));
  if (x.api_version != "client.authentication.k8s.io/v1" && x.api_version != "client.authentication.k8s.io/v1beta1") {
    return make_error(ErrorCode::invalid_config,
                      where + ": exec: apiVersion: expected client.authentication.k8s.io/v1 or /v1beta1, got " +
                          util::quote(x.api_version));
  }
  IDP_TRY_ASSIGN(x.command, str_field(e, "command", where + ": exec"));
  if (x.command.empty()) {
    return make_error(ErrorCode::invalid_config, where + ": exec: command: required");
  }
  if (x.command.find('/') != std::string::npos) {
    x.command = resolve_path(x.command, file);
  }
  if (e.contains("args") && !e["args"].is_null()) {
    if (!e["args"].is_array()) {
      return make_error(ErrorCode::invalid_config, where + ": exec: args: expected a list of strings");
    }
    for (const auto& a : e["args"]) {
      if (!a.is_string()) {
        return make_error(ErrorCode::invalid_config, where + ": exec: args: expected a list of strings");
      }
      x.args.push_back(a.get<std::string>());
    }
  }
  if (e.contains("env") && !e["env"].is_null()) {
    if (!e["env"].is_array()) {
      return make_error(ErrorCode::invalid_config, where + ": exec: env: expected a list of {name, value}");
    }
    for (const auto& v : e["env"]) {
      if (!v.is_object() || !v.contains("name") || !v["name"].is_string() || !v.contains("value") ||
          !v["value"].is_string()) {
        return make_error(ErrorCode::invalid_config, where + ": exec: env: expected a list of {name, value}");
      }
      x.env.emplace_back(v["name"].get<std::string>(), v["value"].get<std::string>());
    }
  }
  IDP_TRY_ASSIGN(x.install_hint, str_field(e, "installHint", where + ": exec"));
  IDP_TRY_ASSIGN(x.interactive_mode, str_field(e, "interactiveMode", where + ": exec"));
  if (x.interactive_mode.empty()) {
    // v1 makes the field required; v1beta1 defaulted it to IfAvailable.
    if (x.api_version == "client.authentication.k8s.io/v1") {
      return make_error(ErrorCode::invalid_config,
                        where + ": exec: interactiveMode: required for client.authentication.k8s.io/v1 "
                                "(Never, IfAvailable or Always)");
    }
    x.interactive_mode = "IfAvailable";
  }
  if (x.interactive_mode != "Never" && x.interactive_mode != "IfAvailable" && x.interactive_mode != "Always") {
    return make_error(ErrorCode::invalid_config, where +
                                                     ": exec: interactiveMode: expected Never, IfAvailable or "
                                                     "Always, got " +
                                                     util::quote(x.interactive_mode));
  }
  if (x.interactive_mode == "Always") {
    return make_error(ErrorCode::invalid_config,
                      where + ": exec: interactiveMode is Always, but the idp server has no terminal to run " +
                          util::quote(x.command) + " interactively");
  }
  x.provide_cluster_info = e.value("provideClusterInfo", false);
  c.has_exec = true;
  c.exec = std::move(x);
  return {};
}

} // namespace

std::vector<std::string> kubeconfig_files(const std::string& explicit_path) {
  if (!explicit_path.empty()) {
    return {explicit_path};
  }
  const char* env = std::getenv("KUBECONFIG");
  if (env && *env) {
    std::vector<std::string> files;
    for (const auto& part : util::split(env, ':')) {
      if (!part.empty()) {
        files.push_back(part);
      }
    }
    if (!files.empty()) {
      return files;
    }
  }
  const char* home = std::getenv("HOME");
  return {std::string(home && *home ? home : "") + "/.kube/config"};
}

Expected<ClusterConnection> load_kubeconfig(const std::vector<std::string>& files, const std::string& context) {
  Merged m;
  std::vector<std::string> read;
  for (const auto& f : files) {
    // Of a $KUBECONFIG list, files that do not exist are skipped (as kubectl does); a
    // single named file must exist.
    if (files.size() > 1 && !util::path_exists(f)) {
      continue;
    }
    IDP_TRY(merge_file(f, m));
    read.push_back(f);
  }
  std::string names = util::join(read, ":");
  if (read.empty()) {
    return make_error(ErrorCode::invalid_config, "no kubeconfig found (looked for " + util::join(files, ", ") + ")");
  }
  std::string ctx_name = context.empty() ? m.current_context : context;
  if (ctx_name.empty()) {
    return make_error(ErrorCode::invalid_config,
                      "kubeconfig " + util::quote(names) + ": no current-context; name a context (option context)");
  }
  auto ctx_it = m.contexts.find(ctx_name);
  if (ctx_it == m.contexts.end()) {
    std::vector<std::string> known;
    for (const auto& [k, v] : m.contexts) {
      known.push_back(k);
    }
    std::string hint = util::closest_match(ctx_name, known);
    return make_error(ErrorCode::invalid_config,
                      "kubeconfig " + util::quote(names) + ": no context " + util::quote(ctx_name) +
                          (hint.empty() ? "" : "; did you mean " + util::quote(hint) + "?") +
                          (known.empty() ? " (it has no contexts)" : " (contexts: " + util::join(known, ", ") + ")"));
  }
  std::string where = "kubeconfig " + util::quote(names) + ", context " + util::quote(ctx_name);
  const nlohmann::json& ctx = ctx_it->second.value;
  IDP_TRY_ASSIGN(std::string cluster_name, str_field(ctx, "cluster", where));
  IDP_TRY_ASSIGN(std::string user_name, str_field(ctx, "user", where));
  ClusterConnection c;
  c.source = where;
  c.context = ctx_name;
  IDP_TRY_ASSIGN(c.default_namespace, str_field(ctx, "namespace", where));

  auto cl_it = m.clusters.find(cluster_name);
  if (cluster_name.empty() || cl_it == m.clusters.end()) {
    return make_error(ErrorCode::invalid_config, where + ": no cluster " + util::quote(cluster_name));
  }
  const nlohmann::json& cl = cl_it->second.value;
  std::string cl_where = where + ", cluster " + util::quote(cluster_name);
  IDP_TRY_ASSIGN(c.server, str_field(cl, "server", cl_where));
  if (!util::starts_with(c.server, "https://") && !util::starts_with(c.server, "http://")) {
    return make_error(ErrorCode::invalid_config,
                      cl_where + ": server: expected an https:// URL, got " + util::quote(c.server));
  }
  while (!c.server.empty() && c.server.back() == '/') {
    c.server.pop_back();
  }
  IDP_TRY_ASSIGN(c.ca_pem, pem_field(cl, "certificate-authority", cl_where, cl_it->second.file));
  c.insecure_skip_tls_verify = cl.is_object() && cl.value("insecure-skip-tls-verify", false);
  IDP_TRY_ASSIGN(c.tls_server_name, str_field(cl, "tls-server-name", cl_where));
  if (!c.tls_server_name.empty()) {
    if (!valid_dns_name(c.tls_server_name)) {
      return make_error(ErrorCode::invalid_config, cl_where + ": tls-server-name: expected a DNS name like " +
                                                       "kubernetes.default.svc, got " + util::quote(c.tls_server_name));
    }
    if (!util::starts_with(c.server, "https://")) {
      return make_error(ErrorCode::invalid_config,
                        cl_where + ": tls-server-name is set but the server is not https:// (no certificate to check)");
    }
  }
  IDP_TRY_ASSIGN(c.proxy_url, str_field(cl, "proxy-url", cl_where));
  if (!c.proxy_url.empty()) {
    // The URL may carry the proxy's credentials: messages name its scheme only.
    auto colon = c.proxy_url.find("://");
    std::string scheme = colon == std::string::npos ? "" : util::to_lower(c.proxy_url.substr(0, colon));
    if (scheme != "http" && scheme != "https" && scheme != "socks5") {
      return make_error(
          ErrorCode::invalid_config,
          cl_where + ": proxy-url: expected an http://, https:// or socks5:// URL" +
              (scheme.empty() ? std::string(" (no scheme given)") : ", got scheme " + util::quote(scheme)));
    }
  }
  nlohmann::json exec_ext = nullptr;
  if (cl.is_object() && cl.contains("extensions") && cl["extensions"].is_array()) {
    for (const auto& ext : cl["extensions"]) {
      if (ext.is_object() && ext.value("name", "") == "client.authentication.k8s.io/exec") {
        exec_ext = ext.value("extension", nlohmann::json());
      }
    }
  }

  auto us_it = m.users.find(user_name);
  if (user_name.empty() || us_it == m.users.end()) {
    return make_error(ErrorCode::invalid_config, where + ": no user " + util::quote(user_name));
  }
  const nlohmann::json& us = us_it->second.value;
  const std::string& ufile = us_it->second.file;
  std::string us_where = where + ", user " + util::quote(user_name);
  IDP_TRY_ASSIGN(c.client_cert_pem, pem_field(us, "client-certificate", us_where, ufile));
  IDP_TRY_ASSIGN(c.client_key_pem, pem_field(us, "client-key", us_where, ufile));
  if (c.client_cert_pem.empty() != c.client_key_pem.empty()) {
    return make_error(ErrorCode::invalid_config,
                      us_where + ": client-certificate and client-key go together (only one is set)");
  }
  IDP_TRY_ASSIGN(c.token, str_field(us, "token", us_where));
  IDP_TRY_ASSIGN(std::string token_file, str_field(us, "tokenFile", us_where));
  if (!token_file.empty()) {
    c.token_file = resolve_path(token_file, ufile);
    if (!util::path_exists(c.token_file)) {
      return make_error(ErrorCode::invalid_config, us_where + ": tokenFile: no file " + util::quote(c.token_file));
    }
  }
  if (us.is_object() && us.contains("auth-provider")) {
    std::string provider = us["auth-provider"].is_object() ? us["auth-provider"].value("name", "") : "";
    return make_error(ErrorCode::invalid_config,
                      us_where + ": auth-provider " + util::quote(provider) +
                          " is not supported (kubectl dropped it too); use an exec credential plugin");
  }
  if (us.is_object() && (us.contains("username") || us.contains("password"))) {
    return make_error(ErrorCode::invalid_config,
                      us_where + ": basic authentication (username/password) is not supported");
  }
  if (us.is_object() && us.contains("exec") && !us["exec"].is_null()) {
    IDP_TRY(read_exec(us["exec"], us_where, ufile, c));
    c.exec.cluster_config = exec_ext;
  }
  return c;
}

Expected<ClusterConnection> in_cluster_connection(const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) {
    return make_error(
        ErrorCode::invalid_config,
        "in_cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not running in a pod)");
  }
  ClusterConnection c;
  c.source = "in-cluster service account (" + sa_dir + ")";
  std::string h = host;
  c.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  c.token_file = sa_dir + "/token";
  if (!util::path_exists(c.token_file)) {
    return make_error(ErrorCode::invalid_config,
                      "in_cluster: no service account token at " + util::quote(c.token_file));
  }
  auto ca = util::read_file(sa_dir + "/ca.crt");
  if (!ca) {
    return make_error(ErrorCode::invalid_config,
                      "in_cluster: cannot read " + util::quote(sa_dir + "/ca.crt") + ": " + ca.error().message);
  }
  c.ca_pem = *ca;
  if (auto ns = util::read_file(sa_dir + "/namespace")) {
    c.default_namespace = util::trim(*ns);
  }
  return c;
}

} // namespace idp::drivers::kubernetes
