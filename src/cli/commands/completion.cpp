// idp completion bash|zsh|fish: a shell completion script generated from the command table
// (so it never lists a command that does not exist), and the hidden `idp __complete
// environments` it calls for environment names.
#include <cstdio>
#include <iostream>
#include <set>

#include "cli/api_client.hpp"
#include "cli/commands/commands.hpp"
#include "util/strings.hpp"

namespace idp::cli::commands {

namespace {

struct Node {
  std::string name;
  std::vector<std::string> options;     // --flags
  std::vector<std::string> subcommands; // visible ones
  bool takes_environment = false;       // first argument is an environment name
};

bool visible(const CLI::App* a) { return !a->get_group().empty(); }

Node describe(const CLI::App& app) {
  Node n;
  n.name = app.get_name();
  for (const auto* opt : app.get_options()) {
    for (const auto& l : opt->get_lnames()) {
      n.options.push_back("--" + l);
    }
    if (opt->get_positional() && opt->get_name() == "name" &&
        opt->get_description().find("environment") != std::string::npos) {
      n.takes_environment = true;
    }
  }
  for (const auto* s : app.get_subcommands([](const CLI::App* a) { return visible(a); })) {
    n.subcommands.push_back(s->get_name());
  }
  return n;
}

std::vector<Node> command_nodes(const CLI::App& root) {
  std::vector<Node> out;
  for (const auto* s : root.get_subcommands([](const CLI::App* a) { return visible(a); })) {
    out.push_back(describe(*s));
  }
  return out;
}

std::string words(const std::vector<std::string>& v) { return util::join(v, " "); }

std::string bash_script(const CLI::App& root) {
  auto nodes = command_nodes(root);
  std::vector<std::string> names;
  std::string cases;
  for (const auto& n : nodes) {
    names.push_back(n.name);
    cases += "    " + n.name + ")\n";
    if (!n.subcommands.empty()) {
      cases += "      if [[ -z \"$sub\" && \"$cur\" != -* ]]; then\n"
               "        COMPREPLY=($(compgen -W \"" +
               words(n.subcommands) + "\" -- \"$cur\")); return\n      fi\n";
    }
    if (n.takes_environment) {
      cases += "      if [[ -z \"$sub\" && \"$cur\" != -* ]]; then\n"
               "        COMPREPLY=($(compgen -W \"$(idp __complete environments 2>/dev/null)\" -- \"$cur\")); return\n"
               "      fi\n";
    }
    cases += "      opts=\"" + words(n.options) + "\";;\n";
  }
  return "# bash completion for idp. Load it with: source <(idp completion bash)\n"
         "_idp() {\n"
         "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" cmd=\"\" sub=\"\" opts=\"\" i\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    case \"${COMP_WORDS[i]}\" in\n"
         "      --server) ((i++));;\n"
         "      -*) ;;\n"
         "      *) if [[ -z \"$cmd\" ]]; then cmd=\"${COMP_WORDS[i]}\"; elif [[ -z \"$sub\" ]]; then "
         "sub=\"${COMP_WORDS[i]}\"; fi;;\n"
         "    esac\n"
         "  done\n"
         "  if [[ -z \"$cmd\" ]]; then\n"
         "    COMPREPLY=($(compgen -W \"" +
         words(names) +
         " --server --help --version\" -- \"$cur\")); return\n"
         "  fi\n"
         "  case \"$cmd\" in\n" +
         cases +
         "  esac\n"
         "  COMPREPLY=($(compgen -W \"$opts --help\" -- \"$cur\"))\n"
         "}\n"
         "complete -F _idp idp\n";
}

std::string zsh_script(const CLI::App& root) {
  // zsh runs bash completion functions through bashcompinit: one script to keep right.
  return "#compdef idp\n# zsh completion for idp. Load it with: source <(idp completion zsh)\n"
         "autoload -U +X bashcompinit && bashcompinit\n" +
         bash_script(root);
}

std::string fish_script(const CLI::App& root) {
  auto nodes = command_nodes(root);
  std::vector<std::string> names;
  for (const auto& n : nodes) {
    names.push_back(n.name);
  }
  std::string out = "# fish completion for idp. Load it with: idp completion fish | source\n"
                    "complete -c idp -f\n"
                    "complete -c idp -n __fish_use_subcommand -a \"" +
                    words(names) + "\"\n";
  std::vector<std::string> with_env;
  for (const auto& n : nodes) {
    if (n.takes_environment) {
      with_env.push_back(n.name);
    }
    if (!n.subcommands.empty()) {
      out += "complete -c idp -n \"__fish_seen_subcommand_from " + n.name + "\" -a \"" + words(n.subcommands) + "\"\n";
    }
    for (const auto& o : n.options) {
      out += "complete -c idp -n \"__fish_seen_subcommand_from " + n.name + "\" -l " + o.substr(2) + "\n";
    }
  }
  out += "complete -c idp -n \"__fish_seen_subcommand_from " + words(with_env) +
         "\" -a \"(idp __complete environments 2>/dev/null)\"\n";
  return out;
}

} // namespace

CommandSpec completion_command() {
  auto shell = std::make_shared<std::string>();
  CommandSpec spec;
  spec.name = "completion";
  spec.summary = "print a shell completion script: source <(idp completion bash)";
  spec.setup = [shell](CLI::App& sub, const GlobalOptions&) -> Runner {
    sub.add_option("shell", *shell, "bash, zsh or fish")->required()->check(CLI::IsMember({"bash", "zsh", "fish"}));
    CLI::App* root = sub.get_parent();
    return [shell, root]() -> Expected<int> {
      if (*shell == "bash") {
        std::cout << bash_script(*root);
      } else if (*shell == "zsh") {
        std::cout << zsh_script(*root);
      } else {
        std::cout << fish_script(*root);
      }
      return k_exit_ok;
    };
  };
  return spec;
}

CommandSpec complete_helper_command() {
  auto what = std::make_shared<std::string>();
  CommandSpec spec;
  spec.name = "__complete";
  spec.summary = "internal: words for shell completion";
  spec.hidden = true;
  spec.setup = [what](CLI::App& sub, const GlobalOptions& g) -> Runner {
    sub.add_option("what", *what, "environments")->required()->check(CLI::IsMember({"environments"}));
    return [&g]() -> Expected<int> {
      // Completion must never print an error into the user's command line: nothing
      // is printed when the server cannot be reached.
      ApiClient client(discover_server(g.server));
      auto resp = client.get("/api/v1/environments");
      if (!resp) {
        return k_exit_error;
      }
      for (const auto& e : resp->value("environments", nlohmann::json::array())) {
        if (e.is_object() && e.value("phase", "") != "destroyed") {
          std::printf("%s\n", e.value("name", "").c_str());
        }
      }
      return k_exit_ok;
    };
  };
  return spec;
}

} // namespace idp::cli::commands
