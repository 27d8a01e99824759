#include "cli/commands/commands.hpp"
#include "cli/run.hpp"

namespace idp::cli {

std::vector<CommandSpec> client_commands() {
  using namespace commands;
  return {create_command(), redeploy_command(),  list_command(),       status_command(),    logs_command(),
          exec_command(),   extend_command(),    destroy_command(),    cost_command(),      unlock_command(),
          events_command(), templates_command(), drivers_command(),    dashboard_command(), token_command(),
          login_command(),  logout_command(),    secret_command(),     share_command(),     approve_command(),
          freeze_command(), unfreeze_command(),  sleep_command(),      wake_command(),      forks_command(),
          render_command(), config_command(),    completion_command(), version_command(),   complete_helper_command()};
}

} // namespace idp::cli
