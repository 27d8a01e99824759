#include "fakes/fake_kube_apiserver.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <regex>

#include <httplib.h>
#include <yaml-cpp/yaml.h>

#include "support/test_support.hpp"
#include "util/base64.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"
#include "util/time.hpp"

namespace idp::testing {

namespace {

using json = nlohmann::json;
using Resource = FakeKubeApiServer::Resource;

const std::vector<Resource>& resources() {
  static const std::vector<Resource> k_resources = {
      {"", "v1", "Namespace", "namespaces", false},
      {"", "v1", "ResourceQuota", "resourcequotas", true},
      {"", "v1", "LimitRange", "limitranges", true},
      {"", "v1", "ServiceAccount", "serviceaccounts", true},
      {"", "v1", "Secret", "secrets", true},
      {"", "v1", "ConfigMap", "configmaps", true},
      {"", "v1", "Service", "services", true},
      {"", "v1", "Pod", "pods", true},
      {"", "v1", "Event", "events", true},
      {"", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true},
      {"apps", "v1", "Deployment", "deployments", true},
      {"apps", "v1", "ReplicaSet", "replicasets", true},
      {"apps", "v1", "StatefulSet", "statefulsets", true},
      {"batch", "v1", "Job", "jobs", true},
      {"batch", "v1", "CronJob", "cronjobs", true},
      {"networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true},
      {"networking.k8s.io", "v1", "Ingress", "ingresses", true},
      {"argoproj.io", "v1alpha1", "Application", "applications", true},
      // CloudNativePG's CRD: served only after serve_cloudnative_pg(true).
      {"postgresql.cnpg.io", "v1", "Cluster", "clusters", true},
      {"gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes", true}, // Gateway API CRD
  };
  return k_resources;
}

const Resource* find_resource(const std::string& group, const std::string& version, const std::string& plural) {
  for (const auto& r : resources()) {
    if (r.group == group && r.version == version && r.plural == plural) {
      return &r;
    }
  }
  return nullptr;
}

std::string api_version_of(const Resource& r) { return r.group.empty() ? r.version : r.group + "/" + r.version; }
std::string qualified(const Resource& r) { return r.group.empty() ? r.plural : r.plural + "." + r.group; }

std::string reason_for(int code) {
  switch (code) {
  case 400: return "BadRequest";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "NotFound";
  case 405: return "MethodNotAllowed";
  case 409: return "Conflict";
  case 415: return "UnsupportedMediaType";
  case 422: return "Invalid";
  case 429: return "TooManyRequests";
  case 503: return "ServiceUnavailable";
  default: return "InternalError";
  }
}

json status_body(int code, const std::string& message, const std::string& reason = "", const json& details = nullptr) {
  json s = {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", json::object()},
            {"status", "Failure"}, {"message", message}, {"reason", reason.empty() ? reason_for(code) : reason},
            {"code", code}};
  if (!details.is_null()) {
    s["details"] = details;
  }
  return s;
}

// YAML (JSON is YAML) to JSON, resolving plain scalars as Kubernetes does.
json yaml_node_to_json(const YAML::Node& n) {
  switch (n.Type()) {
  case YAML::NodeType::Scalar: {
    const std::string& s = n.Scalar();
    if (n.Tag() != "?") {
      return s;
    }
    if (s == "true" || s == "false") {
      return s == "true";
    }
    if (s == "null" || s == "~" || s.empty()) {
      return nullptr;
    }
    static const std::regex k_int("^-?(0|[1-9][0-9]*)$");
    static const std::regex k_float("^-?[0-9]+\\.[0-9]*([eE][-+]?[0-9]+)?$");
    if (std::regex_match(s, k_int)) {
      return std::stoll(s);
    }
    if (std::regex_match(s, k_float)) {
      return std::stod(s);
    }
    return s;
  }
  case YAML::NodeType::Sequence: {
    json a = json::array();
    for (const auto& e : n) {
      a.push_back(yaml_node_to_json(e));
    }
    return a;
  }
  case YAML::NodeType::Map: {
    json o = json::object();
    for (const auto& kv : n) {
      o[kv.first.as<std::string>()] = yaml_node_to_json(kv.second);
    }
    return o;
  }
  default: return nullptr;
  }
}

bool is_dns_label(const std::string& s) {
  static const std::regex k_re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
  return !s.empty() && s.size() <= 63 && std::regex_match(s, k_re);
}
bool is_dns_subdomain(const std::string& s) {
  static const std::regex k_re("^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$");
  return !s.empty() && s.size() <= 253 && std::regex_match(s, k_re);
}
bool is_qualified_name(const std::string& s) {
  static const std::regex k_re("^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$");
  auto slash = s.find('/');
  std::string name = slash == std::string::npos ? s : s.substr(slash + 1);
  if (slash != std::string::npos && !is_dns_subdomain(s.substr(0, slash))) {
    return false;
  }
  return !name.empty() && name.size() <= 63 && std::regex_match(name, k_re);
}
bool is_label_value(const std::string& s) {
  static const std::regex k_re("^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$");
  return s.empty() || (s.size() <= 63 && std::regex_match(s, k_re));
}

// Leaves of a JSON document: object members recursed, lists and scalars whole.
void leaves(const json& j, const std::string& prefix, std::map<std::string, json>& out) {
  if (j.is_object() && !j.empty()) {
    for (const auto& [k, v] : j.items()) {
      leaves(v, prefix + "\x1f" + k, out); // \x1f: a separator no key contains
    }
  } else {
    out[prefix] = j;
  }
}

void merge_into(json& base, const json& patch) {
  if (!patch.is_object() || !base.is_object()) {
    base = patch;
    return;
  }
  for (const auto& [k, v] : patch.items()) {
    if (v.is_object() && base.contains(k) && base[k].is_object()) {
      merge_into(base[k], v);
    } else {
      base[k] = v;
    }
  }
}

// RFC 7386 JSON merge patch.
void merge_patch(json& base, const json& patch) {
  if (!patch.is_object()) {
    base = patch;
    return;
  }
  if (!base.is_object()) {
    base = json::object();
  }
  for (const auto& [k, v] : patch.items()) {
    if (v.is_null()) {
      base.erase(k);
    } else {
      merge_patch(base[k], v);
    }
  }
}

void erase_path(json& obj, const std::string& path) {
  auto parts = util::split(path.substr(1), '\x1f');
  json* cur = &obj;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (!cur->is_object() || !cur->contains(parts[i])) {
      return;
    }
    cur = &(*cur)[parts[i]];
  }
  if (cur->is_object()) {
    cur->erase(parts.back());
  }
}

// "a=b,c" (equality and existence only): does `labels` match?
bool selector_matches(const std::string& selector, const json& labels) {
  if (selector.empty()) {
    return true;
  }
  for (const auto& term : util::split(selector, ',')) {
    auto eq = term.find('=');
    if (eq == std::string::npos) {
      if (!labels.is_object() || !labels.contains(term)) {
        return false;
      }
      continue;
    }
    std::string k = term.substr(0, eq);
    std::string v = term.substr(term[eq + 1] == '=' ? eq + 2 : eq + 1);
    bool negate = !k.empty() && k.back() == '!';
    if (negate) {
      k.pop_back();
    }
    bool has = labels.is_object() && labels.contains(k) && labels[k].is_string() && labels[k].get<std::string>() == v;
    if (has == negate) {
      return false;
    }
  }
  return true;
}

std::string now_rfc3339() { return util::format_iso8601(util::SystemClock().now_ms()); }

} // namespace

FakeKubeApiServer::FakeKubeApiServer() : FakeKubeApiServer(Options{}) {}

FakeKubeApiServer::FakeKubeApiServer(Options opts) { start(std::move(opts)); }

void FakeKubeApiServer::start(Options opts) {
  m_tokens = opts.tokens;
  if (!opts.cert_file.empty()) {
    m_tls = true;
    m_server =
        std::make_unique<httplib::SSLServer>(opts.cert_file.c_str(), opts.key_file.c_str(),
                                             opts.client_ca_file.empty() ? nullptr : opts.client_ca_file.c_str());
  } else {
    m_server = std::make_unique<httplib::Server>();
  }
  auto h = [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); };
  m_server->Get(".*", h);
  m_server->Post(".*", h);
  m_server->Put(".*", h);
  m_server->Patch(".*", h);
  m_server->Delete(".*", h);
  m_port = m_server->bind_to_any_port("127.0.0.1");
  m_thread = std::thread([this] { m_server->listen_after_bind(); });
  // stop() is a no-op until the accept loop runs: wait for it, or the destructor could hang.
  wait_until([this] { return m_server->is_running(); }, 10000, 1);
}

FakeKubeApiServer::~FakeKubeApiServer() {
  m_stopping = true; // ends the watches' streams
  m_server->stop();
  if (m_thread.joinable()) {
    m_thread.join();
  }
}

std::string FakeKubeApiServer::url() const {
  return std::string(m_tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(m_port);
}

void FakeKubeApiServer::fail(const std::string& method, const std::string& path_part, int status, int count) {
  std::lock_guard lock(m_mu);
  m_failures.push_back(Failure{method, path_part, status, count});
}

void FakeKubeApiServer::forbid(const std::string& verb, const std::string& plural, const std::string& ns) {
  std::lock_guard lock(m_mu);
  m_forbidden.push_back(Forbidden{verb, plural, ns});
}

void FakeKubeApiServer::set_tokens(std::set<std::string> tokens) {
  std::lock_guard lock(m_mu);
  m_tokens = std::move(tokens);
}

void FakeKubeApiServer::fail_init_containers_with(const std::string& command_part, const std::string& message) {
  std::lock_guard<std::mutex> lock(m_mu);
  m_failing_inits[command_part] = message;
}

void FakeKubeApiServer::fail_pods_with_image(const std::string& image_part, const std::string& reason) {
  std::lock_guard lock(m_mu);
  m_failing_images[image_part] = reason;
}

void FakeKubeApiServer::fail_application_revision(const std::string& revision_part, const std::string& message) {
  std::lock_guard lock(m_mu);
  m_failing_revisions[revision_part] = message;
}

void FakeKubeApiServer::set_application_drift(const std::string& ns, const std::string& name, bool drifted) {
  std::lock_guard lock(m_mu);
  if (drifted) {
    m_drifted.insert({ns, name});
  } else {
    m_drifted.erase({ns, name});
  }
}

void FakeKubeApiServer::fail_jobs(const std::string& name_prefix, const std::string& message) {
  std::lock_guard lock(m_mu);
  m_failing_jobs[name_prefix] = message;
}

void FakeKubeApiServer::serve_cloudnative_pg(bool on) {
  std::lock_guard lock(m_mu);
  m_cnpg = on;
}

void FakeKubeApiServer::set_namespace_finalize_reads(int reads) {
  std::lock_guard lock(m_mu);
  m_finalize_reads = reads;
}

// A watch (?watch=true): the events since resourceVersion, then each change as it happens,
// as newline-delimited JSON, until timeoutSeconds (default 1800, as a real server's
// maximum) or the client goes. Changes are found by comparing the stored objects with what
// the stream sent (every 10 ms), so a change and its undo between two looks can be missed,
// as can a deletion between the client's list and its watch.
int FakeKubeApiServer::watch(const httplib::Request& req, httplib::Response& res, const Resource& r,
                             const std::string& ns) {
  std::string selector = req.has_param("labelSelector") ? req.get_param_value("labelSelector") : "";
  int64_t from = 0;
  if (req.has_param("resourceVersion") && !req.get_param_value("resourceVersion").empty()) {
    from = std::stoll(req.get_param_value("resourceVersion"));
  }
  int timeout_s = req.has_param("timeoutSeconds") ? std::stoi(req.get_param_value("timeoutSeconds")) : 1800;
  std::string plural = r.plural;
  auto sent = std::make_shared<std::map<Key, json>>(); // what the client has been told
  for (const auto& [k, st] : m_store) {
    if (std::get<0>(k) == plural && (ns.empty() || std::get<1>(k) == ns) &&
        selector_matches(selector, st.obj["metadata"].value("labels", json::object())) &&
        std::stoll(st.obj["metadata"].value("resourceVersion", "0")) <= from) {
      (*sent)[k] = st.obj;
    }
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  res.set_chunked_content_provider("application/json", [this, plural, ns, selector, sent,
                                                        deadline](size_t, httplib::DataSink& sink) {
    while (!m_stopping && std::chrono::steady_clock::now() < deadline) {
      std::string out;
      {
        std::lock_guard lock(m_mu);
        std::set<Key> present;
        for (const auto& [k, st] : m_store) {
          if (std::get<0>(k) != plural || (!ns.empty() && std::get<1>(k) != ns) ||
              !selector_matches(selector, st.obj["metadata"].value("labels", json::object()))) {
            continue;
          }
          present.insert(k);
          auto it = sent->find(k);
          if (it == sent->end() ||
              it->second["metadata"].value("resourceVersion", "") != st.obj["metadata"].value("resourceVersion", "")) {
            out += json{{"type", it == sent->end() ? "ADDED" : "MODIFIED"}, {"object", st.obj}}.dump() + "\n";
            (*sent)[k] = st.obj;
          }
        }
        for (auto it = sent->begin(); it != sent->end();) {
          if (present.count(it->first)) {
            ++it;
            continue;
          }
          out += json{{"type", "DELETED"}, {"object", it->second}}.dump() + "\n";
          it = sent->erase(it);
        }
      }
      if (!out.empty() && !sink.write(out.data(), out.size())) {
        return false;
      }
      if (!sink.is_writable()) {
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    sink.done();
    return true;
  });
  return 200;
}

void FakeKubeApiServer::append_log(const std::string& ns, const std::string& at, const std::string& text,
                                   const std::string& container) {
  std::lock_guard<std::mutex> g(m_mu);
  m_logs[ns + "/" + container].emplace_back(at, text);
}

std::vector<FakeKubeApiServer::Request> FakeKubeApiServer::requests() const {
  std::lock_guard lock(m_mu);
  return m_requests;
}

void FakeKubeApiServer::clear_requests() {
  std::lock_guard lock(m_mu);
  m_requests.clear();
}

std::optional<json> FakeKubeApiServer::object(const std::string& plural, const std::string& ns,
                                              const std::string& name) const {
  std::lock_guard lock(m_mu);
  auto it = m_store.find(Key{plural, ns, name});
  if (it == m_store.end()) {
    return std::nullopt;
  }
  return it->second.obj;
}

std::vector<json> FakeKubeApiServer::objects(const std::string& plural) const {
  std::lock_guard lock(m_mu);
  std::vector<json> out;
  for (const auto& [k, s] : m_store) {
    if (std::get<0>(k) == plural) {
      out.push_back(s.obj);
    }
  }
  return out;
}

void FakeKubeApiServer::put_object(const json& obj) {
  std::lock_guard lock(m_mu);
  std::string av = obj.value("apiVersion", "");
  std::string kind = obj.value("kind", "");
  for (const auto& r : resources()) {
    if (api_version_of(r) == av && r.kind == kind) {
      std::string ns = r.namespaced ? obj["metadata"].value("namespace", "") : "";
      Stored s;
      s.obj = stamp_new(obj, r);
      m_store[Key{r.plural, ns, obj["metadata"].value("name", "")}] = std::move(s);
      return;
    }
  }
}

json FakeKubeApiServer::stamp_new(json obj, const Resource& r) {
  obj["apiVersion"] = api_version_of(r);
  obj["kind"] = r.kind;
  auto& md = obj["metadata"];
  md["uid"] = "00000000-0000-4000-8000-" + [this] {
    std::string n = std::to_string(m_uid++);
    return std::string(12 - std::min<size_t>(12, n.size()), '0') + n;
  }();
  md["creationTimestamp"] = now_rfc3339();
  md["resourceVersion"] = std::to_string(++m_resource_version);
  md["generation"] = 1;
  if (r.kind == "Namespace") {
    obj["status"] = {{"phase", "Active"}};
    md["labels"]["kubernetes.io/metadata.name"] = md["name"];
  }
  if (r.kind == "Secret" && obj.contains("stringData")) {
    for (const auto& [k, v] : obj["stringData"].items()) {
      obj["data"][k] = util::base64_encode(v.is_string() ? v.get<std::string>() : v.dump());
    }
    obj.erase("stringData");
  }
  return obj;
}

void FakeKubeApiServer::handle(const httplib::Request& req, httplib::Response& res) {
  Request rec;
  rec.method = req.method;
  rec.path = req.path;
  auto q = req.target.find('?');
  rec.query = q == std::string::npos ? "" : req.target.substr(q + 1);
  rec.content_type = req.get_header_value("Content-Type");
  rec.authorization = req.get_header_value("Authorization");
  rec.body = req.body;
  std::lock_guard lock(m_mu);
  int status = dispatch(req, res, rec);
  res.status = status;
  rec.status = status;
  m_requests.push_back(std::move(rec));
}

void FakeKubeApiServer::simulate_application(Stored& s) {
  // The Argo CD controller, at every read: compare and sync the target revision into the
  // destination namespace (which must exist: CreateNamespace=false), then assess health.
  json& obj = s.obj;
  if (obj["metadata"].contains("deletionTimestamp")) {
    return;
  }
  const json& spec = obj.value("spec", json::object());
  const json& source = spec.value("source", json::object());
  std::string target = source.value("targetRevision", "");
  std::string dest = spec.value("destination", json::object()).value("namespace", "");
  std::string ns = obj["metadata"].value("namespace", "");
  std::string name = obj["metadata"].value("name", "");
  json st = {{"sync",
              {{"status", "Synced"},
               {"revision", target},
               {"comparedTo", {{"source", source}, {"destination", spec.value("destination", json::object())}}}}},
             {"health", {{"status", "Healthy"}}},
             {"sourceType", "Directory"},
             {"operationState",
              {{"phase", "Succeeded"},
               {"message", "successfully synced (all tasks run)"},
               {"syncResult", {{"revision", target}}}}}};
  auto dest_ns = m_store.find(Key{"namespaces", "", dest});
  if (dest_ns == m_store.end() || dest_ns->second.terminating_reads >= 0) {
    std::string why = "namespaces \"" + dest + "\" not found";
    st["sync"]["status"] = "OutOfSync";
    st["health"] = {{"status", "Missing"}};
    st["operationState"] = {{"phase", "Failed"}, {"message", why}, {"syncResult", {{"revision", target}}}};
    st["conditions"] = json::array({{{"type", "SyncError"}, {"message", why}}});
  } else {
    for (const auto& [part, message] : m_failing_revisions) {
      if (target.find(part) != std::string::npos) {
        st["health"] = {{"status", "Degraded"}, {"message", message}};
      }
    }
    if (m_drifted.count({ns, name})) {
      st["sync"]["status"] = "OutOfSync";
    }
  }
  if (st != obj.value("status", json())) {
    obj["status"] = st;
    obj["metadata"]["resourceVersion"] = std::to_string(++m_resource_version);
  }
}

void FakeKubeApiServer::refuse_routes(const std::string& reason, const std::string& message) {
  std::lock_guard lock(m_mu);
  m_route_refusal_reason = reason;
  m_route_refusal_message = message;
}

void FakeKubeApiServer::silence_routes(bool silent) {
  std::lock_guard lock(m_mu);
  m_routes_silent = silent;
}

void FakeKubeApiServer::simulate_route(Stored& s) {
  if (m_routes_silent) {
    return;
  }
  json& obj = s.obj;
  int64_t gen = obj["metadata"].value("generation", 1);
  bool refused = !m_route_refusal_reason.empty();
  auto condition = [&](const char* type, bool ok, const std::string& reason, const std::string& message) {
    return json{
        {"type", type},       {"status", ok ? "True" : "False"}, {"reason", reason},
        {"message", message}, {"observedGeneration", gen},       {"lastTransitionTime", "2026-01-01T00:00:00Z"}};
  };
  json parents = json::array();
  for (const auto& ref : obj["spec"].value("parentRefs", json::array())) {
    parents.push_back(
        {{"parentRef", ref},
         {"controllerName", "fake.idp.dev/gateway-controller"},
         {"conditions", json::array({condition("Accepted", !refused, refused ? m_route_refusal_reason : "Accepted",
                                               refused ? m_route_refusal_message : "Accepted HTTPRoute"),
                                     condition("ResolvedRefs", true, "ResolvedRefs", "All references resolved")})}});
  }
  json st = {{"parents", parents}};
  if (st != obj.value("status", json())) {
    obj["status"] = st;
    obj["metadata"]["resourceVersion"] = std::to_string(++m_resource_version);
  }
}

void FakeKubeApiServer::simulate_database_read(Stored& s, const Resource& r) {
  // The StatefulSet, Job and CloudNativePG controllers catch up at the first read after a
  // change, as the Deployment controller does.
  if (s.reads_since_change++ != 0) {
    return;
  }
  json& obj = s.obj;
  json st;
  if (r.kind == "StatefulSet") {
    int replicas = obj["spec"].value("replicas", 1);
    st = {{"observedGeneration", obj["metadata"].value("generation", 1)},
          {"replicas", replicas},
          {"readyReplicas", replicas},
          {"currentReplicas", replicas},
          {"updatedReplicas", replicas},
          {"availableReplicas", replicas}};
  } else if (r.kind == "Job") {
    std::string name = obj["metadata"].value("name", "");
    std::string failure;
    for (const auto& [prefix, message] : m_failing_jobs) {
      if (name.rfind(prefix, 0) == 0) {
        failure = message;
      }
    }
    if (failure.empty()) {
      st = {{"succeeded", 1}, {"conditions", json::array({{{"type", "Complete"}, {"status", "True"}}})}};
    } else {
      st = {
          {"failed", 1},
          {"conditions",
           json::array(
               {{{"type", "Failed"}, {"status", "True"}, {"reason", "BackoffLimitExceeded"}, {"message", failure}}})}};
    }
  } else if (r.kind == "Cluster") {
    int instances = obj["spec"].value("instances", 1);
    st = {{"instances", instances}, {"readyInstances", instances}, {"phase", "Cluster in healthy state"}};
  } else {
    return;
  }
  if (st != obj.value("status", json())) {
    obj["status"] = st;
    obj["metadata"]["resourceVersion"] = std::to_string(++m_resource_version);
  }
}

void FakeKubeApiServer::simulate_read(Stored& s, const Resource& r) {
  if (r.kind == "Application") {
    simulate_application(s);
    return;
  }
  if (r.kind == "StatefulSet" || r.kind == "Job" || r.kind == "Cluster") {
    simulate_database_read(s, r);
    return;
  }
  if (r.kind == "HTTPRoute") {
    simulate_route(s);
    return;
  }
  if (r.kind != "Deployment") {
    return;
  }
  // The deployment controller catches up with a change at the first read after it.
  if (s.reads_since_change++ != 0) {
    return;
  }
  json& obj = s.obj;
  int64_t gen = obj["metadata"].value("generation", 1);
  int replicas = obj["spec"].value("replicas", 1);
  std::string tmpl = obj["spec"].value("template", json::object()).dump();
  std::string failing;
  for (const auto& c : obj["spec"]["template"]["spec"].value("containers", json::array())) {
    for (const auto& [part, reason] : m_failing_images) {
      if (c.value("image", "").find(part) != std::string::npos) {
        failing = reason;
      }
    }
  }
  for (const auto& c : obj["spec"]["template"]["spec"].value("initContainers", json::array())) {
    std::string command = c.value("command", json::array()).dump();
    for (const auto& [part, message] : m_failing_inits) {
      if (command.find(part) != std::string::npos) {
        failing = "init:" + message; // pods_of: the init container crash-loops
      }
    }
  }
  json st = {{"observedGeneration", gen}};
  if (failing.empty()) {
    s.available_template = tmpl;
    st["replicas"] = replicas;
    st["updatedReplicas"] = replicas;
    st["readyReplicas"] = replicas;
    st["availableReplicas"] = replicas;
    st["conditions"] =
        json::array({{{"type", "Available"}, {"status", "True"}, {"reason", "MinimumReplicasAvailable"}},
                     {{"type", "Progressing"}, {"status", "True"}, {"reason", "NewReplicaSetAvailable"}}});
  } else {
    // maxUnavailable 0: the old pods keep serving while the new ones never get ready.
    int old_available = !s.available_template.empty() && s.available_template != tmpl ? replicas : 0;
    st["replicas"] = replicas + old_available;
    st["updatedReplicas"] = replicas;
    st["readyReplicas"] = old_available;
    st["availableReplicas"] = old_available;
    st["unavailableReplicas"] = replicas;
    st["conditions"] = json::array(
        {{{"type", "Available"},
          {"status", old_available >= replicas ? "True" : "False"},
          {"reason", old_available >= replicas ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable"}},
         {{"type", "Progressing"}, {"status", "True"}, {"reason", "ReplicaSetUpdated"}}});
    s.obj["metadata"]["annotations"]["fake.idp.dev/waiting-reason"] = failing;
  }
  if (st != obj.value("status", json())) {
    obj["status"] = st;
    obj["metadata"]["resourceVersion"] = std::to_string(++m_resource_version);
  }
}

json FakeKubeApiServer::pods_of(const std::string& ns) const {
  json items = json::array();
  for (const auto& [k, s] : m_store) {
    if (std::get<0>(k) != "deployments" || std::get<1>(k) != ns) {
      continue;
    }
    const json& d = s.obj;
    json labels = d["spec"]["template"]["metadata"].value("labels", json::object());
    std::string tmpl = d["spec"].value("template", json::object()).dump();
    auto pod = [&](const std::string& t, bool ready, const std::string& reason) {
      std::string hash = util::sha256_hex(t).substr(0, 10);
      json p = {
          {"metadata",
           {{"name", d["metadata"].value("name", "") + "-" + hash + "-abcde"}, {"namespace", ns}, {"labels", labels}}},
          {"spec", d["spec"]["template"].value("spec", json::object())}};
      // Every container runs (or waits, with the reason), every init container has completed.
      bool init_fails = util::starts_with(reason, "init:");
      json statuses = json::array();
      for (const auto& c : p["spec"].value("containers", json::array())) {
        json cs = {{"name", c.value("name", "")},
                   {"image", c.value("image", "")},
                   {"ready", ready},
                   {"restartCount", reason == "CrashLoopBackOff" ? 3 : 0}};
        if (ready) {
          cs["state"] = {{"running", {{"startedAt", now_rfc3339()}}}};
        } else if (init_fails) {
          cs["state"] = {{"waiting", {{"reason", "PodInitializing"}}}};
        } else {
          cs["state"] = {{"waiting", {{"reason", reason}, {"message", "simulated by the API-server double"}}}};
        }
        statuses.push_back(cs);
      }
      json init_statuses = json::array();
      for (const auto& c : p["spec"].value("initContainers", json::array())) {
        if (init_fails) {
          init_statuses.push_back(
              {{"name", c.value("name", "")},
               {"ready", false},
               {"restartCount", 3},
               {"state",
                {{"waiting",
                  {{"reason", "CrashLoopBackOff"},
                   {"message", "back-off 40s restarting failed container=" + c.value("name", "")}}}}},
               {"lastState",
                {{"terminated",
                  {{"exitCode", 1},
                   {"reason", "Error"},
                   {"message", reason.substr(5)},
                   {"finishedAt", now_rfc3339()}}}}}});
          continue;
        }
        init_statuses.push_back({{"name", c.value("name", "")},
                                 {"ready", true},
                                 {"restartCount", 0},
                                 {"state",
                                  {{"terminated",
                                    {{"exitCode", 0},
                                     {"reason", "Completed"},
                                     {"startedAt", now_rfc3339()},
                                     {"finishedAt", now_rfc3339()}}}}}});
      }
      p["status"] = {{"phase", ready ? "Running" : "Pending"}, {"containerStatuses", statuses}};
      if (!init_statuses.empty()) {
        p["status"]["initContainerStatuses"] = init_statuses;
      }
      items.push_back(p);
    };
    if (!s.available_template.empty()) {
      pod(s.available_template, true, "");
    }
    std::string reason = d["metadata"].value("annotations", json::object()).value("fake.idp.dev/waiting-reason", "");
    if (s.available_template != tmpl && !reason.empty()) {
      pod(tmpl, false, reason);
    }
  }
  // Pods someone else made (put_object): as they were put.
  for (const auto& [k, s] : m_store) {
    if (std::get<0>(k) == "pods" && std::get<1>(k) == ns) {
      items.push_back(s.obj);
    }
  }
  return items;
}

json FakeKubeApiServer::pod_events(const std::string& ns) const {
  // What the kubelet and the scheduler would have recorded about each pod.
  json items = json::array();
  int n = 0;
  for (const auto& p : pods_of(ns)) {
    std::string pod = p["metadata"].value("name", "");
    auto event = [&](const std::string& type, const std::string& reason, const std::string& message) {
      items.push_back({{"apiVersion", "v1"},
                       {"kind", "Event"},
                       {"metadata", {{"name", pod + "." + std::to_string(++n)}, {"namespace", ns}}},
                       {"involvedObject", {{"kind", "Pod"}, {"name", pod}, {"namespace", ns}}},
                       {"type", type},
                       {"reason", reason},
                       {"message", message},
                       {"count", 1},
                       {"firstTimestamp", now_rfc3339()},
                       {"lastTimestamp", now_rfc3339()}});
    };
    event("Normal", "Scheduled", "Successfully assigned " + ns + "/" + pod + " to fake-node");
    for (const auto& cs : p.value("status", json::object()).value("containerStatuses", json::array())) {
      const json st = cs.value("state", json::object());
      std::string c = cs.value("name", "");
      if (st.contains("running")) {
        event("Normal", "Started", "Started container " + c);
      } else if (st.contains("waiting")) {
        std::string why = st["waiting"].value("reason", "");
        event("Warning", "Failed", "Error: " + why);
        event("Normal", "BackOff",
              why == "CrashLoopBackOff" ? "Back-off restarting failed container " + c + " in pod " + pod
                                        : "Back-off pulling image \"" + cs.value("image", "") + "\"");
      }
    }
  }
  return items;
}

int FakeKubeApiServer::dispatch(const httplib::Request& req, httplib::Response& res, Request& rec) {
  auto reply = [&](int code, const json& body) {
    res.set_content(body.dump(), "application/json");
    return code;
  };
  auto fail_with = [&](int code, const std::string& msg, const json& details = nullptr) {
    return reply(code, status_body(code, msg, "", details));
  };
  // Injected failures first: they stand for anything between the client and the store.
  for (auto& f : m_failures) {
    if (f.count > 0 && (f.method.empty() || f.method == req.method) &&
        req.path.find(f.path_part) != std::string::npos) {
      --f.count;
      return fail_with(f.status, "injected failure (" + std::to_string(f.status) + ")");
    }
  }
  if (!m_tokens.empty()) {
    std::string auth = req.get_header_value("Authorization");
    if (!util::starts_with(auth, "Bearer ") || !m_tokens.count(auth.substr(7))) {
      return fail_with(401, "Unauthorized");
    }
  }
  auto seg = util::split(req.path.substr(1), '/');
  while (!seg.empty() && seg.back().empty()) {
    seg.pop_back();
  }
  // Discovery, as kubectl reads it.
  if (req.method == "GET") {
    if (seg == std::vector<std::string>{"version"}) {
      return reply(
          200, {{"major", "1"}, {"minor", "32"}, {"gitVersion", "v1.32.0-idp-double"}, {"platform", "linux/amd64"}});
    }
    if (seg == std::vector<std::string>{"api"}) {
      return reply(200, {{"kind", "APIVersions"},
                         {"versions", {"v1"}},
                         {"serverAddressByClientCIDRs",
                          {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", "127.0.0.1:" + std::to_string(m_port)}}}}});
    }
    if (seg == std::vector<std::string>{"apis"}) {
      json groups = json::array();
      std::set<std::string> seen;
      for (const auto& r : resources()) {
        if (r.group.empty() || (r.group == "postgresql.cnpg.io" && !m_cnpg) || !seen.insert(r.group).second) {
          continue;
        }
        json gv = {{"groupVersion", r.group + "/" + r.version}, {"version", r.version}};
        groups.push_back({{"name", r.group}, {"versions", {gv}}, {"preferredVersion", gv}});
      }
      return reply(200, {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}});
    }
    if ((seg.size() == 2 && seg[0] == "api") || (seg.size() == 3 && seg[0] == "apis")) {
      std::string group = seg[0] == "api" ? "" : seg[1];
      std::string version = seg.back();
      json list = json::array();
      for (const auto& r : resources()) {
        if (r.group == group && r.version == version && (m_cnpg || r.group != "postgresql.cnpg.io")) {
          list.push_back({{"name", r.plural},
                          {"singularName", util::to_lower(r.kind)},
                          {"namespaced", r.namespaced},
                          {"kind", r.kind},
                          {"verbs", {"create", "delete", "get", "list", "patch", "update", "watch"}}});
        }
      }
      if (list.empty()) {
        return fail_with(404, "the server could not find the requested resource");
      }
      return reply(200, {{"kind", "APIResourceList"},
                         {"apiVersion", "v1"},
                         {"groupVersion", group.empty() ? version : group + "/" + version},
                         {"resources", list}});
    }
  }
  // /api/v1/... or /apis/<group>/<version>/...
  std::string group, version;
  size_t at = 0;
  if (seg.size() >= 3 && seg[0] == "api") {
    version = seg[1];
    at = 2;
  } else if (seg.size() >= 4 && seg[0] == "apis") {
    group = seg[1];
    version = seg[2];
    at = 3;
  } else {
    return fail_with(404, "the server could not find the requested resource");
  }
  std::vector<std::string> rest(seg.begin() + static_cast<long>(at), seg.end());
  std::string ns, plural, name, sub;
  if (rest.size() >= 3 && rest[0] == "namespaces") {
    ns = rest[1];
    plural = rest[2];
    name = rest.size() > 3 ? rest[3] : "";
    sub = rest.size() > 4 ? rest[4] : "";
  } else {
    plural = rest[0];
    name = rest.size() > 1 ? rest[1] : "";
    sub = rest.size() > 2 ? rest[2] : "";
  }
  const Resource* r = find_resource(group, version, plural);
  if (!r || (r->group == "postgresql.cnpg.io" && !m_cnpg)) {
    return fail_with(404, "the server could not find the requested resource");
  }
  if (!r->namespaced && !ns.empty()) {
    return fail_with(404, "the server could not find the requested resource");
  }
  if (plural == "pods" && sub == "log" && req.method == "GET") {
    // Pod logs (text): a running container says which image it runs; one still waiting
    // has no log yet (400, as a real server answers).
    for (auto& [k, s] : m_store) {
      if (std::get<0>(k) == "deployments" && std::get<1>(k) == ns) {
        simulate_read(s, *find_resource("apps", "v1", "deployments"));
      }
    }
    auto all = pods_of(ns);
    for (const auto& p : all) {
      if (p["metadata"].value("name", "") != name) {
        continue;
      }
      // As a real server: the container parameter may be left out only for a pod of one
      // container, and must name one of the pod's (init) containers.
      std::vector<std::string> names;
      for (const char* list : {"initContainers", "containers"}) {
        for (const auto& ct : p["spec"].value(list, json::array())) {
          names.push_back(ct.value("name", ""));
        }
      }
      std::string container = req.has_param("container") ? req.get_param_value("container") : "";
      if (container.empty()) {
        if (names.size() != 1) {
          return fail_with(400, "a container name must be specified for pod " + name + ", choose one of: [" +
                                    util::join(names, " ") + "]");
        }
        container = names[0];
      }
      json cs;
      json spec_container;
      for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
        for (const auto& c : p.value("status", json::object()).value(list, json::array())) {
          cs = c.value("name", "") == container ? c : cs;
        }
      }
      for (const char* list : {"initContainers", "containers"}) {
        for (const auto& c : p["spec"].value(list, json::array())) {
          spec_container = c.value("name", "") == container ? c : spec_container;
        }
      }
      if (spec_container.is_null()) {
        return fail_with(400, "container " + container + " is not valid for pod " + name);
      }
      if (cs.is_null() || !cs.contains("state") || cs["state"].contains("waiting")) {
        std::string reason = cs.is_null() ? "" : cs["state"]["waiting"].value("reason", "");
        return fail_with(400, "container \"" + container + "\" in pod \"" + name + "\" is waiting to start: " + reason);
      }
      bool timestamps = req.has_param("timestamps") && req.get_param_value("timestamps") == "true";
      const json& state = cs["state"].contains("running") ? cs["state"]["running"] : cs["state"]["terminated"];
      std::vector<std::pair<std::string, std::string>> lines = {
          {state.value("startedAt", ""), "listening with image " + spec_container.value("image", "")}};
      std::string key = ns + "/" + container;
      bool stored_pod = p["metadata"].contains("uid"); // put with put_object: its own lines
      if ((stored_pod || all[0]["metadata"].value("name", "") == name) && m_logs.count(key)) {
        lines.insert(lines.end(), m_logs[key].begin(), m_logs[key].end());
      }
      if (req.has_param("sinceTime")) {
        auto since = util::parse_iso8601(req.get_param_value("sinceTime"));
        if (!since) {
          return fail_with(400, "sinceTime: expected an RFC 3339 time");
        }
        std::erase_if(lines, [&](const auto& l) { return util::parse_iso8601(l.first).value_or(0) < *since; });
      }
      if (req.has_param("tailLines")) {
        size_t tail = std::stoul(req.get_param_value("tailLines"));
        if (lines.size() > tail) {
          lines.erase(lines.begin(), lines.end() - static_cast<long>(tail));
        }
      }
      std::string text;
      for (const auto& [at, line] : lines) {
        text += (timestamps ? at + " " : "") + line + "\n";
      }
      res.set_content(text, "text/plain");
      return 200;
    }
    return fail_with(404, "pods \"" + name + "\" not found", {{"name", name}, {"kind", "pods"}});
  }
  if (!sub.empty()) {
    return fail_with(404, "the server could not find the requested resource (subresource " + sub + ")");
  }
  bool collection = name.empty();
  std::string verb;
  if (req.method == "GET") {
    verb = collection ? "list" : "get";
  } else if (req.method == "POST") {
    verb = "create";
  } else if (req.method == "PATCH") {
    verb = "patch";
  } else if (req.method == "PUT") {
    verb = "update";
  } else if (req.method == "DELETE") {
    verb = collection ? "deletecollection" : "delete";
  }
  for (const auto& f : m_forbidden) {
    if (f.verb == verb && f.plural == plural && (f.ns.empty() || f.ns == ns)) {
      std::string what = qualified(*r) + (name.empty() ? "" : " \"" + name + "\"");
      return fail_with(403,
                       what + " is forbidden: User \"idp\" cannot " + verb + " resource \"" + plural +
                           "\" in API group \"" + group + "\"" +
                           (ns.empty() ? " at the cluster scope" : " in the namespace \"" + ns + "\""),
                       {{"name", name}, {"group", group}, {"kind", plural}});
    }
  }
  json details = {{"name", name}, {"group", group}, {"kind", plural}};
  std::string not_found = qualified(*r) + " \"" + name + "\" not found";
  Key key{plural, ns, name};

  if (req.method == "GET" && collection && req.has_param("watch") &&
      (req.get_param_value("watch") == "true" || req.get_param_value("watch") == "1")) {
    return watch(req, res, *r, ns);
  }
  if (req.method == "GET" && collection) {
    std::string selector = req.has_param("labelSelector") ? req.get_param_value("labelSelector") : "";
    json items = json::array();
    if (plural == "pods") {
      for (auto& [k, s] : m_store) {
        if (std::get<0>(k) == "deployments" && (ns.empty() || std::get<1>(k) == ns)) {
          simulate_read(s, *find_resource("apps", "v1", "deployments"));
        }
      }
      for (const auto& p : pods_of(ns)) {
        if (selector_matches(selector, p["metadata"].value("labels", json::object()))) {
          items.push_back(p);
        }
      }
    } else {
      if (plural == "events" && !ns.empty()) {
        items = pod_events(ns);
      }
      for (auto& [k, s] : m_store) {
        if (std::get<0>(k) == plural && (ns.empty() || std::get<1>(k) == ns) &&
            selector_matches(selector, s.obj["metadata"].value("labels", json::object()))) {
          simulate_read(s, *r);
          json item = s.obj;
          items.push_back(item);
        }
      }
    }
    return reply(200, {{"kind", r->kind + "List"},
                       {"apiVersion", api_version_of(*r)},
                       {"metadata", {{"resourceVersion", std::to_string(m_resource_version)}}},
                       {"items", items}});
  }
  if (req.method == "GET") {
    auto it = m_store.find(key);
    if (it == m_store.end()) {
      return fail_with(404, not_found, details);
    }
    if (it->second.terminating_reads >= 0) {
      if (it->second.terminating_reads-- == 0) {
        // Finalized: the object (a namespace: and everything in it) is gone.
        for (auto o = m_store.begin(); r->kind == "Namespace" && o != m_store.end();) {
          o = std::get<1>(o->first) == name ? m_store.erase(o) : std::next(o);
        }
        m_store.erase(key);
        return fail_with(404, not_found, details);
      }
    }
    simulate_read(it->second, *r);
    return reply(200, it->second.obj);
  }
  if (req.method == "DELETE") {
    if (collection) {
      return fail_with(405, "deletecollection is not supported by the double");
    }
    auto it = m_store.find(key);
    if (it == m_store.end()) {
      return fail_with(404, not_found, details);
    }
    if (r->kind == "Namespace") {
      if (it->second.terminating_reads < 0) {
        it->second.terminating_reads = m_finalize_reads;
        it->second.obj["status"]["phase"] = "Terminating";
        it->second.obj["metadata"]["deletionTimestamp"] = now_rfc3339();
        it->second.obj["metadata"]["resourceVersion"] = std::to_string(++m_resource_version);
      }
      return reply(200, it->second.obj);
    }
    if (!it->second.obj["metadata"].value("finalizers", json::array()).empty()) {
      // Finalizers (Argo CD's resources finalizer): deleting until the controller is done.
      if (it->second.terminating_reads < 0) {
        it->second.terminating_reads = m_finalize_reads;
        it->second.obj["metadata"]["deletionTimestamp"] = now_rfc3339();
        it->second.obj["metadata"]["resourceVersion"] = std::to_string(++m_resource_version);
      }
      return reply(200, it->second.obj);
    }
    m_store.erase(it);
    return reply(200, {{"kind", "Status"},
                       {"apiVersion", "v1"},
                       {"metadata", json::object()},
                       {"status", "Success"},
                       {"details", details}});
  }
  if (req.method != "PATCH" && req.method != "POST") {
    return fail_with(405, req.method + " is not supported by the double");
  }
  // Create (POST to the collection) or patch (PATCH of one object).
  if (req.method == "POST" && !collection) {
    return fail_with(405, "POST to an object: the server does not allow this method on the requested resource");
  }
  if (req.method == "PATCH" && collection) {
    return fail_with(405, "PATCH of a collection: the server does not allow this method on the requested resource");
  }
  std::string ctype = req.get_header_value("Content-Type");
  auto semi = ctype.find(';');
  if (semi != std::string::npos) {
    ctype = util::trim(ctype.substr(0, semi));
  }
  bool apply = ctype == "application/apply-patch+yaml";
  bool merge = ctype == "application/merge-patch+json";
  if (req.method == "PATCH" && !apply && !merge) {
    return fail_with(415, "the body of the request was in an unknown format - accepted media types include: "
                          "application/json-patch+json, application/merge-patch+json, "
                          "application/apply-patch+yaml, application/strategic-merge-patch+json");
  }
  if (req.method == "POST" && ctype != "application/json" && ctype != "application/yaml") {
    return fail_with(415, "the body of the request was in an unknown format: " + ctype);
  }
  std::string manager = req.has_param("fieldManager") ? req.get_param_value("fieldManager") : "";
  if (apply && manager.empty()) {
    return fail_with(422, "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for "
                          "apply patch");
  }
  json body;
  try {
    body = apply ? yaml_node_to_json(YAML::Load(req.body)) : json::parse(req.body);
  } catch (const std::exception& e) {
    return fail_with(400, std::string("error decoding the body: ") + e.what());
  }
  if (!body.is_object()) {
    return fail_with(400, "the body is not an object");
  }
  if (apply || req.method == "POST") {
    if (body.value("apiVersion", "") != api_version_of(*r) || body.value("kind", "") != r->kind) {
      return fail_with(400, "the API version in the data (" + body.value("apiVersion", "") + ") and kind (" +
                                body.value("kind", "") + ") do not match the URL's " + api_version_of(*r) + " " +
                                r->kind);
    }
  }
  body.erase("status"); // the status subresource is not written through the main resource
  json& md = body["metadata"];
  if (req.method == "POST") {
    name = md.value("name", "");
    key = Key{plural, ns, name};
    not_found = qualified(*r) + " \"" + name + "\" not found";
  } else if (md.contains("name") && md["name"] != name) {
    return fail_with(400, "the name of the object (" + md.value("name", "") + ") does not match the name on the URL (" +
                              name + ")");
  }
  if (r->namespaced && md.contains("namespace") && md["namespace"] != ns) {
    return fail_with(400, "the namespace of the provided object does not match the namespace sent on the request");
  }
  if (!r->namespaced && md.contains("namespace") && !md["namespace"].get<std::string>().empty()) {
    return fail_with(400, r->kind + " is cluster-scoped: metadata.namespace must be empty");
  }
  bool name_ok = (r->kind == "Namespace" || r->kind == "Service") ? is_dns_label(name) : is_dns_subdomain(name);
  std::string invalid_prefix = r->kind + "." + (r->group.empty() ? "" : r->group) + " \"" + name + "\" is invalid: ";
  if (!name_ok) {
    return fail_with(422, invalid_prefix + "metadata.name: Invalid value: \"" + name +
                              "\": must be a lowercase RFC 1123 " +
                              (r->kind == "Namespace" || r->kind == "Service" ? "label" : "subdomain"));
  }
  for (const char* field : {"labels", "annotations"}) {
    if (!md.contains(field)) {
      continue;
    }
    if (!md[field].is_object()) {
      return fail_with(400, std::string("metadata.") + field + " must be a map of strings");
    }
    for (const auto& [k, v] : md[field].items()) {
      if (!v.is_string()) {
        return fail_with(400, std::string("metadata.") + field + "." + k + ": expected a string");
      }
      if (!is_qualified_name(k)) {
        return fail_with(422, invalid_prefix + "metadata." + field + ": Invalid value: \"" + k +
                                  "\": name part must consist of alphanumeric characters, '-', '_' or '.'");
      }
      if (std::string(field) == "labels" && !is_label_value(v.get<std::string>())) {
        return fail_with(422, invalid_prefix + "metadata.labels: Invalid value: \"" + v.get<std::string>() +
                                  "\": a valid label must be an empty string or consist of alphanumeric characters, "
                                  "'-', '_' or '.', and must start and end with an alphanumeric character");
      }
    }
  }
  auto it = m_store.find(key);
  bool creating = it == m_store.end();
  if (creating && req.method == "PATCH" && !apply) {
    return fail_with(404, not_found, details);
  }
  if (!creating && req.method == "POST") {
    return fail_with(409, qualified(*r) + " \"" + name + "\" already exists", details);
  }
  if (r->namespaced) {
    auto nsit = m_store.find(Key{"namespaces", "", ns});
    if (nsit == m_store.end()) {
      return fail_with(404, "namespaces \"" + ns + "\" not found", {{"name", ns}, {"kind", "namespaces"}});
    }
    if (creating && nsit->second.terminating_reads >= 0) {
      return fail_with(403, qualified(*r) + " \"" + name +
                                "\" is forbidden: unable to create new content in namespace " + ns +
                                " because it is being terminated");
    }
    md["namespace"] = ns;
  }
  if (creating) {
    if (apply && (!body.contains("metadata") || !md.contains("name"))) {
      md["name"] = name;
    }
  }
  json live = creating ? json::object() : it->second.obj;
  json before = live;
  if (apply) {
    bool force = req.has_param("force") && req.get_param_value("force") == "true";
    std::map<std::string, json> mine;
    leaves(body, "", mine);
    if (!creating && !force) {
      std::vector<std::string> conflicts;
      for (const auto& [other, cfg] : it->second.applied) {
        if (other == manager) {
          continue;
        }
        std::map<std::string, json> theirs;
        leaves(cfg, "", theirs);
        for (const auto& [p, v] : mine) {
          if (theirs.count(p) && theirs[p] != v) {
            std::string dotted = p;
            std::replace(dotted.begin(), dotted.end(), '\x1f', '.');
            conflicts.push_back("conflict with \"" + other + "\": " + dotted);
          }
        }
      }
      if (!conflicts.empty()) {
        return fail_with(409,
                         "Apply failed with " + std::to_string(conflicts.size()) +
                             " conflict(s): " + util::join(conflicts, "; "),
                         details);
      }
    }
    if (!creating) {
      // Fields this manager applied before and no longer does are removed (unless another
      // manager also set them).
      auto prev = it->second.applied.find(manager);
      if (prev != it->second.applied.end()) {
        std::map<std::string, json> old;
        leaves(prev->second, "", old);
        for (const auto& [p, v] : old) {
          bool kept = mine.count(p) > 0;
          for (const auto& [other, cfg] : it->second.applied) {
            std::map<std::string, json> theirs;
            leaves(cfg, "", theirs);
            kept = kept || (other != manager && theirs.count(p));
          }
          if (!kept) {
            erase_path(live, p);
          }
        }
      }
    }
    merge_into(live, body);
  } else if (req.method == "PATCH") {
    merge_patch(live, body);
  } else {
    live = body;
  }
  // Kind-specific validation a real server does for these objects.
  if (r->kind == "Deployment") {
    json sel = live["spec"]["selector"].value("matchLabels", json::object());
    json tl = live["spec"]["template"]["metadata"].value("labels", json::object());
    if (sel.empty()) {
      return fail_with(422, invalid_prefix + "spec.selector: Required value");
    }
    for (const auto& [k, v] : sel.items()) {
      if (!tl.contains(k) || tl[k] != v) {
        return fail_with(422, invalid_prefix + "spec.template.metadata.labels: Invalid value: " + tl.dump() +
                                  ": `selector` does not match template `labels`");
      }
    }
    if (!creating && before["spec"]["selector"] != live["spec"]["selector"]) {
      return fail_with(422, invalid_prefix + "spec.selector: Invalid value: field is immutable");
    }
    json containers = live["spec"]["template"]["spec"].value("containers", json::array());
    if (containers.empty()) {
      return fail_with(422, invalid_prefix + "spec.template.spec.containers: Required value");
    }
    for (const auto& c : containers) {
      if (c.value("name", "").empty() || c.value("image", "").empty()) {
        return fail_with(422, invalid_prefix + "spec.template.spec.containers: name and image: Required value");
      }
    }
  }
  // Immutable once created: a Job's pod template, a StatefulSet's selector, service name
  // and volume claims (a real server answers 422 for a change).
  if (!creating && r->kind == "Job" &&
      before["spec"].value("template", json()) != live["spec"].value("template", json())) {
    return fail_with(422, invalid_prefix + "spec.template: Invalid value: field is immutable");
  }
  if (!creating && r->kind == "StatefulSet") {
    for (const char* f : {"selector", "serviceName", "volumeClaimTemplates"}) {
      if (before["spec"].value(f, json()) != live["spec"].value(f, json())) {
        return fail_with(422, invalid_prefix +
                                  "spec: Forbidden: updates to statefulset spec for fields other than 'replicas', "
                                  "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' "
                                  "and 'minReadySeconds' are forbidden");
      }
    }
  }
  // ConfigMaps and Secrets: at most 1 MiB of data, and immutable ones keep their data
  // (the real server's validation, which a site's ConfigMaps depend on).
  if (r->kind == "ConfigMap" || r->kind == "Secret") {
    size_t bytes = 0;
    for (const char* f : {"data", "binaryData", "stringData"}) {
      json fields = live.value(f, json::object()); // items() of a temporary would dangle
      for (const auto& [k, v] : fields.items()) {
        std::string text = v.is_string() ? v.get<std::string>() : v.dump();
        bytes += k.size() + (std::string(f) == "binaryData" ? text.size() * 3 / 4 : text.size());
      }
    }
    if (bytes > 1024 * 1024) {
      return fail_with(422, invalid_prefix + "[]: Too long: must have at most 1048576 bytes");
    }
    if (!creating && before.value("immutable", false)) {
      for (const char* f : {"data", "binaryData", "stringData", "immutable"}) {
        if (before.value(f, json()) != live.value(f, json())) {
          return fail_with(422, invalid_prefix + f + ": Forbidden: field is immutable when `immutable` is set");
        }
      }
    }
  }
  if (r->kind == "Service" && live["spec"].value("ports", json::array()).empty()) {
    return fail_with(422, invalid_prefix + "spec.ports: Required value");
  }
  if (creating) {
    Stored s;
    s.obj = stamp_new(live, *r);
    if (apply) {
      s.applied[manager] = body;
    }
    auto& slot = m_store[key];
    slot = std::move(s);
    return reply(201, slot.obj);
  }
  Stored& s = it->second;
  if (apply) {
    s.applied[manager] = body;
  }
  if (r->kind == "Secret" && live.contains("stringData")) {
    for (const auto& [k, v] : live["stringData"].items()) {
      live["data"][k] = util::base64_encode(v.is_string() ? v.get<std::string>() : v.dump());
    }
    live.erase("stringData");
  }
  if (live != before) {
    if (live.value("spec", json()) != before.value("spec", json())) {
      live["metadata"]["generation"] = before["metadata"].value("generation", 1) + 1;
      s.reads_since_change = 0;
    }
    live["metadata"]["resourceVersion"] = std::to_string(++m_resource_version);
  }
  s.obj = live;
  return reply(200, s.obj);
}

} // namespace idp::testing
