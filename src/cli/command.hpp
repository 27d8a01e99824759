#pragma once
// The subcommand table: each subcommand is one file under commands/ that returns a
// CommandSpec. Parsing fills a typed Options struct; nothing runs in parser callbacks.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "util/expected.hpp"

namespace idp::cli {

// Options every subcommand understands.
struct GlobalOptions {
  std::string server;       // --server / IDP_SERVER; "" = discover
  bool server_flag = false; // --server was given (commands that work offline ask a server only then)
};

// What a subcommand does once parsing succeeded: validate, then run; returns the exit code.
using Runner = std::function<Expected<int>()>;

struct CommandSpec {
  std::string name;
  std::string summary;
  bool hidden = false;
  // Declares the subcommand's options on `sub` (binding them to its Options struct) and
  // returns its runner. Called once, before parsing.
  std::function<Runner(CLI::App& sub, const GlobalOptions& global)> setup;
  // Instead of setup: a command that parses its own argv (internal helpers such as the
  // process shim). Called with the full argv when argv[1] == name.
  std::function<int(int argc, char** argv)> raw;
};

// Exit codes: 0 ok, 1 error, 2 usage.
inline constexpr int k_exit_ok = 0;
inline constexpr int k_exit_error = 1;
inline constexpr int k_exit_usage = 2;

// An error that should exit with the usage code (bad flag value found after parsing).
Error usage_error(std::string message);
bool is_usage_error(const Error& e);

} // namespace idp::cli
