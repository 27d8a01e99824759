#include "cli/run.hpp"

#include <cstdio>
#include <iostream>

#include "util/fatal.hpp"
#include "util/strings.hpp"

namespace idp::cli {

Error usage_error(std::string message) { return Error(ErrorCode::invalid_argument, "usage: " + std::move(message)); }

bool is_usage_error(const Error& e) { return util::starts_with(e.message, "usage: "); }

static int print_error(const std::string& msg) {
  std::fprintf(stderr, "idp: error: %s\n", msg.c_str());
  return k_exit_error;
}

int run(int argc, char** argv, const std::vector<CommandSpec>& extra) {
  std::vector<CommandSpec> specs = client_commands();
  specs.insert(specs.end(), extra.begin(), extra.end());
  if (argc > 1) {
    for (const auto& spec : specs) {
      if (spec.raw && spec.name == argv[1]) {
        return spec.raw(argc, argv);
      }
    }
  }

  CLI::App app{"mini-idp: ephemeral preview environments for every branch", "idp"};
  app.require_subcommand(0, 1);
  app.fallthrough();
  GlobalOptions global;
  if (const char* s = std::getenv("IDP_SERVER")) {
    global.server = s;
  }
  app.add_option("--server", global.server, "idp server URL (default: IDP_SERVER, then the local daemon)")
      ->each([&global](const std::string&) { global.server_flag = true; });

  std::vector<std::string> names;
  std::vector<std::pair<CLI::App*, Runner>> runners;
  for (const auto& spec : specs) {
    if (spec.raw) {
      continue;
    }
    CLI::App* sub = app.add_subcommand(spec.name, spec.summary);
    if (spec.hidden) {
      sub->group("");
    } else {
      names.push_back(spec.name);
    }
    runners.emplace_back(sub, spec.setup(*sub, global));
  }

  // A mistyped subcommand gets "did you mean" rather than CLI11's generic message.
  if (argc > 1 && argv[1][0] != '-') {
    std::string first = argv[1];
    bool known = false;
    for (const auto& s : specs) {
      known = known || s.name == first;
    }
    if (!known) {
      std::string hint = util::closest_match(first, names);
      std::fprintf(stderr, "idp: error: unknown command %s%s\nrun 'idp --help' for the list of commands\n",
                   util::quote(first).c_str(), hint.empty() ? "" : (", did you mean " + util::quote(hint) + "?").c_str());
      return k_exit_usage;
    }
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::cout << app.help();
    return k_exit_ok;
  } catch (const CLI::CallForAllHelp&) {
    std::cout << app.help("", CLI::AppFormatMode::All);
    return k_exit_ok;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      return app.exit(e);
    }
    std::string sub;
    for (auto* s : app.get_subcommands()) {
      sub = s->get_name();
    }
    // CLI11's messages start with a capital; ours are lowercase.
    std::string msg = e.what();
    if (!msg.empty() && msg[0] >= 'A' && msg[0] <= 'Z' && !(msg.size() > 1 && msg[1] >= 'A' && msg[1] <= 'Z')) {
      msg[0] = static_cast<char>(msg[0] - 'A' + 'a');
    }
    std::fprintf(stderr, "idp: error: %s\nrun 'idp %s--help' for usage\n", msg.c_str(), sub.empty() ? "" : (sub + " ").c_str());
    return k_exit_usage;
  }

  for (auto& [sub, runner] : runners) {
    if (sub->parsed()) {
      try {
        auto rc = runner();
        if (!rc) {
          if (is_usage_error(rc.error())) {
            std::fprintf(stderr, "idp: error: %s\n", rc.error().full_message().substr(7).c_str());
            return k_exit_usage;
          }
          return print_error(rc.error().full_message());
        }
        return *rc;
      } catch (const Fatal& f) {
        return print_error(f.what());
      }
    }
  }
  std::cout << app.help();
  return argc > 1 ? k_exit_usage : k_exit_ok;
}

} // namespace idp::cli
