#pragma once
// FakeKubeApiServer: an API-server double for the Kubernetes driver's tests. A real HTTP
// (or HTTPS, optionally requiring client certificates) server on 127.0.0.1 that checks what
// a real API server checks for the requests the driver makes: REST paths and verbs, content
// types (server-side apply is PATCH application/apply-patch+yaml with fieldManager),
// namespace scoping (objects only in existing, non-terminating namespaces; names and
// namespaces in the body agree with the URL), object names and label syntax, 404/409 and
// Status bodies, bearer tokens, and the discovery documents kubectl reads. It simulates the
// controllers the driver waits for: a Deployment's status follows its spec one read later
// (or never, for images told to fail), a deleted namespace goes Terminating and is gone
// after a few reads, taking its objects; an Argo CD Application is Synced and Healthy at its
// target revision one read after a change (or Degraded, or OutOfSync, when told), and one
// deleted with finalizers is gone a few reads later. Any request can be made to fail. Thread-safe.
//
// What it does not do (docs/kubernetes.md): list merging by key in server-side apply (lists
// are atomic here), admission, RBAC beyond forbid(), OpenAPI validation. Watches are
// found by comparing snapshots (see watch()).

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace httplib {
class Server;
struct Request;
struct Response;
} // namespace httplib

namespace idp::testing {

class FakeKubeApiServer {
public:
  struct Options {
    // HTTPS with this certificate and key (PEM files); "" = plain HTTP.
    std::string cert_file;
    std::string key_file;
    // With HTTPS: clients must present a certificate signed by this CA (PEM file).
    std::string client_ca_file;
    // Bearer tokens accepted; empty = no token needed.
    std::set<std::string> tokens;
  };
  struct Request {
    std::string method;
    std::string path;  // without the query
    std::string query; // raw query string
    std::string content_type;
    std::string authorization; // the Authorization header
    std::string body;
    int status = 0; // what the double answered
  };

  FakeKubeApiServer();
  explicit FakeKubeApiServer(Options opts);
  ~FakeKubeApiServer();
  FakeKubeApiServer(const FakeKubeApiServer&) = delete;
  FakeKubeApiServer& operator=(const FakeKubeApiServer&) = delete;

  std::string url() const; // http(s)://127.0.0.1:<port>
  int port() const { return m_port; }

  // The next `count` requests whose method is `method` ("" = any) and whose path contains
  // `path_part` get `status` with a Status body (429/5xx, 401, 403, 409...).
  void fail(const std::string& method, const std::string& path_part, int status, int count = 1);
  // Requests with `verb` (get, list, patch, delete, create) on `plural` in `ns` ("" = any
  // namespace) are forbidden (403) as RBAC would answer.
  void forbid(const std::string& verb, const std::string& plural, const std::string& ns = "");
  // Replaces the accepted bearer tokens (rotating credentials).
  void set_tokens(std::set<std::string> tokens);
  // Pods of a Deployment whose container image contains `image_part` never become ready;
  // their waiting reason is `reason` (ImagePullBackOff, CrashLoopBackOff, ...).
  void fail_pods_with_image(const std::string& image_part, const std::string& reason);
  // Pods of a Deployment one of whose init containers' command contains `command_part`
  // never get past it: it exits 1 with `message` (its termination message) and is
  // restarted (CrashLoopBackOff); the app containers wait in PodInitializing.
  void fail_init_containers_with(const std::string& command_part, const std::string& message);
  // The Argo CD controller (Applications, argoproj.io/v1alpha1): an Application's status
  // follows its spec at the next read: Synced at spec.source.targetRevision and Healthy.
  // Applications whose targetRevision contains `revision_part` go Degraded with `message`
  // (a sync whose pods never get ready).
  void fail_application_revision(const std::string& revision_part, const std::string& message);
  // The Application `ns`/`name` reports OutOfSync (someone changed its objects by hand and
  // self-heal has not put them back) until called again with false.
  void set_application_drift(const std::string& ns, const std::string& name, bool drifted);
  // Jobs whose name starts with `name_prefix` fail (condition Failed, reason
  // BackoffLimitExceeded, `message`) instead of completing.
  void fail_jobs(const std::string& name_prefix, const std::string& message);
  // Serves CloudNativePG's postgresql.cnpg.io/v1 (discovery and Clusters), as a cluster
  // with its operator installed does. Off by default: 404, as without the CRD.
  void serve_cloudnative_pg(bool on);
  // The Gateway's controller (HTTPRoutes): at every read it brings status.parents up to
  // date, for each parentRef, Accepted and ResolvedRefs True with the route's
  // generation. `refuse_routes` makes it answer Accepted False with `reason` and `message`
  // (a listener that does not admit the namespace); `silence_routes` makes it never answer
  // (no controller for that Gateway, or no such Gateway).
  void refuse_routes(const std::string& reason, const std::string& message);
  void silence_routes(bool silent);
  // A deleted namespace stays Terminating for `reads` GETs of it before it is gone (default 1).
  void set_namespace_finalize_reads(int reads);

  // A line `container` of the first pod the double lists in `ns` logs at `at` (RFC 3339),
  // after its start line (for a pod put with put_object: of that pod). Logs honour
  // container, sinceTime and tailLines as a real server does.
  void append_log(const std::string& ns, const std::string& at, const std::string& text,
                  const std::string& container = "app");

  std::vector<Request> requests() const;
  void clear_requests();
  // The stored object, or nullopt. `plural` as in the URL ("deployments").
  std::optional<nlohmann::json> object(const std::string& plural, const std::string& ns, const std::string& name) const;
  // Every stored object of `plural` (all namespaces).
  std::vector<nlohmann::json> objects(const std::string& plural) const;
  // Stores `obj` as if someone else created it (its kind must be known to the double).
  void put_object(const nlohmann::json& obj);

  struct Resource {
    std::string group; // "" for the core group
    std::string version;
    std::string kind;
    std::string plural;
    bool namespaced = true;
  };

private:
  struct Stored {
    nlohmann::json obj;
    std::map<std::string, nlohmann::json> applied; // field manager -> its last applied config
    int reads_since_change = 0;
    std::string available_template; // the pod template that last became available (Deployments)
    int terminating_reads = -1;     // namespaces, objects with finalizers: reads left while deleting (-1 = not)
  };
  using Key = std::tuple<std::string, std::string, std::string>; // plural, ns, name

  void handle(const httplib::Request& req, httplib::Response& res);
  int dispatch(const httplib::Request& req, httplib::Response& res, Request& rec);
  void start(Options opts);
  void simulate_read(Stored& s, const Resource& r);
  // The events the kubelet would have recorded for the pods of `ns` (the double keeps none).
  nlohmann::json pod_events(const std::string& ns) const;
  int watch(const httplib::Request& req, httplib::Response& res, const Resource& r, const std::string& ns);
  void simulate_application(Stored& s);
  void simulate_database_read(Stored& s, const Resource& r);
  void simulate_route(Stored& s);
  nlohmann::json stamp_new(nlohmann::json obj, const Resource& r);
  nlohmann::json pods_of(const std::string& ns) const;

  std::unique_ptr<httplib::Server> m_server;
  std::thread m_thread;
  int m_port = 0;
  bool m_tls = false;
  std::atomic<bool> m_stopping{false};
  mutable std::mutex m_mu;
  std::set<std::string> m_tokens;
  std::vector<Request> m_requests;
  struct Failure {
    std::string method, path_part;
    int status;
    int count;
  };
  std::vector<Failure> m_failures;
  struct Forbidden {
    std::string verb, plural, ns;
  };
  std::vector<Forbidden> m_forbidden;
  std::map<std::string, std::string> m_failing_images;
  std::map<std::string, std::string> m_failing_inits; // command part -> termination message
  std::map<std::string, std::string> m_failing_revisions;
  std::string m_route_refusal_reason, m_route_refusal_message; // "" = routes are accepted
  bool m_routes_silent = false;
  std::set<std::pair<std::string, std::string>> m_drifted; // Applications (ns, name) OutOfSync
  int m_finalize_reads = 1;
  // "<ns>/<container>" -> (time, text)
  std::map<std::string, std::vector<std::pair<std::string, std::string>>> m_logs;
  std::map<std::string, std::string> m_failing_jobs; // name prefix -> failure message
  bool m_cnpg = false;
  std::map<Key, Stored> m_store;
  int64_t m_resource_version = 1000;
  int64_t m_uid = 1;
};

} // namespace idp::testing
