#include <gtest/gtest.h>

#include "core/command_line.hpp"

using idp::core::split_command_line;

TEST(CommandLineTest, SplitsWordsWithoutAShell) {
  EXPECT_EQ(*split_command_line("node server.js"), (std::vector<std::string>{"node", "server.js"}));
  EXPECT_EQ(*split_command_line("  npm   ci  "), (std::vector<std::string>{"npm", "ci"}));
  EXPECT_EQ(*split_command_line("sh -c 'echo $HOME; ls'"), (std::vector<std::string>{"sh", "-c", "echo $HOME; ls"}));
  EXPECT_EQ(*split_command_line("echo \"a \\\"b\\\"\" c\\ d"), (std::vector<std::string>{"echo", "a \"b\"", "c d"}));
  // Metacharacters are plain characters: no expansion, no pipes, no substitution.
  EXPECT_EQ(*split_command_line("echo $(touch pwned) `id` ; rm -rf / | cat"),
            (std::vector<std::string>{"echo", "$(touch", "pwned)", "`id`", ";", "rm", "-rf", "/", "|", "cat"}));
}

TEST(CommandLineTest, RejectsUnterminatedQuotesAndEmpty) {
  EXPECT_FALSE(split_command_line("node 'server.js"));
  EXPECT_FALSE(split_command_line("node \"x"));
  EXPECT_FALSE(split_command_line(""));
  EXPECT_FALSE(split_command_line("   "));
}
