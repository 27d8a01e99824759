#include "drivers/local/access_log.hpp"

#include <cmath>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "util/strings.hpp"

namespace idp::drivers::local {

AccessLog::AccessLog(std::string path) : m_path(std::move(path)) {}

void AccessLog::poll(size_t max_bytes) {
  std::lock_guard<std::mutex> g(m_mu);
  int fd = ::open(m_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return; // no request logged yet
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return;
  }
  if (static_cast<uint64_t>(st.st_ino) != m_inode || static_cast<uint64_t>(st.st_size) < m_offset) {
    m_inode = static_cast<uint64_t>(st.st_ino); // rolled (or first read): from the start
    m_offset = 0;
    m_partial.clear();
  }
  std::string buf(64 * 1024, '\0');
  size_t total = 0;
  while (total < max_bytes) {
    ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(m_offset));
    if (n <= 0) {
      break;
    }
    m_offset += static_cast<uint64_t>(n);
    total += static_cast<size_t>(n);
    size_t start = 0;
    std::string_view chunk(buf.data(), static_cast<size_t>(n));
    for (size_t nl = chunk.find('\n'); nl != std::string_view::npos; nl = chunk.find('\n', start)) {
      m_partial.append(chunk.substr(start, nl - start));
      parse_line(m_partial);
      m_partial.clear();
      start = nl + 1;
    }
    m_partial.append(chunk.substr(start));
    if (m_partial.size() > (1u << 20)) {
      m_partial.clear(); // no access log line is that long: not ours to keep
    }
  }
  ::close(fd);
}

void AccessLog::parse_line(const std::string& line) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (!j.is_object() || !j.contains("ts") || !j["ts"].is_number() || !j.contains("request") ||
      !j["request"].is_object()) {
    return;
  }
  const auto& req = j["request"];
  if (!req.contains("host") || !req["host"].is_string()) {
    return;
  }
  std::string host = util::to_lower(req["host"].get<std::string>());
  if (auto colon = host.rfind(':'); colon != std::string::npos && host.find(']') == std::string::npos) {
    host.resize(colon);
  }
  auto at = static_cast<util::Millis>(std::llround(j["ts"].get<double>() * 1000.0));
  auto& last = m_last[host];
  last = std::max(last, at);
}

std::optional<util::Millis> AccessLog::last_request(const std::string& host) {
  std::lock_guard<std::mutex> g(m_mu);
  auto it = m_last.find(util::to_lower(host));
  return it == m_last.end() ? std::nullopt : std::optional<util::Millis>(it->second);
}

void AccessLog::forget(const std::string& host) {
  std::lock_guard<std::mutex> g(m_mu);
  m_last.erase(util::to_lower(host));
}

} // namespace idp::drivers::local
