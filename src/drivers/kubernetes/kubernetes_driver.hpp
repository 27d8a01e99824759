#pragma once
// The Kubernetes runtime: each environment is a namespace on a shared cluster, applied
// with server-side apply (field manager "idp") over the REST API, no kubectl needed.
// apply waits for the Deployment's rollout (observedGeneration, updated and available
// replicas); destroy deletes the namespace and waits until it is gone. Thread-safe: the
// driver's only memory is what the watch of its Deployments last saw; the cluster is the
// state.

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "drivers/driver.hpp"
#include "drivers/kubernetes/argocd.hpp"
#include "drivers/kubernetes/kube_client.hpp"
#include "drivers/kubernetes/kubernetes_options.hpp"
#include "drivers/kubernetes/manifests.hpp"
#include "drivers/kubernetes/manifests_static.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::kubernetes {

class KubernetesDriver final : public Driver {
public:
  // `client` null with `connect_error` set: the connection could not be loaded; every
  // operation that needs the cluster fails with that error (start() does not, so a daemon
  // that never uses this runtime starts anyway). `configured`: the options named a
  // connection explicitly, so start() sweeps the cluster even with no live environment.
  KubernetesDriver(const DriverContext& ctx, KubernetesOptions opts, std::unique_ptr<KubeClient> client,
                   Error connect_error, bool configured);

  ~KubernetesDriver() override;
  KubernetesDriver(const KubernetesDriver&) = delete;
  KubernetesDriver& operator=(const KubernetesDriver&) = delete;

  std::string_view name() const override { return "kubernetes"; }
  // Deletes namespaces labelled with this server's id whose environment is not in `live`
  // (the orphan sweep), and starts the watch of this server's Deployments (option watch).
  // An unreachable cluster is not an error here: it is reported by the first operation on
  // an environment, and the watch keeps trying.
  Expected<void> start(const std::vector<core::Environment>& live) override;
  // Ends the watch (the environments run on: the cluster is theirs).
  void stop(bool keep_running) override;
  // observe of an api-service environment whose Deployment the watch has seen available
  // answers from the watch, without a request; anything else (not seen, unhealthy, a
  // scheduled worker, the watch down) reads the cluster.
  Expected<void> plan(const DeploySpec& spec) override;
  Expected<ApplyResult> apply(const DeploySpec& spec, Progress& progress) override;
  Expected<Observation> observe(const core::Environment& env) override;
  Expected<void> destroy(const core::Environment& env, Progress& progress) override;
  // Every container's log (init containers too) of every pod of the environment; lines of
  // the `app` container have stream "stdout", other containers' their container's name.
  Expected<LogChunk> read_logs(const core::Environment& env, const LogQuery& q) override;
  // The pods (phase, readiness, restarts, why a container waits or ended) and the
  // namespace's most recent events, newest last: what `kubectl get pods` and
  // `kubectl get events` would tell about the environment.
  Expected<nlohmann::json> describe(const core::Environment& env) override;
  // idp exec: `kubectl exec` into the Deployment's app container (argv after "--", never
  // through a shell). invalid_argument without kubectl, or for a scheduled worker.
  Expected<nlohmann::json> exec(const core::Environment& env, const std::vector<std::string>& argv) override;
  Expected<std::unique_ptr<ExecProcess>> start_exec(const core::Environment& env, const ExecRequest& req) override;

  // The manifests apply would send for `spec`, secret values as placeholders (tests, plan).
  // invalid_config as plan.
  Expected<std::vector<nlohmann::json>> render_objects(const DeploySpec& spec) const;
  // The same as a YAML stream, one document per object (idp render).
  Expected<std::string> render(const DeploySpec& spec) const override;
  // The client's request counters (bench, tests); zero without a connection.
  KubeStats stats() const;
  // Deletes namespaces of this server whose environment is not in `live`; the names deleted.
  Expected<std::vector<std::string>> sweep_orphans(const std::vector<core::Environment>& live);
  // The watch has listed the Deployments and follows them (tests, bench).
  bool watch_synced() const;

private:
  Expected<KubeClient*> client();
  Expected<std::map<std::string, std::string>> resolve_secrets(const DeploySpec& spec) const;
  // The Deployment as it was when it had rolled out.
  Expected<nlohmann::json> wait_for_rollout(const DeploySpec& spec, Progress& progress);
  // The routing ("ingress" or "gateway") whose route object an existing namespace may
  // still hold because the server's routing changed since its last apply; "" when none.
  std::string stale_routing(const nlohmann::json* existing_ns, const std::vector<nlohmann::json>& objects) const;
  // Deletes the route object of `old_routing` (404: already gone).
  Expected<void> remove_old_route(const std::string& ns, const std::string& old_routing, Progress& progress);
  // Deletes the environment's variable Secrets (app-env-<hash>) and site ConfigMaps
  // (site-*) that no pod template in `keep_templates` uses. Best effort: a failure is
  // logged, the next deploy tries again.
  void prune_unused(const std::string& ns, const std::vector<nlohmann::json>& keep_templates);
  // A static-site without container_image: its files, read from the repository at the
  // commit (nullopt for any other spec). invalid_config when static.dir is not there or has
  // no index.html (without a build), permanent when it weighs over static_max_bytes.
  Expected<std::optional<SiteArchive>> read_site(const DeploySpec& spec) const;
  // routing gateway: waits (route_timeout) for the Gateway's verdict on HTTPRoute web and
  // records it on the Deployment (k_annotation_route_problem, its own field manager) when it
  // changed. The problem, "" when the route is attached; cancelled stops the wait.
  Expected<std::string> check_route(const std::string& ns, const nlohmann::json& deployment, Progress& progress);
  std::string pod_problems(const std::string& ns);
  // The `kubectl exec` command line for `argv` in `env` (stdin attached; a tty on request).
  Expected<util::Command> kubectl_exec(const core::Environment& env, const std::vector<std::string>& argv, bool tty);

  void watch_loop();
  void watch_wait(int64_t ms);
  // Marks a namespace this driver deletes (its watched Deployment is not to be believed)
  // or, once an apply to it succeeded, no longer.
  void mark_deleting(const std::string& ns, bool yes);
  std::optional<Observation> observe_from_watch(const core::Environment& env) const;

  // Argo CD mode (kubernetes_driver_argocd.cpp): apply, observe and destroy go through an
  // Application instead of applying and watching the workload.
  bool argocd_mode() const { return m_opts.mode == KubernetesOptions::Mode::argocd; }
  ArgoCdSettings argo_settings() const;
  Expected<ApplyResult> apply_argocd(const DeploySpec& spec, Progress& progress);
  Expected<Observation> observe_argocd(const core::Environment& env);
  Expected<void> destroy_argocd(const core::Environment& env, Progress& progress);
  // Deletes this server's Applications whose environment is not in `keep`; appends their names.
  Expected<void> sweep_argocd_orphans(const std::set<std::string>& keep, std::vector<std::string>& deleted);

  // The "database" component (kubernetes_driver_database.cpp).
  struct DatabaseRun {
    bool present = false; // the template has a database
    bool ready = false;   // waited for it during this apply
    std::string seed_job; // "" without a seed
  };
  // The objects of `spec` for apply: with a database, its kind (option `database`, the
  // CNPG discovery) and its password (kept from Secret db-credentials when the namespace
  // has one, else generated) filled in, and the seed's SQL checked.
  Expected<std::vector<nlohmann::json>> render_for_apply(const DeploySpec& spec,
                                                         const std::map<std::string, std::string>& secret_values,
                                                         const SiteArchive* site, bool ns_exists, DatabaseRun& db);
  // Called before applying `obj`: waits for the database before its seed Job and the
  // workload; runs the seed Job (once per seed content). True when `obj` was handled here.
  Expected<bool> database_step(const nlohmann::json& obj, const DeploySpec& spec, DatabaseRun& db, Progress& progress);
  Expected<void> wait_for_database(const DeploySpec& spec, Progress& progress);
  Expected<void> run_seed(const nlohmann::json& job, const DeploySpec& spec, Progress& progress);

  DriverContext m_ctx;
  KubernetesOptions m_opts;
  RenderSettings m_settings;
  std::unique_ptr<KubeClient> m_client;
  Error m_connect_error;
  bool m_configured = false;

  std::thread m_watcher;
  std::atomic<bool> m_stop_watch{false};
  mutable std::mutex m_watch_mu;
  std::condition_variable m_watch_cv;
  std::map<std::string, nlohmann::json> m_watched; // namespace -> its Deployment, as the watch last saw it
  bool m_watch_synced = false;
  std::set<std::string> m_deleting; // namespaces deleted by this driver since their last apply
};

} // namespace idp::drivers::kubernetes
