#include "cli/run.hpp"

#include <cstdio>
#include <iostream>
#include <optional>

#include "core/version.hpp"
#include "util/fatal.hpp"
#include "util/strings.hpp"

namespace idp::cli {

Error usage_error(std::string message) { return Error(ErrorCode::invalid_argument, "usage: " + std::move(message)); }

bool is_usage_error(const Error& e) { return util::starts_with(e.message, "usage: "); }

// "unknown command …, did you mean …?" when the words of argv that name commands (before
// the first option or argument of a leaf command) leave the command tree; nullopt when not.
static std::optional<std::string> unknown_subcommand(CLI::App& app, int argc, char** argv) {
  CLI::App* at = &app;
  std::string path = "idp";
  for (int i = 1; i < argc; ++i) {
    std::string word = argv[i];
    if (word.empty() || word[0] == '-') {
      // A global option with a value (--server URL) is skipped with its value.
      if (at == &app && word == "--server" && i + 1 < argc) {
        ++i;
      }
      continue;
    }
    auto subs = at->get_subcommands([](CLI::App*) { return true; });
    if (subs.empty()) {
      return std::nullopt; // a leaf: the rest are its arguments
    }
    CLI::App* next = nullptr;
    std::vector<std::string> names;
    for (auto* s : subs) {
      if (s->get_name() == word) {
        next = s;
      }
      if (!s->get_group().empty()) {
        names.push_back(s->get_name());
      }
    }
    if (!next) {
      // A command with subcommands may also take positional arguments of its own.
      if (at != &app && !at->get_options([](const CLI::Option* o) { return o->get_positional(); }).empty()) {
        return std::nullopt;
      }
      std::string hint = util::closest_match(word, names);
      return "unknown command " + util::quote(at == &app ? word : path.substr(4) + " " + word) +
             (hint.empty() ? ""
                           : ", did you mean " + util::quote(at == &app ? hint : path.substr(4) + " " + hint) + "?") +
             "\nrun '" + path + " --help' for the list of commands";
    }
    at = next;
    path += " " + word;
  }
  return std::nullopt;
}

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
  app.add_option("--server", global.server,
                 "idp server URL (default: IDP_SERVER, then the last login, then the local daemon)")
      ->each([&global](const std::string&) { global.server_flag = true; });

  std::vector<std::pair<CLI::App*, Runner>> runners;
  for (const auto& spec : specs) {
    if (spec.raw) {
      continue;
    }
    CLI::App* sub = app.add_subcommand(spec.name, spec.summary);
    if (spec.hidden) {
      sub->group("");
    }
    runners.emplace_back(sub, spec.setup(*sub, global));
  }

  bool version = false;
  app.add_flag("--version", version, "print the version and exit");

  // A mistyped subcommand gets "did you mean" rather than CLI11's generic message, at
  // every level (`idp templates shwo` as much as `idp creat`).
  if (auto typo = unknown_subcommand(app, argc, argv)) {
    std::fprintf(stderr, "idp: error: %s\n", typo->c_str());
    return k_exit_usage;
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
    std::fprintf(stderr, "idp: error: %s\nrun 'idp %s--help' for usage\n", msg.c_str(),
                 sub.empty() ? "" : (sub + " ").c_str());
    return k_exit_usage;
  }

  if (version) {
    std::printf("idp %s\n", idp::k_version);
    return k_exit_ok;
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
