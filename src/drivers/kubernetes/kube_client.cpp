#include "drivers/kubernetes/kube_client.hpp"

#include <curl/curl.h>

#include "util/fs.hpp"
#include "util/http_client.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"

namespace idp::drivers::kubernetes {

namespace {

constexpr size_t k_max_body = 32 * 1024 * 1024; // a list of a busy namespace stays well below

const std::vector<ResourceKind>& kinds() {
  static const std::vector<ResourceKind> k_kinds = {
      {"v1", "Namespace", "namespaces", false},
      {"v1", "ResourceQuota", "resourcequotas", true},
      {"v1", "LimitRange", "limitranges", true},
      {"v1", "ServiceAccount", "serviceaccounts", true},
      {"v1", "Secret", "secrets", true},
      {"v1", "ConfigMap", "configmaps", true},
      {"v1", "Service", "services", true},
      {"v1", "Pod", "pods", true},
      {"v1", "Event", "events", true},
      {"v1", "PersistentVolumeClaim", "persistentvolumeclaims", true},
      {"apps/v1", "Deployment", "deployments", true},
      {"apps/v1", "ReplicaSet", "replicasets", true},
      {"apps/v1", "StatefulSet", "statefulsets", true},
      {"batch/v1", "Job", "jobs", true},
      {"batch/v1", "CronJob", "cronjobs", true},
      {"networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", true},
      {"networking.k8s.io/v1", "Ingress", "ingresses", true},
      {"argoproj.io/v1alpha1", "Application", "applications", true}, // Argo CD mode
      {"postgresql.cnpg.io/v1", "Cluster", "clusters", true},        // CloudNativePG (api-database)
      {"gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes", true},
  };
  return k_kinds;
}

struct CurlGlobalInit {
  CurlGlobalInit() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobalInit() { curl_global_cleanup(); }
};

struct Sink {
  std::string body;
  bool too_large = false;
};

size_t on_body(char* ptr, size_t size, size_t n, void* ud) {
  auto* s = static_cast<Sink*>(ud);
  size_t len = size * n;
  if (s->body.size() + len > k_max_body) {
    s->too_large = true;
    return 0;
  }
  s->body.append(ptr, len);
  return len;
}

} // namespace

// A watch's body: complete lines (events) go to on_line as they arrive; a partial one
// waits for the rest. The body of an answer other than 200 is kept for its error.
struct KubeClient::Stream {
  CURL* curl = nullptr;
  std::function<bool(std::string_view)> on_line; // false: stop reading
  const std::atomic<bool>* stop = nullptr;
  std::string pending;
  std::string error_body;
  bool stopped = false; // stopped on purpose (stop set, or on_line said so)
  bool too_large = false;
};

namespace {

size_t on_stream(char* ptr, size_t size, size_t n, void* ud) {
  auto* s = static_cast<KubeClient::Stream*>(ud);
  size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    if (s->error_body.size() + len > k_max_body) {
      s->too_large = true;
      return 0;
    }
    s->error_body.append(ptr, len);
    return len;
  }
  s->pending.append(ptr, len);
  size_t start = 0;
  for (size_t nl = s->pending.find('\n'); nl != std::string::npos; nl = s->pending.find('\n', start)) {
    if (nl > start && !s->on_line(std::string_view(s->pending).substr(start, nl - start))) {
      s->stopped = true;
      return 0;
    }
    start = nl + 1;
  }
  s->pending.erase(0, start);
  if (s->pending.size() > k_max_body) {
    s->too_large = true; // an event larger than any object can be
    return 0;
  }
  return len;
}

int on_stream_progress(void* ud, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* s = static_cast<KubeClient::Stream*>(ud);
  if (s->stop && s->stop->load()) {
    s->stopped = true;
    return 1;
  }
  return 0;
}

curl_blob blob(const std::string& s) {
  curl_blob b;
  b.data = const_cast<char*>(s.data());
  b.len = s.size();
  b.flags = CURL_BLOB_COPY;
  return b;
}

std::string server_message(const nlohmann::json& body) {
  if (body.is_object() && body.contains("message") && body["message"].is_string()) {
    return body["message"].get<std::string>();
  }
  return "";
}

} // namespace

const ResourceKind* find_kind(std::string_view api_version, std::string_view kind) {
  for (const auto& k : kinds()) {
    if (k.api_version == api_version && k.kind == kind) {
      return &k;
    }
  }
  return nullptr;
}

std::string resource_path(const ResourceKind& k, const std::string& ns, const std::string& name) {
  std::string p = k.api_version.find('/') == std::string::npos ? "/api/" + k.api_version : "/apis/" + k.api_version;
  if (k.namespaced && !ns.empty()) { // "" lists or watches every namespace
    p += "/namespaces/" + util::url_encode(ns);
  }
  p += "/" + k.plural;
  if (!name.empty()) {
    p += "/" + util::url_encode(name);
  }
  return p;
}

std::string RequestInfo::describe() const {
  std::string s = verb + " " + resource;
  if (!name.empty()) {
    s += " " + util::quote(name);
  }
  if (!ns.empty()) {
    s += " in namespace " + util::quote(ns);
  }
  return s;
}

KubeClient::KubeClient(ClusterConnection conn, util::Clock* clock, int64_t timeout_ms)
    : m_conn(std::move(conn)), m_clock(clock), m_timeout_ms(timeout_ms) {
  if (m_conn.has_exec) {
    m_exec = std::make_unique<ExecCredentialProvider>(m_conn, m_clock);
  }
}

KubeStats KubeClient::stats() const {
  return KubeStats{m_requests.load(), m_sent.load(), m_received.load(), m_wait_ms.load()};
}

Expected<KubeResponse> KubeClient::request(const std::string& method, const std::string& path, const RequestInfo& info,
                                           const std::string& body, const std::string& content_type) {
  return perform(method, path, info, body, content_type, nullptr);
}

Expected<KubeResponse> KubeClient::perform(const std::string& method, const std::string& path, const RequestInfo& info,
                                           const std::string& body, const std::string& content_type, Stream* stream) {
  IDP_TRY_ASSIGN(KubeResponse r, send_once(method, path, info, body, content_type, stream));
  if (r.status == 401 && m_exec) {
    // The plugin's token may have been revoked or expired early: one fresh try (client-go
    // does the same).
    m_exec->invalidate();
    IDP_TRY_ASSIGN(r, send_once(method, path, info, body, content_type, stream));
  }
  if (r.status == 401) {
    std::string msg = server_message(r.body);
    return make_error(ErrorCode::permanent, "kubernetes API server " + m_conn.server + " rejected the credentials of " +
                                                m_conn.source + " (401 Unauthorized) to " + info.describe() +
                                                (msg.empty() ? "" : ": " + msg));
  }
  if (r.status == 403) {
    std::string msg = server_message(r.body);
    return make_error(ErrorCode::permanent, "kubernetes API server " + m_conn.server + " refused to " +
                                                info.describe() + " (403 Forbidden)" + (msg.empty() ? "" : ": " + msg));
  }
  return r;
}

Expected<KubeResponse> KubeClient::send_once(const std::string& method, const std::string& path,
                                             const RequestInfo& info, const std::string& body,
                                             const std::string& content_type, Stream* stream) {
  static CurlGlobalInit g_init; // thread-safe static initialisation
  (void)g_init;
  std::string token = m_conn.token;
  std::string cert = m_conn.client_cert_pem;
  std::string key = m_conn.client_key_pem;
  if (!m_conn.token_file.empty()) {
    auto t = util::read_file(m_conn.token_file);
    if (!t) {
      return make_error(ErrorCode::invalid_config, m_conn.source + ": cannot read token file " +
                                                       util::quote(m_conn.token_file) + ": " + t.error().message);
    }
    token = util::trim(*t);
  }
  if (m_exec) {
    IDP_TRY_ASSIGN(ExecCredential c, m_exec->get());
    if (!c.token.empty()) {
      token = c.token;
    } else {
      cert = c.client_cert_pem;
      key = c.client_key_pem;
    }
  }

  CURL* curl = curl_easy_init();
  if (!curl) {
    return make_error(ErrorCode::internal, "curl_easy_init failed");
  }
  std::string url = m_conn.server + path;
  // tls-server-name: the certificate is checked against that name (and sent as SNI) while
  // the connection goes to the server's own address; the Host header stays the server's,
  // as kubectl sends it.
  struct curl_slist* connect_to = nullptr;
  std::string host_header;
  if (!m_conn.tls_server_name.empty() && util::starts_with(m_conn.server, "https://")) {
    std::string rest = m_conn.server.substr(8);
    std::string authority = rest.substr(0, rest.find('/'));
    std::string base_path = rest.substr(authority.size());
    auto bracket = authority.rfind(']');
    auto colon = authority.rfind(':');
    bool has_port = colon != std::string::npos && (bracket == std::string::npos || colon > bracket);
    std::string host = has_port ? authority.substr(0, colon) : authority;
    std::string port = has_port ? authority.substr(colon + 1) : "443";
    url = "https://" + m_conn.tls_server_name + ":" + port + base_path + path;
    connect_to = curl_slist_append(connect_to, (m_conn.tls_server_name + ":" + port + ":" + host + ":" + port).c_str());
    host_header = "Host: " + authority;
  }
  Sink sink;
  char errbuf[CURL_ERROR_SIZE] = {0};
  struct curl_slist* hdrs = nullptr;
  hdrs = curl_slist_append(hdrs, "Accept: application/json");
  hdrs = curl_slist_append(hdrs, "Expect:");
  std::string auth;
  if (!token.empty()) {
    auth = "Authorization: Bearer " + token;
    hdrs = curl_slist_append(hdrs, auth.c_str());
  }
  if (!content_type.empty()) {
    hdrs = curl_slist_append(hdrs, ("Content-Type: " + content_type).c_str());
  }
  if (!host_header.empty()) {
    hdrs = curl_slist_append(hdrs, host_header.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "idp-kubernetes-driver");
  if (stream) {
    // No deadline for the whole answer (the server ends a watch), but a connection that
    // goes silent for longer than any heartbeat is dropped.
    stream->curl = curl;
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, stream);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_stream_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, stream);
  } else {
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(m_timeout_ms));
  }
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (connect_to) {
    curl_easy_setopt(curl, CURLOPT_CONNECT_TO, connect_to);
  }
  if (!m_conn.proxy_url.empty()) {
    curl_easy_setopt(curl, CURLOPT_PROXY, m_conn.proxy_url.c_str());
  }
  if (!m_conn.ca_pem.empty()) {
    curl_blob b = blob(m_conn.ca_pem);
    curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &b);
  }
  if (m_conn.insecure_skip_tls_verify) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (!cert.empty()) {
    curl_blob c = blob(cert);
    curl_blob k = blob(key);
    curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &c);
    curl_easy_setopt(curl, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &k);
    curl_easy_setopt(curl, CURLOPT_SSLKEYTYPE, "PEM");
  }
  int64_t started = util::steady_ms();
  CURLcode rc = curl_easy_perform(curl);
  m_wait_ms += util::steady_ms() - started;
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hdrs);
  curl_slist_free_all(connect_to);
  curl_easy_cleanup(curl);
  m_requests += 1;
  m_sent += static_cast<int64_t>(body.size());
  m_received += static_cast<int64_t>(sink.body.size());
  if (stream) {
    if (stream->stopped && (rc == CURLE_ABORTED_BY_CALLBACK || rc == CURLE_WRITE_ERROR)) {
      rc = CURLE_OK; // we stopped reading, nothing failed
    }
    sink.too_large = stream->too_large;
    sink.body = std::move(stream->error_body);
  }

  if (rc != CURLE_OK) {
    std::string detail = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
    std::string prefix = "kubernetes API server " + m_conn.server + " (" + m_conn.source + "): ";
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
      return make_error(ErrorCode::permanent, prefix +
                                                  "its TLS certificate is not trusted (check the cluster's "
                                                  "certificate-authority): " +
                                                  detail);
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
      return make_error(ErrorCode::permanent, prefix + "the client certificate or key is unusable: " + detail);
    case CURLE_SSL_CONNECT_ERROR:
      return make_error(ErrorCode::permanent, prefix +
                                                  "TLS handshake failed (a client certificate the server "
                                                  "does not accept, or a server that does not speak TLS): " +
                                                  detail);
    case CURLE_OPERATION_TIMEDOUT:
      return make_error(ErrorCode::timeout, prefix + "no answer to " + info.describe() + ": " + detail);
    case CURLE_WRITE_ERROR:
      if (sink.too_large) {
        return make_error(ErrorCode::permanent, prefix + "the answer to " + info.describe() + " exceeds " +
                                                    std::to_string(k_max_body) + " bytes");
      }
      [[fallthrough]];
    default: return make_error(ErrorCode::transient, prefix + "unreachable: " + detail);
    }
  }
  KubeResponse r;
  r.status = status;
  r.raw = std::move(sink.body);
  r.body = nlohmann::json::parse(r.raw, nullptr, false);
  if (r.body.is_discarded()) {
    r.body = nullptr;
  }
  return r;
}

Error KubeClient::status_error(const KubeResponse& r, const RequestInfo& info, const std::string& server) {
  std::string msg = server_message(r.body);
  std::string reason = r.body.is_object() ? r.body.value("reason", "") : "";
  std::string text = "kubernetes API server " + server + ": " + info.describe() + ": " + std::to_string(r.status) +
                     (reason.empty() ? "" : " " + reason) + (msg.empty() ? "" : ": " + msg);
  ErrorCode code = ErrorCode::permanent;
  if (r.status == 409) {
    code = ErrorCode::conflict;
  } else if (r.status == 400 || r.status == 422) {
    code = ErrorCode::invalid_config;
  } else if (r.status == 429 || r.status >= 500) {
    code = ErrorCode::transient;
  }
  return Error(code, text);
}

Expected<std::optional<nlohmann::json>> KubeClient::get(const ResourceKind& k, const std::string& ns,
                                                        const std::string& name) {
  RequestInfo info{"get", k.plural, k.namespaced ? ns : "", name};
  IDP_TRY_ASSIGN(KubeResponse r, request("GET", resource_path(k, ns, name), info));
  if (r.status == 404) {
    return std::optional<nlohmann::json>();
  }
  if (r.status != 200 || !r.body.is_object()) {
    return tl::unexpected(status_error(r, info, m_conn.server));
  }
  return std::optional<nlohmann::json>(std::move(r.body));
}

Expected<std::vector<nlohmann::json>> KubeClient::list(const ResourceKind& k, const std::string& ns,
                                                       const std::string& label_selector) {
  IDP_TRY_ASSIGN(Listing l, list_versioned(k, ns, label_selector));
  return std::move(l.items);
}

Expected<KubeClient::Listing> KubeClient::list_versioned(const ResourceKind& k, const std::string& ns,
                                                         const std::string& label_selector) {
  RequestInfo info{"list", k.plural, k.namespaced ? ns : "", ""};
  std::string path = resource_path(k, ns);
  if (!label_selector.empty()) {
    path += "?labelSelector=" + util::url_encode(label_selector);
  }
  IDP_TRY_ASSIGN(KubeResponse r, request("GET", path, info));
  if (r.status == 404 && k.namespaced) {
    return Listing{}; // the namespace is gone: nothing in it
  }
  if (r.status != 200 || !r.body.is_object() || !r.body.contains("items") || !r.body["items"].is_array()) {
    return tl::unexpected(status_error(r, info, m_conn.server));
  }
  Listing out;
  out.items = r.body["items"].get<std::vector<nlohmann::json>>();
  out.resource_version = r.body.value("metadata", nlohmann::json::object()).value("resourceVersion", "");
  return out;
}

Expected<void> KubeClient::watch(const ResourceKind& k, const std::string& ns, const std::string& label_selector,
                                 const std::string& resource_version, int timeout_seconds,
                                 const std::function<void(const nlohmann::json&)>& on_event,
                                 const std::atomic<bool>& stop) {
  RequestInfo info{"watch", k.plural, k.namespaced ? ns : "", ""};
  std::string path = resource_path(k, ns) +
                     "?watch=true&allowWatchBookmarks=true&timeoutSeconds=" + std::to_string(timeout_seconds) +
                     "&resourceVersion=" + util::url_encode(resource_version);
  if (!label_selector.empty()) {
    path += "&labelSelector=" + util::url_encode(label_selector);
  }
  std::optional<Error> gone;
  Stream stream;
  stream.stop = &stop;
  stream.on_line = [&](std::string_view line) {
    auto ev = nlohmann::json::parse(line, nullptr, false);
    if (!ev.is_object() || !ev.contains("type") || !ev.contains("object")) {
      gone = Error(ErrorCode::transient, "kubernetes API server " + m_conn.server + ": " + info.describe() +
                                             ": an event that is not a watch event");
      return false;
    }
    if (ev["type"] == "ERROR") {
      // {"type": "ERROR", "object": Status}: 410 Gone when the version was compacted away.
      int code = ev["object"].value("code", 0);
      gone = Error(code == 410 ? ErrorCode::conflict : ErrorCode::transient,
                   "kubernetes API server " + m_conn.server + ": " + info.describe() + ": " + std::to_string(code) +
                       " " + server_message(ev["object"]));
      return false;
    }
    on_event(ev);
    return true;
  };
  IDP_TRY_ASSIGN(KubeResponse r, perform("GET", path, info, "", "", &stream));
  if (gone) {
    return Unexpected(*gone);
  }
  if (r.status == 410) {
    return make_error(ErrorCode::conflict, "kubernetes API server " + m_conn.server + ": " + info.describe() +
                                               ": resource version " + resource_version + " is too old (410 Gone)");
  }
  if (r.status != 200) {
    return tl::unexpected(status_error(r, info, m_conn.server));
  }
  return {};
}

Expected<nlohmann::json> KubeClient::apply(const nlohmann::json& obj, const std::string& field_manager) {
  std::string api_version = obj.value("apiVersion", "");
  std::string kind = obj.value("kind", "");
  const ResourceKind* k = find_kind(api_version, kind);
  IDP_ASSERT(k != nullptr); // the driver renders only kinds of the table
  std::string name = obj["metadata"].value("name", "");
  std::string ns = k->namespaced ? obj["metadata"].value("namespace", "") : "";
  RequestInfo info{"patch", k->plural, ns, name};
  std::string path = resource_path(*k, ns, name) + "?fieldManager=" + util::url_encode(field_manager) + "&force=true";
  // JSON is YAML: the apply body is the object as JSON text.
  IDP_TRY_ASSIGN(KubeResponse r, request("PATCH", path, info, util::json_dump(obj), "application/apply-patch+yaml"));
  if ((r.status != 200 && r.status != 201) || !r.body.is_object()) {
    return tl::unexpected(status_error(r, info, m_conn.server));
  }
  return std::move(r.body);
}

Expected<bool> KubeClient::remove(const ResourceKind& k, const std::string& ns, const std::string& name,
                                  const std::string& propagation) {
  RequestInfo info{"delete", k.plural, k.namespaced ? ns : "", name};
  nlohmann::json opts = {{"kind", "DeleteOptions"}, {"apiVersion", "v1"}, {"propagationPolicy", propagation}};
  IDP_TRY_ASSIGN(KubeResponse r,
                 request("DELETE", resource_path(k, ns, name), info, util::json_dump(opts), "application/json"));
  if (r.status == 404) {
    return false;
  }
  if (r.status != 200 && r.status != 202) {
    return tl::unexpected(status_error(r, info, m_conn.server));
  }
  return true;
}

} // namespace idp::drivers::kubernetes
