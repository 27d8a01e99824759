#pragma once
// One function per subcommand, each in its own file.

#include "cli/command.hpp"

namespace idp::cli::commands {

CommandSpec create_command();
CommandSpec render_command();
CommandSpec list_command();
CommandSpec status_command();
CommandSpec extend_command();
CommandSpec redeploy_command();
CommandSpec destroy_command();
CommandSpec logs_command();
CommandSpec events_command();
CommandSpec config_command();
CommandSpec templates_command();
CommandSpec version_command();
CommandSpec unlock_command();
CommandSpec approve_command();
CommandSpec freeze_command();
CommandSpec unfreeze_command();
CommandSpec sleep_command();
CommandSpec wake_command();
CommandSpec forks_command();
CommandSpec exec_command();
CommandSpec cost_command();
CommandSpec drivers_command();
CommandSpec dashboard_command();
CommandSpec completion_command();
CommandSpec complete_helper_command();
CommandSpec token_command();
CommandSpec login_command();
CommandSpec logout_command();
CommandSpec secret_command();
CommandSpec share_command();

} // namespace idp::cli::commands
