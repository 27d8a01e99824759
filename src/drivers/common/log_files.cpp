#include "drivers/common/log_files.hpp"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "util/fs.hpp"
#include "util/strings.hpp"

namespace idp::drivers::common {

namespace {

constexpr int64_t k_retention_interval_ms = 3600 * 1000;
constexpr size_t k_fingerprint_bytes = 64;

// Howard Hinnant's civil-date algorithms: exact for the proleptic Gregorian calendar and
// far cheaper than timegm/gmtime_r, which matters when parsing every line of a big log.
int64_t days_from_civil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

void civil_from_days(int64_t z, int64_t& y, int& m, int& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = yoe + era * 400 + (m <= 2);
}

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') {
      return false;
    }
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

uint64_t fnv1a(std::string_view data) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : data) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

Expected<void> write_all(int fd, std::string_view data, const std::string& path) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return make_error(ErrorCode::io_error, "cannot write " + util::quote(path) + ": " + std::strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  return {};
}

void lock_fd(int fd, int op) {
  while (::flock(fd, op) != 0 && errno == EINTR) {
  }
}

// Indices N of the rotated files "<base>.N" present in `dir`, ascending.
std::vector<int> rotated_indices(const std::string& dir, const std::string& base) {
  std::vector<int> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    return out;
  }
  std::string prefix = base + ".";
  while (auto* ent = ::readdir(d)) {
    std::string_view name(ent->d_name);
    if (!util::starts_with(name, prefix) || name.size() == prefix.size() || name.size() > prefix.size() + 6) {
      continue;
    }
    int n = 0;
    if (digits(name, prefix.size(), name.size() - prefix.size(), n) && n > 0) {
      out.push_back(n);
    }
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

Expected<std::string> pread_range(int fd, int64_t from, int64_t to) {
  std::string out;
  if (to <= from) {
    return out;
  }
  out.resize(static_cast<size_t>(to - from));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(fd, out.data() + got, out.size() - got, from + static_cast<int64_t>(got));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return make_error(ErrorCode::io_error, std::string("cannot read log: ") + std::strerror(errno));
    }
    if (n == 0) {
      break;
    }
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

struct Cursor {
  uint64_t inode = 0;
  int64_t offset = 0;
  size_t fp_len = 0;
  uint64_t fp_hash = 0;
};

std::string format_cursor(const Cursor& c) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "1-%" PRIu64 "-%" PRId64 "-%zu-%016" PRIx64, c.inode, c.offset, c.fp_len, c.fp_hash);
  return buf;
}

std::optional<Cursor> parse_cursor(const std::string& s) {
  Cursor c;
  unsigned long long ino = 0;
  long long off = 0;
  unsigned long fplen = 0;
  unsigned long long hash = 0;
  char tail = 0;
  if (std::sscanf(s.c_str(), "1-%llu-%lld-%lu-%16llx%c", &ino, &off, &fplen, &hash, &tail) != 4 || off < 0 ||
      fplen > k_fingerprint_bytes || static_cast<long long>(fplen) > off) {
    return std::nullopt;
  }
  c.inode = ino;
  c.offset = off;
  c.fp_len = fplen;
  c.fp_hash = hash;
  return c;
}

uint64_t fingerprint(int fd, size_t len) {
  auto head = pread_range(fd, 0, static_cast<int64_t>(len));
  return head && head->size() == len ? fnv1a(*head) : 0;
}

// One opened log file of a reader's snapshot.
struct OpenFile {
  int fd = -1;
  uint64_t inode = 0;
  int64_t size = 0;
};

} // namespace

std::string format_log_timestamp(util::Millis t) {
  int64_t ms = t % 1000;
  int64_t secs = t / 1000;
  if (ms < 0) {
    ms += 1000;
    secs -= 1;
  }
  int64_t days = secs / 86400;
  int64_t rem = secs % 86400;
  if (rem < 0) {
    rem += 86400;
    days -= 1;
  }
  int64_t y = 0;
  int m = 0;
  int d = 0;
  civil_from_days(days, y, m, d);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, static_cast<int>(rem / 3600),
                static_cast<int>(rem / 60 % 60), static_cast<int>(rem % 60), static_cast<int>(ms));
  return buf;
}

std::optional<util::Millis> parse_log_timestamp(std::string_view s) {
  // Fast path for exactly the form we write: YYYY-MM-DDTHH:MM:SS.mmmZ
  if (s.size() == 24 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' && s[19] == '.' &&
      s[23] == 'Z') {
    int y, mo, d, h, mi, sec, ms;
    if (digits(s, 0, 4, y) && digits(s, 5, 2, mo) && digits(s, 8, 2, d) && digits(s, 11, 2, h) &&
        digits(s, 14, 2, mi) && digits(s, 17, 2, sec) && digits(s, 20, 3, ms) && mo >= 1 && mo <= 12 && d >= 1 &&
        d <= 31 && h <= 23 && mi <= 59 && sec <= 60) {
      int64_t days = days_from_civil(y, mo, d);
      return ((days * 86400 + h * 3600 + mi * 60 + sec) * 1000) + ms;
    }
    return std::nullopt;
  }
  return util::parse_iso8601(s);
}

std::string format_log_line(util::Millis at, std::string_view stream, std::string_view text) {
  std::string out = format_log_timestamp(at);
  out.reserve(out.size() + stream.size() + text.size() + 3);
  out += '\t';
  out += stream;
  out += '\t';
  out += text;
  out += '\n';
  return out;
}

LogLine parse_log_line(std::string_view line) {
  LogLine out;
  auto t1 = line.find('\t');
  if (t1 != std::string_view::npos) {
    auto t2 = line.find('\t', t1 + 1);
    if (t2 != std::string_view::npos) {
      if (auto at = parse_log_timestamp(line.substr(0, t1))) {
        out.at = *at;
        out.stream = std::string(line.substr(t1 + 1, t2 - t1 - 1));
        out.text = std::string(line.substr(t2 + 1));
        return out;
      }
    }
  }
  out.text = std::string(line);
  return out;
}

// --- LogWriter ---

LogWriter::LogWriter(std::string dir, std::string base, LogFileOptions opts, const util::Clock* clock)
    : m_dir(std::move(dir)), m_base(std::move(base)), m_opts(opts), m_clock(clock) {
  m_path = util::path_join(m_dir, m_base);
}

LogWriter::~LogWriter() {
  if (m_fd >= 0) {
    ::close(m_fd);
  }
  if (m_lock_fd >= 0) {
    ::close(m_lock_fd);
  }
}

Expected<void> LogWriter::append(std::string_view stream, std::string_view text) {
  static const util::SystemClock k_system;
  return append_at((m_clock ? m_clock : &k_system)->now_ms(), stream, text);
}

Expected<void> LogWriter::append_at(util::Millis at, std::string_view stream, std::string_view text) {
  std::string data;
  size_t start = 0;
  while (true) {
    size_t nl = text.find('\n', start);
    std::string_view line = text.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    data += format_log_line(at, stream, line);
    if (nl == std::string_view::npos || nl + 1 == text.size()) {
      break;
    }
    start = nl + 1;
  }
  std::lock_guard<std::mutex> g(m_mutex);
  return write_locked(data);
}

void LogWriter::apply_retention() {
  std::lock_guard<std::mutex> g(m_mutex);
  if (m_lock_fd < 0) {
    if (!util::ensure_dir(m_dir)) {
      return;
    }
    m_lock_fd = ::open(util::path_join(m_dir, "." + m_base + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (m_lock_fd < 0) {
      return;
    }
  }
  lock_fd(m_lock_fd, LOCK_EX);
  retention_locked();
  lock_fd(m_lock_fd, LOCK_UN);
}

Expected<void> LogWriter::reopen_locked() {
  if (m_fd >= 0) {
    ::close(m_fd);
  }
  m_fd = ::open(m_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (m_fd < 0) {
    return make_error(ErrorCode::io_error, "cannot open " + util::quote(m_path) + ": " + std::strerror(errno));
  }
  struct stat st {};
  ::fstat(m_fd, &st);
  m_inode = st.st_ino;
  return {};
}

Expected<void> LogWriter::write_locked(std::string_view data) {
  if (m_lock_fd < 0) {
    IDP_TRY(util::ensure_dir(m_dir));
    std::string lock_path = util::path_join(m_dir, "." + m_base + ".lock");
    m_lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (m_lock_fd < 0) {
      return make_error(ErrorCode::io_error, "cannot open " + util::quote(lock_path) + ": " + std::strerror(errno));
    }
  }
  lock_fd(m_lock_fd, LOCK_EX);
  auto result = [&]() -> Expected<void> {
    // Another writer may have rotated the file since our last append: follow the name.
    struct stat st {};
    if (m_fd < 0 || ::stat(m_path.c_str(), &st) != 0 || st.st_ino != m_inode) {
      IDP_TRY(reopen_locked());
    }
    struct stat cur {};
    ::fstat(m_fd, &cur);
    if (cur.st_size > 0 && cur.st_size + static_cast<int64_t>(data.size()) > m_opts.max_bytes) {
      rotate_locked();
      IDP_TRY(reopen_locked());
    }
    IDP_TRY(write_all(m_fd, data, m_path));
    static const util::SystemClock k_system;
    int64_t now = (m_clock ? m_clock : &k_system)->now_ms();
    if (m_opts.retention_days > 0 && now - m_last_retention_ms >= k_retention_interval_ms) {
      retention_locked();
    }
    return {};
  }();
  lock_fd(m_lock_fd, LOCK_UN);
  return result;
}

void LogWriter::rotate_locked() {
  auto name = [&](int i) { return m_path + "." + std::to_string(i); };
  if (m_opts.keep <= 0) {
    ::unlink(m_path.c_str());
  } else {
    ::unlink(name(m_opts.keep).c_str());
    for (int i = m_opts.keep - 1; i >= 1; --i) {
      ::rename(name(i).c_str(), name(i + 1).c_str());
    }
    ::rename(m_path.c_str(), name(1).c_str());
  }
  retention_locked();
}

void LogWriter::retention_locked() {
  static const util::SystemClock k_system;
  int64_t now = (m_clock ? m_clock : &k_system)->now_ms();
  m_last_retention_ms = now;
  int64_t cutoff = m_opts.retention_days > 0 ? now - int64_t{m_opts.retention_days} * 86400 * 1000 : INT64_MIN;
  for (int i : rotated_indices(m_dir, m_base)) {
    std::string p = m_path + "." + std::to_string(i);
    // Files beyond `keep` are leftovers of a larger setting; drop them too.
    if (i > m_opts.keep || util::file_mtime_ms(p) < cutoff) {
      ::unlink(p.c_str());
    }
  }
}

// --- LogReader ---

LogReader::LogReader(std::string dir, std::string base) : m_dir(std::move(dir)), m_base(std::move(base)) {}

Expected<LogChunk> LogReader::read(const LogQuery& q) const {
  std::optional<Cursor> from;
  if (!q.cursor.empty()) {
    from = parse_cursor(q.cursor);
    if (!from) {
      return make_error(ErrorCode::invalid_argument, "invalid log cursor " + util::quote(q.cursor));
    }
  }
  LogChunk chunk;
  if (!util::is_directory(m_dir)) {
    return chunk;
  }

  // Snapshot: open every file while writers cannot rotate (shared lock), then read from
  // the descriptors without the lock; later appends are picked up by the next read.
  std::vector<OpenFile> files;
  struct Closer {
    std::vector<OpenFile>& f;
    ~Closer() {
      for (auto& x : f) {
        ::close(x.fd);
      }
    }
  } closer{files};
  std::string base_path = util::path_join(m_dir, m_base);
  int lfd = ::open(util::path_join(m_dir, "." + m_base + ".lock").c_str(), O_RDONLY | O_CLOEXEC);
  if (lfd >= 0) {
    lock_fd(lfd, LOCK_SH);
  }
  std::vector<int> idx = rotated_indices(m_dir, m_base);
  std::vector<std::string> paths;
  for (auto it = idx.rbegin(); it != idx.rend(); ++it) {
    paths.push_back(base_path + "." + std::to_string(*it));
  }
  paths.push_back(base_path);
  for (const auto& p : paths) {
    int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    struct stat st {};
    ::fstat(fd, &st);
    bool dup = std::any_of(files.begin(), files.end(), [&](const OpenFile& f) { return f.inode == st.st_ino; });
    if (dup) {
      ::close(fd);
      continue;
    }
    files.push_back({fd, static_cast<uint64_t>(st.st_ino), static_cast<int64_t>(st.st_size)});
  }
  if (lfd >= 0) {
    lock_fd(lfd, LOCK_UN);
    ::close(lfd);
  }
  if (files.empty()) {
    return chunk;
  }

  // Where to start: just after the cursor when its file is still there, else the oldest
  // file (everything still present is newer than a deleted file).
  size_t first = 0;
  int64_t first_offset = 0;
  if (from) {
    for (size_t i = 0; i < files.size(); ++i) {
      if (files[i].inode == from->inode &&
          (from->fp_len == 0 || fingerprint(files[i].fd, from->fp_len) == from->fp_hash)) {
        first = i;
        first_offset = from->offset <= files[i].size ? from->offset : 0;
        break;
      }
    }
  }

  // Read newest to oldest so a tail stops early; each file's lines are kept in order.
  std::vector<std::vector<LogLine>> per_file(files.size());
  size_t collected = 0;
  Cursor end;
  for (size_t k = files.size(); k-- > first;) {
    const OpenFile& f = files[k];
    int64_t start = k == first ? first_offset : 0;
    IDP_TRY_ASSIGN(std::string data, pread_range(f.fd, start, f.size));
    bool newest = k + 1 == files.size();
    size_t usable = data.size();
    if (newest) {
      // A partial last line belongs to a writer mid-append: leave it for the next read.
      size_t nl = data.rfind('\n');
      usable = nl == std::string::npos ? 0 : nl + 1;
      end.inode = f.inode;
      end.offset = start + static_cast<int64_t>(usable);
      end.fp_len = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(k_fingerprint_bytes), end.offset));
      end.fp_hash = fingerprint(f.fd, end.fp_len);
    }
    std::vector<LogLine>& out = per_file[k];
    util::Millis prev_at = 0;
    size_t pos = 0;
    while (pos < usable) {
      size_t nl = data.find('\n', pos);
      size_t stop = nl == std::string::npos || nl >= usable ? usable : nl;
      LogLine line = parse_log_line(std::string_view(data).substr(pos, stop - pos));
      if (line.at == 0) {
        line.at = prev_at; // an unstamped line belongs with the record before it
      }
      prev_at = line.at;
      if (line.at >= q.since) {
        out.push_back(std::move(line));
      }
      pos = stop + 1;
    }
    collected += out.size();
    if (q.tail > 0 && collected >= q.tail) {
      break;
    }
  }
  for (auto& v : per_file) {
    for (auto& l : v) {
      chunk.lines.push_back(std::move(l));
    }
  }
  if (q.tail > 0 && chunk.lines.size() > q.tail) {
    chunk.lines.erase(chunk.lines.begin(), chunk.lines.end() - static_cast<ptrdiff_t>(q.tail));
  }
  chunk.cursor = format_cursor(end);
  return chunk;
}

} // namespace idp::drivers::common
