#include "drivers/terraform/lock.hpp"

#include <fcntl.h>
#include <unistd.h>

#include "core/names.hpp"
#include "drivers/terraform/terraform_driver.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace idp::drivers::terraform {

pid_t local_state_lock_holder(const std::string& state) {
  // The local backend locks with fcntl: the lock lives exactly as long as its process.
  int fd = ::open(state.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return 0;
  }
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  bool held = ::fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK;
  ::close(fd);
  return held ? fl.l_pid : 0;
}

Expected<std::string> TerraformDriver::unlock(const core::Environment& env) {
  IDP_TRY(core::validate_env_name(env.name));
  std::string work = m_workspace.dir(env.name);
  auto pinned = m_workspace.pinned_settings(env.name);
  EnvSettings s;
  if (pinned) {
    s = *pinned;
  } else if (m_opts.backend == "local") {
    return "environment " + util::quote(env.name) + " is not locked (it has no terraform state)";
  }

  std::string id;
  std::string holder;
  if (s.backend == "local") {
    std::string state = util::path_join(work, "state/terraform.tfstate");
    std::string info_path = util::path_join(work, "state/.terraform.tfstate.lock.info");
    auto info_text = util::read_file(info_path);
    if (!info_text) {
      return "environment " + util::quote(env.name) + " is not locked";
    }
    auto info = nlohmann::json::parse(*info_text, nullptr, false);
    id = info.is_object() ? info.value("ID", "") : "";
    pid_t pid = local_state_lock_holder(state);
    if (pid != 0) {
      return make_error(ErrorCode::conflict,
                        "environment " + util::quote(env.name) + ": state lock " + util::quote(id) +
                            " is held by running process " + std::to_string(pid) +
                            "; a local-state lock ends with its process (stop it, or cancel the operation)");
    }
    IDP_TRY(util::remove_all(info_path));
    return "environment " + util::quote(env.name) + ": removed the stale lock record " + util::quote(id) +
           " (no process held the lock)";
  }

  // s3: the lock item in DynamoDB, else the lock ID of the last lock error in the log.
  if (!s.dynamodb_table.empty()) {
    if (auto client = m_aws.client(s.state_region)) {
      auto item = client->dynamodb_get_lock_item(s.dynamodb_table, s.lock_id(), s.state_region);
      if (item && !*item) {
        return "environment " + util::quote(env.name) + " is not locked";
      }
      if (item && (**item).contains("Info")) {
        auto info = nlohmann::json::parse((**item)["Info"].value("S", ""), nullptr, false);
        if (info.is_object()) {
          id = info.value("ID", "");
          holder =
              info.value("Operation", "") + " by " + info.value("Who", "?") + " since " + info.value("Created", "?");
        }
      }
    }
  }
  if (id.empty()) {
    common::LogReader reader(util::path_join(work, "logs"), "app.log");
    if (auto chunk = reader.read({})) {
      std::string text;
      for (const auto& l : chunk->lines) {
        text += l.text + "\n";
      }
      id = parse_lock_id(text);
    }
  }
  if (id.empty()) {
    return "environment " + util::quote(env.name) + ": no state lock found";
  }
  // force-unlock needs an initialised working directory; an apply waiting for this very
  // lock has one already, so init only when it is missing (first apply failed in init).
  std::string root = m_workspace.prepared_root(env.name);
  auto log = env_log(env.name);
  if (root.empty() || !util::path_exists(util::path_join(work, "data/terraform.tfstate"))) {
    // Initialising rewrites the working directory: never beside an operation of ours
    // that may be initialising or applying in it right now.
    auto g = m_locks.try_lock(env.name);
    if (!g) {
      return make_error(ErrorCode::conflict,
                        "environment " + util::quote(env.name) +
                            ": an operation of this server is preparing its working directory; the lock it "
                            "holds ends with it (wait for it, or cancel it, then unlock again if needed)");
    }
    auto cfg = core::app_config_from_json(nlohmann::json::parse(env.config_json, nullptr, false));
    core::Environment e = env;
    e.template_name = s.template_name.empty() ? env.template_name : s.template_name;
    IDP_TRY_ASSIGN(Workspace::Prepared p,
                   m_workspace.prepare(e, cfg ? *cfg : core::AppConfig{}, nlohmann::json::object()));
    root = p.root;
    IDP_TRY_ASSIGN(RunOutcome init, m_runner.run(work, root, m_workspace.init_args(s), log.get(), nullptr));
    if (init.exit_code != 0) {
      return Unexpected(m_runner.command_error("init", init).with_context("environment " + util::quote(env.name)));
    }
  }
  (void)log->append("system", "breaking state lock " + id);
  IDP_TRY_ASSIGN(RunOutcome r,
                 m_runner.run(work, root, {"force-unlock", "-force", "-no-color", id}, log.get(), nullptr));
  if (r.exit_code != 0) {
    if (r.output.find("failed to retrieve lock info") != std::string::npos ||
        r.output.find("No lock") != std::string::npos) {
      return "environment " + util::quote(env.name) + " is not locked (lock " + util::quote(id) + " is gone)";
    }
    return Unexpected(m_runner.command_error("force-unlock", r).with_context("environment " + util::quote(env.name)));
  }
  return "environment " + util::quote(env.name) + ": broke state lock " + util::quote(id) +
         (holder.empty() ? "" : " (" + holder + ")");
}

} // namespace idp::drivers::terraform
