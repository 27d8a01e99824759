#pragma once
// Exec credential plugins (client.authentication.k8s.io/v1 and v1beta1 ExecCredential):
// runs the kubeconfig's command with KUBERNETES_EXEC_INFO set, reads the credential it
// prints, and caches it until its expirationTimestamp (or until the server rejects it).

#include <cstdint>
#include <mutex>
#include <string>

#include "drivers/kubernetes/kubeconfig.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::drivers::kubernetes {

struct ExecCredential {
  std::string token;           // bearer token, or
  std::string client_cert_pem; // a TLS client certificate and key
  std::string client_key_pem;
  util::Millis expires_at = 0; // 0 = no expiry given: valid until the server says 401
};

// Thread-safe. The plugin runs outside the lock; two callers racing on an expired
// credential may both run it (harmless: the last answer is kept).
class ExecCredentialProvider {
public:
  // `conn` gives the plugin config and, with provideClusterInfo, the cluster it signs in to.
  ExecCredentialProvider(const ClusterConnection& conn, util::Clock* clock, int64_t timeout_ms = 60000);

  // The cached credential while now < expires_at, else the plugin's fresh answer.
  // invalid_config: the command is missing (with its installHint), exits non-zero (with
  // the end of its stderr), or prints no valid ExecCredential of the same apiVersion;
  // timeout when it runs past timeout_ms.
  Expected<ExecCredential> get();
  // Forgets the cached credential (after a 401), so the next get() runs the plugin.
  void invalidate();
  // How many times the plugin ran (tests, bench).
  int runs() const;

private:
  Expected<ExecCredential> run_plugin();

  ExecConfig m_exec;
  nlohmann::json m_cluster; // the spec.cluster given with provideClusterInfo
  util::Clock* m_clock;
  int64_t m_timeout_ms;
  mutable std::mutex m_mu;
  bool m_have = false;
  ExecCredential m_cached;
  int m_runs = 0;
};

} // namespace idp::drivers::kubernetes
