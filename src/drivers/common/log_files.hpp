#pragma once
// Environment logs on disk, shared by drivers (local runtime, Terraform).
//
// One record per line: "<ISO-8601 UTC with ms>\t<stream>\t<text>\n", e.g.
// "2026-02-16T16:22:14.123Z\tstdout\tlistening on 8080". The file "<dir>/<base>" is
// rotated by size into <base>.1 (newest) … <base>.<keep> (oldest); rotated files older
// than the retention are deleted. Several writers (threads or processes: the daemon's
// build output and a shim's app output) may append to one log: every append and every
// rotation happens under an exclusive flock on "<dir>/.<base>.lock", so lines never
// interleave and rotation never loses a line.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "drivers/driver.hpp"
#include "util/expected.hpp"
#include "util/time.hpp"

namespace idp::drivers::common {

struct LogFileOptions {
  int64_t max_bytes = 10 * 1024 * 1024; // rotate before an append would grow the file past this
  int keep = 5;                         // rotated files kept: <base>.1 … <base>.<keep>; 0 = none
  int retention_days = 0;               // rotated files older than this are deleted; 0 = no age limit
};

// "2026-02-16T16:22:14.123Z".
std::string format_log_timestamp(util::Millis t);
// Inverse of format_log_timestamp (also accepts util::parse_iso8601 forms); nullopt if malformed.
std::optional<util::Millis> parse_log_timestamp(std::string_view s);
// The on-disk form of one record, newline included. `stream` must not contain tabs or
// newlines; `text` must not contain newlines (tabs are fine: only the first two split).
std::string format_log_line(util::Millis at, std::string_view stream, std::string_view text);
// Parses one line (without its newline). A line that is not in the record format becomes
// text with at = 0 and stream "".
LogLine parse_log_line(std::string_view line);

// Appends records to one log, rotating and pruning as configured. Thread-safe; safe to
// use from several processes on the same directory.
class LogWriter {
public:
  // `clock` (not owned; nullptr = system clock) stamps records and ages rotated files.
  LogWriter(std::string dir, std::string base = "app.log", LogFileOptions opts = {},
            const util::Clock* clock = nullptr);
  ~LogWriter();
  LogWriter(const LogWriter&) = delete;
  LogWriter& operator=(const LogWriter&) = delete;

  // Appends one record per line of `text` (a final newline does not make an empty record;
  // a trailing '\r' is dropped), stamped now. io_error when the file cannot be written.
  Expected<void> append(std::string_view stream, std::string_view text);
  // The same with an explicit timestamp.
  Expected<void> append_at(util::Millis at, std::string_view stream, std::string_view text);
  // Deletes rotated files past the retention. Also runs at each rotation and at most
  // hourly from append.
  void apply_retention();

  const std::string& path() const { return m_path; }

private:
  Expected<void> write_locked(std::string_view data);
  Expected<void> reopen_locked();
  void rotate_locked();
  void retention_locked();

  std::string m_dir;
  std::string m_base;
  std::string m_path;
  LogFileOptions m_opts;
  const util::Clock* m_clock;
  std::mutex m_mutex;
  int m_fd = -1;
  int m_lock_fd = -1;
  uint64_t m_inode = 0;
  int64_t m_last_retention_ms = 0;
};

// Reads a log written by LogWriter across its rotated files, oldest to newest.
//
// Cursors are opaque strings naming a position just after a complete line: the inode and
// offset of the file it lies in plus a fingerprint of that file's first line (so a reused
// inode is not mistaken for the old file). Rotation renames files but keeps inodes, so a
// cursor stays valid across rotations: reading from it never repeats a line and skips
// only lines whose file was deleted by rotation or retention in the meantime. A partial
// last line (a writer mid-append) is left for the next read.
class LogReader {
public:
  explicit LogReader(std::string dir, std::string base = "app.log");

  // Lines after q.cursor (all when empty) with at >= q.since, then only the last q.tail
  // (when non-zero). The returned cursor resumes after the newest complete line. A missing
  // log is an empty chunk. invalid_argument for a malformed cursor. Thread-safe.
  Expected<LogChunk> read(const LogQuery& q) const;

private:
  std::string m_dir;
  std::string m_base;
};

} // namespace idp::drivers::common
