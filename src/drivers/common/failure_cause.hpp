#pragma once
// Why a command failed, from the end of its output: the lines a user needs in `idp create`,
// `status` and `events`, without the help texts, stack frames and "see the log" pointers
// around them. Pure functions (no I/O); tested on real npm and node outputs in
// tests/data/failure-output/.

#include <string>
#include <string_view>
#include <vector>

namespace idp::drivers::common {

// The lines of `output` (oldest first) that say why it failed, each once, in output order:
// the first error-looking line ("Error: boom", "npm error Missing script", "x.ts(3,7): error
// TS…"; npm's metadata lines like "npm error code EUSAGE" skipped), joined with the lines
// that continue its sentence in an npm error block; then the last meaningful line when it
// also looks like an error (a Python traceback's last line). With no error-looking line,
// the last meaningful lines. At most `max_lines` lines, each cut to 300 bytes. Empty for an
// output with nothing meaningful in it.
std::vector<std::string> pick_cause_lines(const std::vector<std::string>& output, size_t max_lines = 3);

// "<head>: <first cause line>", then the other cause lines on their own lines, so the first
// line alone reads as the reason (table cells show only it). `head` alone when cause is empty.
std::string with_cause(std::string_view head, const std::vector<std::string>& cause);

} // namespace idp::drivers::common
