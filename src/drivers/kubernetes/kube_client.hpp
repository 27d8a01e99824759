#pragma once
// A small Kubernetes REST client over libcurl: TLS with the kubeconfig's CA and client
// certificate, bearer tokens (static, token file, exec plugin), server-side apply.
// Thread-safe: each request uses its own curl handle; the counters are atomic.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "drivers/kubernetes/exec_credential.hpp"
#include "drivers/kubernetes/kubeconfig.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::drivers::kubernetes {

// A kind the driver manages, and where its objects live in the REST API.
struct ResourceKind {
  std::string api_version; // "apps/v1", "v1"
  std::string kind;        // "Deployment"
  std::string plural;      // "deployments"
  bool namespaced = true;
};

// The kinds the driver renders; nullptr for any other.
const ResourceKind* find_kind(std::string_view api_version, std::string_view kind);
// "/apis/apps/v1/namespaces/<ns>/deployments[/<name>]" ("" name = the collection; "" ns of
// a namespaced kind = the collection across every namespace).
std::string resource_path(const ResourceKind& k, const std::string& ns, const std::string& name = "");

// What a request does, for messages: "patch deployments \"web\" in namespace \"pr-1\"".
struct RequestInfo {
  std::string verb;     // get | list | create | patch | delete | watch
  std::string resource; // plural
  std::string ns;
  std::string name;
  std::string describe() const;
};

struct KubeResponse {
  long status = 0;
  nlohmann::json body; // null when the body is not JSON
  std::string raw;     // the body as received (pod logs are text)
};

// Request and byte counts since construction (bench, tests).
struct KubeStats {
  int64_t requests = 0;
  int64_t bytes_sent = 0;
  int64_t bytes_received = 0;
  int64_t wait_ms = 0; // time spent waiting for the server's answers
};

class KubeClient {
public:
  KubeClient(ClusterConnection conn, util::Clock* clock, int64_t timeout_ms = 30000);

  // One request. Any HTTP status is a response except 401 and 403, which are permanent
  // errors naming what was refused (after one retry with a fresh exec credential on 401).
  // Transport errors: transient "unreachable" (refused, DNS, timeout), permanent for TLS
  // failures (the server's certificate is not trusted, the client certificate is rejected).
  Expected<KubeResponse> request(const std::string& method, const std::string& path, const RequestInfo& info,
                                 const std::string& body = "", const std::string& content_type = "");

  // GET of one object: nullopt on 404.
  Expected<std::optional<nlohmann::json>> get(const ResourceKind& k, const std::string& ns, const std::string& name);
  // GET of a collection (label selector optional): the items.
  Expected<std::vector<nlohmann::json>> list(const ResourceKind& k, const std::string& ns,
                                             const std::string& label_selector = "");
  // The same with the collection's resourceVersion, where a watch of it starts.
  struct Listing {
    std::vector<nlohmann::json> items;
    std::string resource_version;
  };
  Expected<Listing> list_versioned(const ResourceKind& k, const std::string& ns, const std::string& label_selector);
  // A watch of `k` in namespace `ns` ("" = every namespace) from `resource_version`:
  // on_event gets each event ({"type": ADDED|MODIFIED|DELETED|BOOKMARK, "object": …}) as it
  // arrives, on the calling thread. Returns ok when the server ends the stream (after
  // `timeout_seconds`) or once `stop` is set (checked at least once a second); conflict
  // when the version is too old (410 Gone, as an answer or as an ERROR event: list again);
  // transient for a dropped connection. One request, however long it lasts.
  Expected<void> watch(const ResourceKind& k, const std::string& ns, const std::string& label_selector,
                       const std::string& resource_version, int timeout_seconds,
                       const std::function<void(const nlohmann::json&)>& on_event, const std::atomic<bool>& stop);
  // Server-side apply of `obj` (PATCH application/apply-patch+yaml, fieldManager, force):
  // the object as the server now has it. Its kind must be one find_kind knows.
  Expected<nlohmann::json> apply(const nlohmann::json& obj, const std::string& field_manager);
  // DELETE: true when deleted (or deletion started), false on 404 (already gone).
  Expected<bool> remove(const ResourceKind& k, const std::string& ns, const std::string& name,
                        const std::string& propagation = "Foreground");

  // An error for a response with an unexpected status: conflict (409), invalid_config
  // (400/422: the server rejected the object), transient (429, 5xx), permanent otherwise.
  static Error status_error(const KubeResponse& r, const RequestInfo& info, const std::string& server);

  KubeStats stats() const;
  const ClusterConnection& connection() const { return m_conn; }
  // The exec plugin's run count (0 without a plugin).
  int exec_runs() const { return m_exec ? m_exec->runs() : 0; }

  struct Stream; // a watch's body, read as it arrives

private:
  Expected<KubeResponse> perform(const std::string& method, const std::string& path, const RequestInfo& info,
                                 const std::string& body, const std::string& content_type, Stream* stream);
  Expected<KubeResponse> send_once(const std::string& method, const std::string& path, const RequestInfo& info,
                                   const std::string& body, const std::string& content_type, Stream* stream);

  ClusterConnection m_conn;
  util::Clock* m_clock;
  int64_t m_timeout_ms;
  std::unique_ptr<ExecCredentialProvider> m_exec;
  std::atomic<int64_t> m_requests{0}, m_sent{0}, m_received{0}, m_wait_ms{0};
};

} // namespace idp::drivers::kubernetes
