#pragma once
// The last request of each host, from Caddy's access log (CaddyRouter::access_log_path):
// JSON lines with "ts" (Unix seconds, fractional) and "request": {"host": ...}. Read
// incrementally: each poll() reads what was appended since the last one. When Caddy rolls
// the file (a new inode, or a file shorter than what was read) reading starts over at the
// new file's beginning; requests logged between the last poll and the roll are not seen
// (the cost: an environment may go to sleep up to one poll interval early). Thread-safe.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "util/time.hpp"

namespace idp::drivers::local {

class AccessLog {
public:
  explicit AccessLog(std::string path);
  // Reads what was appended; at most `max_bytes` per call (the rest at the next).
  void poll(size_t max_bytes = 64u << 20);
  // The host's last request seen, lowercased host without a port; nullopt when none.
  std::optional<util::Millis> last_request(const std::string& host);
  // Forgets a host (its environment was destroyed).
  void forget(const std::string& host);

private:
  void parse_line(const std::string& line);

  std::string m_path;
  std::mutex m_mu;
  uint64_t m_inode = 0;
  uint64_t m_offset = 0;
  std::string m_partial; // a line not yet ended
  std::map<std::string, util::Millis> m_last;
};

} // namespace idp::drivers::local
