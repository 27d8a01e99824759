#pragma once
// The Kubernetes runtime: each environment is a namespace on a shared cluster, applied
// with server-side apply (field manager "idp") over the REST API, no kubectl needed.
// apply waits for the Deployment's rollout (observedGeneration, updated and available
// replicas); destroy deletes the namespace and waits until it is gone. Thread-safe: the
// driver keeps no per-environment state in memory; the cluster is the state.

#include <memory>
#include <string>

#include "drivers/driver.hpp"
#include "drivers/kubernetes/kube_client.hpp"
#include "drivers/kubernetes/kubernetes_options.hpp"
#include "drivers/kubernetes/manifests.hpp"

namespace idp::drivers::kubernetes {

class KubernetesDriver final : public Driver {
public:
  // `client` null with `connect_error` set: the connection could not be loaded; every
  // operation that needs the cluster fails with that error (start() does not, so a daemon
  // that never uses this runtime starts anyway). `configured`: the options named a
  // connection explicitly, so start() sweeps the cluster even with no live environment.
  KubernetesDriver(const DriverContext& ctx, KubernetesOptions opts, std::unique_ptr<KubeClient> client,
                   Error connect_error, bool configured);

  std::string_view name() const override { return "kubernetes"; }
  // Deletes namespaces labelled with this server's id whose environment is not in `live`
  // (the orphan sweep). An unreachable cluster is not an error here: it is reported by
  // the first operation on an environment.
  Expected<void> start(const std::vector<core::Environment>& live) override;
  void stop(bool keep_running) override;
  Expected<void> plan(const DeploySpec& spec) override;
  Expected<ApplyResult> apply(const DeploySpec& spec, Progress& progress) override;
  Expected<Observation> observe(const core::Environment& env) override;
  Expected<void> destroy(const core::Environment& env, Progress& progress) override;
  Expected<LogChunk> read_logs(const core::Environment& env, const LogQuery& q) override;

  // The manifests apply would send for `spec` (idp render, tests). invalid_config as plan.
  Expected<std::vector<nlohmann::json>> render(const DeploySpec& spec) const;
  // The client's request counters (bench, tests); zero without a connection.
  KubeStats stats() const;
  // Deletes namespaces of this server whose environment is not in `live`; the names deleted.
  Expected<std::vector<std::string>> sweep_orphans(const std::vector<core::Environment>& live);

private:
  Expected<KubeClient*> client();
  Expected<std::map<std::string, std::string>> resolve_secrets(const DeploySpec& spec) const;
  Expected<void> wait_for_rollout(const DeploySpec& spec, Progress& progress);
  // The routing ("ingress" or "gateway") whose route object an existing namespace may
  // still hold because the server's routing changed since its last apply; "" when none.
  std::string stale_routing(const nlohmann::json* existing_ns, const std::vector<nlohmann::json>& objects) const;
  // Deletes the route object of `old_routing` (404: already gone).
  Expected<void> remove_old_route(const std::string& ns, const std::string& old_routing, Progress& progress);
  std::string pod_problems(const std::string& ns);

  DriverContext m_ctx;
  KubernetesOptions m_opts;
  RenderSettings m_settings;
  std::unique_ptr<KubeClient> m_client;
  Error m_connect_error;
  bool m_configured = false;
};

} // namespace idp::drivers::kubernetes
