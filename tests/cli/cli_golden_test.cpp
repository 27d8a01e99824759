// Golden CLI cases: a command, its exact output and exit code (help text, errors, --json).
// Each tests/cli/golden/<name>.txt is:
//   args: <arguments, one per line, each prefixed by "args: ">
//   exit: <code>
//   stream: stdout|stderr
//   ----
//   <expected output, verbatim>
// IDP_UPDATE_GOLDEN=1 rewrites the files from the actual output (review the diff!).
#include <gtest/gtest.h>

#include <dirent.h>
#include <fstream>
#include <set>
#include <sstream>

#include "support/test_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "util/subprocess.hpp"

using namespace idp;

namespace {

struct GoldenCase {
  std::string file;
  std::vector<std::string> args;
  int exit_code = 0;
  std::string stream = "stdout";
  std::string expected;
};

std::string golden_dir() { return idp::testing::source_dir() + "/tests/cli/golden"; }

std::vector<std::string> case_files() {
  std::vector<std::string> out;
  DIR* d = ::opendir(golden_dir().c_str());
  while (d && true) {
    auto* e = ::readdir(d);
    if (!e) {
      break;
    }
    std::string n = e->d_name;
    if (util::ends_with(n, ".txt")) {
      out.push_back(n);
    }
  }
  if (d) {
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

GoldenCase load(const std::string& file) {
  GoldenCase c;
  c.file = file;
  std::string text = *util::read_file(golden_dir() + "/" + file);
  size_t sep = text.find("----\n");
  for (const auto& line : util::split(text.substr(0, sep), '\n')) {
    if (util::starts_with(line, "args: ")) {
      std::string a = line.substr(6);
      // {SRC} stands for the source tree, so cases can name files in it.
      size_t p = a.find("{SRC}");
      if (p != std::string::npos) {
        a.replace(p, 5, idp::testing::source_dir());
      }
      c.args.push_back(a);
    } else if (util::starts_with(line, "exit: ")) {
      c.exit_code = std::stoi(line.substr(6));
    } else if (util::starts_with(line, "stream: ")) {
      c.stream = line.substr(8);
    }
  }
  c.expected = sep == std::string::npos ? "" : text.substr(sep + 5);
  return c;
}

// `idp ARGS --help`, run like the golden cases.
std::string help_of(const std::vector<std::string>& path) {
  util::Command cmd;
  cmd.argv = {idp::testing::idp_binary()};
  cmd.argv.insert(cmd.argv.end(), path.begin(), path.end());
  cmd.argv.push_back("--help");
  cmd.env = {{"NO_COLOR", "1"}, {"IDP_SERVER", "http://127.0.0.1:9"}, {"COLUMNS", "100"}};
  auto r = util::run(cmd);
  return r ? r->out : "";
}

// Every command path the binary's help lists ({} is `idp` itself), found by walking the
// "Subcommands:" section of each --help; hidden commands (__complete, __shim) are not listed.
void collect_command_paths(const std::vector<std::string>& path, std::vector<std::vector<std::string>>& out) {
  out.push_back(path);
  bool in_subcommands = false;
  for (const auto& line : util::split(help_of(path), '\n')) {
    if (line == "Subcommands:") {
      in_subcommands = true;
    } else if (in_subcommands && util::starts_with(line, "  ") && line.size() > 2 && line[2] != ' ') {
      auto child = path;
      child.push_back(line.substr(2, line.find(' ', 2) - 2));
      collect_command_paths(child, out);
    } else if (in_subcommands && !line.empty() && line[0] != ' ') {
      in_subcommands = false;
    }
  }
}

} // namespace

// A new subcommand (or sub-subcommand) needs a golden of its --help: create
// tests/cli/golden/<path>-help.txt with its args and fill it with IDP_UPDATE_GOLDEN=1.
TEST(CliGoldenCoverage, EveryCommandsHelpHasAGolden) {
  std::set<std::vector<std::string>> covered;
  for (const auto& f : case_files()) {
    GoldenCase c = load(f);
    if (!c.args.empty() && c.args.back() == "--help") {
      covered.insert(std::vector<std::string>(c.args.begin(), c.args.end() - 1));
    }
  }
  std::vector<std::vector<std::string>> paths;
  collect_command_paths({}, paths);
  ASSERT_GT(paths.size(), 20U) << "the walk of idp --help found too few commands:\n" << help_of({});
  for (const auto& p : paths) {
    std::string name = p.empty() ? "help" : util::join(p, "-") + "-help";
    EXPECT_TRUE(covered.count(p)) << "no golden case for `idp " << util::join(p, " ") << (p.empty() ? "" : " ")
                                  << "--help`: add tests/cli/golden/" << name
                                  << ".txt (args: " << util::join(p, ", args: ") << (p.empty() ? "" : ", args: ")
                                  << "--help) and run with IDP_UPDATE_GOLDEN=1";
  }
}

class CliGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(CliGolden, MatchesExactly) {
  GoldenCase c = load(GetParam());
  util::Command cmd;
  cmd.argv = {idp::testing::idp_binary()};
  cmd.argv.insert(cmd.argv.end(), c.args.begin(), c.args.end());
  cmd.env = {{"NO_COLOR", "1"}, {"IDP_SERVER", "http://127.0.0.1:9"}, {"COLUMNS", "100"}};
  auto r = util::run(cmd);
  ASSERT_TRUE(r);
  std::string actual = c.stream == "stderr" ? r->err : r->out;
  // Paths of the source tree vary between machines.
  for (size_t p; (p = actual.find(idp::testing::source_dir())) != std::string::npos;) {
    actual.replace(p, idp::testing::source_dir().size(), "{SRC}");
  }
  if (std::getenv("IDP_UPDATE_GOLDEN")) {
    std::string text = *util::read_file(golden_dir() + "/" + c.file);
    std::string head = text.substr(0, text.find("----\n") + 5);
    std::string exit_line = "exit: " + std::to_string(c.exit_code);
    head.replace(head.find(exit_line), exit_line.size(), "exit: " + std::to_string(r->exit_code));
    (void)util::write_file_atomic(golden_dir() + "/" + c.file, head + actual);
    return;
  }
  EXPECT_EQ(r->exit_code, c.exit_code) << c.file << "\nstdout:\n" << r->out << "\nstderr:\n" << r->err;
  EXPECT_EQ(actual, c.expected) << c.file;
}

INSTANTIATE_TEST_SUITE_P(Cases, CliGolden, ::testing::ValuesIn(case_files()),
                         [](const ::testing::TestParamInfo<std::string>& i) {
                           std::string n = i.param.substr(0, i.param.size() - 4);
                           for (auto& ch : n) {
                             if (!isalnum(static_cast<unsigned char>(ch))) {
                               ch = '_';
                             }
                           }
                           return n;
                         });
