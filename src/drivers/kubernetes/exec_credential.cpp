#include "drivers/kubernetes/exec_credential.hpp"

#include "util/base64.hpp"
#include "util/json.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

namespace idp::drivers::kubernetes {

ExecCredentialProvider::ExecCredentialProvider(const ClusterConnection& conn, util::Clock* clock, int64_t timeout_ms)
    : m_exec(conn.exec), m_clock(clock), m_timeout_ms(timeout_ms) {
  if (m_exec.provide_cluster_info) {
    m_cluster = {{"server", conn.server}};
    if (!conn.tls_server_name.empty()) {
      m_cluster["tls-server-name"] = conn.tls_server_name;
    }
    if (!conn.proxy_url.empty()) {
      m_cluster["proxy-url"] = conn.proxy_url;
    }
    if (conn.insecure_skip_tls_verify) {
      m_cluster["insecure-skip-tls-verify"] = true;
    }
    if (!conn.ca_pem.empty()) {
      m_cluster["certificate-authority-data"] = util::base64_encode(conn.ca_pem); // []byte in JSON is base64
    }
    if (!m_exec.cluster_config.is_null()) {
      m_cluster["config"] = m_exec.cluster_config;
    }
  }
}

Expected<ExecCredential> ExecCredentialProvider::get() {
  {
    std::lock_guard lock(m_mu);
    if (m_have && (m_cached.expires_at == 0 || m_clock->now_ms() < m_cached.expires_at)) {
      return m_cached;
    }
  }
  IDP_TRY_ASSIGN(ExecCredential fresh, run_plugin());
  std::lock_guard lock(m_mu);
  m_cached = fresh;
  m_have = true;
  return fresh;
}

void ExecCredentialProvider::invalidate() {
  std::lock_guard lock(m_mu);
  m_have = false;
}

int ExecCredentialProvider::runs() const {
  std::lock_guard lock(m_mu);
  return m_runs;
}

Expected<ExecCredential> ExecCredentialProvider::run_plugin() {
  std::string what = "exec credential plugin " + util::quote(m_exec.command);
  nlohmann::json info = {
      {"apiVersion", m_exec.api_version}, {"kind", "ExecCredential"}, {"spec", {{"interactive", false}}}};
  if (m_exec.provide_cluster_info) {
    info["spec"]["cluster"] = m_cluster;
  }
  util::Command cmd;
  cmd.argv.push_back(m_exec.command);
  cmd.argv.insert(cmd.argv.end(), m_exec.args.begin(), m_exec.args.end());
  for (const auto& [k, v] : m_exec.env) {
    cmd.env[k] = v;
  }
  cmd.env["KUBERNETES_EXEC_INFO"] = util::json_dump(info);
  util::RunOptions opts;
  opts.timeout_ms = m_timeout_ms;
  opts.max_capture = 1024 * 1024;
  {
    std::lock_guard lock(m_mu);
    ++m_runs;
  }
  auto r = util::run(cmd, opts);
  if (!r) {
    std::string hint = m_exec.install_hint.empty() ? "" : " (" + util::trim(m_exec.install_hint) + ")";
    return make_error(ErrorCode::invalid_config, what + ": cannot run it: " + r.error().message + hint);
  }
  if (r->timed_out) {
    return make_error(ErrorCode::timeout, what + ": no answer within " + std::to_string(m_timeout_ms) + "ms");
  }
  if (r->exit_code != 0) {
    std::string err = util::trim(util::tail_lines(r->err, 5));
    return make_error(ErrorCode::invalid_config,
                      what + ": exited with " +
                          (r->signal ? "signal " + std::to_string(r->signal) : "code " + std::to_string(r->exit_code)) +
                          (err.empty() ? "" : ": " + err));
  }
  nlohmann::json out = nlohmann::json::parse(r->out, nullptr, false);
  if (out.is_discarded() || !out.is_object()) {
    return make_error(ErrorCode::invalid_config, what + ": printed no JSON ExecCredential");
  }
  if (out.value("kind", "") != "ExecCredential" || out.value("apiVersion", "") != m_exec.api_version) {
    return make_error(ErrorCode::invalid_config,
                      what + ": expected kind ExecCredential of apiVersion " + m_exec.api_version + ", got " +
                          util::quote(out.value("kind", "")) + " of " + util::quote(out.value("apiVersion", "")));
  }
  if (!out.contains("status") || !out["status"].is_object()) {
    return make_error(ErrorCode::invalid_config, what + ": the ExecCredential has no status");
  }
  const auto& st = out["status"];
  ExecCredential c;
  c.token = st.value("token", "");
  c.client_cert_pem = st.value("clientCertificateData", "");
  c.client_key_pem = st.value("clientKeyData", "");
  if (!c.token.empty() && !c.client_cert_pem.empty()) {
    return make_error(ErrorCode::invalid_config, what + ": status has both token and clientCertificateData");
  }
  if (c.token.empty() && (c.client_cert_pem.empty() || c.client_key_pem.empty())) {
    return make_error(ErrorCode::invalid_config,
                      what + ": status needs a token, or clientCertificateData with clientKeyData");
  }
  if (st.contains("expirationTimestamp") && !st["expirationTimestamp"].is_null()) {
    auto t = st["expirationTimestamp"].is_string() ? util::parse_iso8601(st["expirationTimestamp"].get<std::string>())
                                                   : std::nullopt;
    if (!t) {
      return make_error(ErrorCode::invalid_config, what + ": expirationTimestamp: expected an RFC 3339 time");
    }
    c.expires_at = *t;
  }
  return c;
}

} // namespace idp::drivers::kubernetes
