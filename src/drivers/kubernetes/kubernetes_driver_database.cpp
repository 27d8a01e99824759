// The "database" component of the Kubernetes driver: which PostgreSQL (StatefulSet or
// CloudNativePG Cluster), its password, the wait for it and the seed Job.
#include <chrono>
#include <thread>

#include "drivers/kubernetes/kubernetes_driver.hpp"
#include "util/base64.hpp"
#include "util/hash.hpp"
#include "util/strings.hpp"

namespace idp::drivers::kubernetes {

namespace {

using json = nlohmann::json;

constexpr const char* k_cnpg_discovery = "/apis/postgresql.cnpg.io/v1";

const ResourceKind& db_kind(const char* api_version, const char* kind) {
  const ResourceKind* k = find_kind(api_version, kind);
  IDP_ASSERT(k != nullptr);
  return *k;
}

bool has_component(const DeploySpec& spec, const std::string& c) {
  return std::find(spec.components.begin(), spec.components.end(), c) != spec.components.end();
}

int64_t db_num(const json& obj, const char* key) {
  return obj.is_object() && obj.contains(key) && obj[key].is_number_integer() ? obj[key].get<int64_t>() : 0;
}

// A Job's Complete or Failed condition ("" while it runs), with the reason of a failure.
std::pair<std::string, std::string> job_outcome(const json& job) {
  for (const auto& c : job.value("status", json::object()).value("conditions", json::array())) {
    if (c.value("status", "") != "True") {
      continue;
    }
    std::string type = c.value("type", "");
    if (type == "Complete") {
      return {"Complete", ""};
    }
    if (type == "Failed") {
      std::string msg = c.value("message", "");
      return {"Failed", c.value("reason", "Failed") + (msg.empty() ? "" : ": " + msg)};
    }
  }
  return {"", ""};
}

} // namespace

Expected<std::vector<json>> KubernetesDriver::render_for_apply(const DeploySpec& spec,
                                                               const std::map<std::string, std::string>& secret_values,
                                                               const SiteArchive* site, bool ns_exists,
                                                               DatabaseRun& db) {
  db.present = has_component(spec, "database");
  if (!db.present) {
    return render_environment(spec, m_settings, secret_values, site);
  }
  IDP_TRY_ASSIGN(KubeClient * c, client());
  const std::string& ns = spec.env.name;
  const std::string& seed = spec.config.database.seed;
  if (!seed.empty() && !(spec.template_values.is_object() && spec.template_values.contains(k_value_db_seed))) {
    // The engine reads the seed from the repository at the commit; without it there is
    // nothing to apply (a seed the repository does not have at that commit).
    return make_error(ErrorCode::invalid_config, "database.seed " + util::quote(seed) +
                                                     ": no such file in the repository at commit " +
                                                     util::short_commit(spec.env.commit));
  }

  // Which PostgreSQL: what the option says; for auto, CloudNativePG when the cluster serves
  // its API, unless this environment already has the StatefulSet (its data stays there).
  bool cnpg = m_opts.database == "cloudnative-pg";
  if (m_opts.database != "statefulset") {
    IDP_TRY_ASSIGN(auto r, c->request("GET", k_cnpg_discovery, RequestInfo{"get", "postgresql.cnpg.io/v1", "", ""}));
    bool served = r.status == 200;
    if (!served && r.status != 404) {
      return Unexpected(
          KubeClient::status_error(r, RequestInfo{"get", "postgresql.cnpg.io/v1", "", ""}, c->connection().server));
    }
    if (cnpg && !served) {
      return make_error(ErrorCode::invalid_config,
                        "drivers.kubernetes: database is cloudnative-pg, but the cluster does not serve "
                        "postgresql.cnpg.io/v1 (is the CloudNativePG operator installed?)");
    }
    cnpg = served;
    if (served && ns_exists && m_opts.database == "auto") {
      IDP_TRY_ASSIGN(auto sts, c->get(db_kind("apps/v1", "StatefulSet"), ns, k_db_name));
      cnpg = !sts.has_value();
    }
  }

  // The password: the driver keeps no state, and a new one at every apply would lock the
  // app out of a database initialised with the old one; so it is read back from the
  // namespace's Secret and generated only when there is none.
  std::string password;
  if (ns_exists) {
    IDP_TRY_ASSIGN(auto secret, c->get(db_kind("v1", "Secret"), ns, k_db_credentials));
    if (secret) {
      const json& data = secret->value("data", json::object());
      for (const char* key : {"POSTGRES_PASSWORD", "password"}) {
        if (data.contains(key) && data[key].is_string()) {
          auto v = util::base64_decode(data[key].get<std::string>());
          if (v && !v->empty()) {
            password = *v;
            break;
          }
        }
      }
    }
  }
  if (password.empty()) {
    password = util::random_hex(16);
  }
  DeploySpec with = spec;
  if (!with.template_values.is_object()) {
    with.template_values = json::object();
  }
  with.template_values[k_value_db_password] = password;
  RenderSettings settings = m_settings;
  settings.database.cloudnative_pg = cnpg;
  IDP_TRY_ASSIGN(auto objects, render_environment(with, settings, secret_values, site));
  for (const auto& o : objects) {
    if (o.value("kind", "") == "Job") {
      db.seed_job = o["metadata"].value("name", "");
    }
  }
  return objects;
}

Expected<bool> KubernetesDriver::database_step(const json& obj, const DeploySpec& spec, DatabaseRun& db,
                                               Progress& progress) {
  if (!db.present) {
    return false;
  }
  std::string kind = obj.value("kind", "");
  bool seed = kind == "Job" && !db.seed_job.empty() && obj["metadata"].value("name", "") == db.seed_job;
  if (!seed && kind != "Deployment") {
    return false;
  }
  if (!db.ready) {
    IDP_TRY(wait_for_database(spec, progress));
    db.ready = true;
  }
  if (seed) {
    IDP_TRY(run_seed(obj, spec, progress));
    return true;
  }
  return false;
}

Expected<void> KubernetesDriver::wait_for_database(const DeploySpec& spec, Progress& progress) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  const std::string& ns = spec.env.name;
  progress.step("waiting for the database");
  int64_t deadline = util::steady_ms() + m_opts.rollout_timeout_ms;
  std::string last = "not created yet";
  while (true) {
    if (progress.cancelled()) {
      return make_error(ErrorCode::cancelled, "waiting for the database abandoned");
    }
    // Whichever exists: the StatefulSet, or the CloudNativePG Cluster.
    IDP_TRY_ASSIGN(auto sts, c->get(db_kind("apps/v1", "StatefulSet"), ns, k_db_name));
    if (sts) {
      const json& st = sts->value("status", json::object());
      int64_t want = (*sts)["spec"].value("replicas", 1);
      if (db_num(st, "observedGeneration") >= (*sts)["metadata"].value("generation", 1) &&
          db_num(st, "readyReplicas") >= want) {
        return {};
      }
      last = std::to_string(db_num(st, "readyReplicas")) + "/" + std::to_string(want) + " database pods ready";
    } else {
      IDP_TRY_ASSIGN(auto cl, c->get(db_kind("postgresql.cnpg.io/v1", "Cluster"), ns, k_db_name));
      if (cl) {
        const json& st = cl->value("status", json::object());
        int64_t want = (*cl)["spec"].value("instances", 1);
        if (db_num(st, "readyInstances") >= want) {
          return {};
        }
        last = "CloudNativePG cluster: " + st.value("phase", std::string("no status yet"));
      }
    }
    if (util::steady_ms() >= deadline) {
      std::string problems = pod_problems(ns);
      return make_error(ErrorCode::permanent, "the database was not ready within " +
                                                  util::format_duration(m_opts.rollout_timeout_ms) + " (" + last + ")" +
                                                  (problems.empty() ? "" : ": " + problems));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(m_opts.poll_interval_ms));
  }
}

Expected<void> KubernetesDriver::run_seed(const json& job, const DeploySpec& spec, Progress& progress) {
  IDP_TRY_ASSIGN(KubeClient * c, client());
  const std::string& ns = spec.env.name;
  const std::string name = job["metadata"].value("name", "");
  const std::string what = "database.seed " + util::quote(spec.config.database.seed) + " (job " + name + ")";
  const ResourceKind& jobs = db_kind("batch/v1", "Job");
  // One Job per seed content: once it completed, this seed is in the database.
  IDP_TRY_ASSIGN(auto existing, c->get(jobs, ns, name));
  if (existing) {
    auto [outcome, reason] = job_outcome(*existing);
    if (outcome == "Complete") {
      return {};
    }
    if (outcome == "Failed") {
      // It failed at an earlier deploy (that deploy said why): this one runs it again.
      progress.step("deleting the failed " + what);
      IDP_TRY(c->remove(jobs, ns, name, "Background"));
      int64_t gone_by = util::steady_ms() + m_opts.rollout_timeout_ms;
      while (true) {
        IDP_TRY_ASSIGN(existing, c->get(jobs, ns, name));
        if (!existing) {
          break;
        }
        if (util::steady_ms() >= gone_by || progress.cancelled()) {
          return make_error(ErrorCode::transient, "the failed " + what + " is still being deleted");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(m_opts.poll_interval_ms));
      }
    }
  }
  if (!existing) {
    progress.step("applying " + what);
    IDP_TRY(c->apply(job, "idp"));
  }
  int64_t deadline = util::steady_ms() + m_opts.rollout_timeout_ms;
  while (true) {
    if (progress.cancelled()) {
      return make_error(ErrorCode::cancelled, "waiting for " + what + " abandoned");
    }
    IDP_TRY_ASSIGN(auto now, c->get(jobs, ns, name));
    if (!now) {
      return make_error(ErrorCode::permanent, what + " disappeared while it ran");
    }
    auto [outcome, reason] = job_outcome(*now);
    if (outcome == "Complete") {
      return {};
    }
    if (outcome == "Failed") {
      return make_error(ErrorCode::permanent, what + " failed: " + reason);
    }
    if (util::steady_ms() >= deadline) {
      return make_error(ErrorCode::permanent,
                        what + " did not complete within " + util::format_duration(m_opts.rollout_timeout_ms));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(m_opts.poll_interval_ms));
  }
}

} // namespace idp::drivers::kubernetes
