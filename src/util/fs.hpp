#pragma once
// Filesystem helpers that return Expected instead of throwing.

#include <cstdint>
#include <string>
#include <string_view>

#include "util/expected.hpp"

namespace idp::util {

Expected<std::string> read_file(const std::string& path);
// Replaces `path` so that a crash or power loss leaves the old or the new content, never a
// mix: writes a temporary file in the same directory, fsyncs it, renames it over `path`,
// then fsyncs the directory. io_error when any step fails: `path` is untouched, except after
// a failed directory sync (the new content is in place but may not survive a power loss).
Expected<void> write_file_atomic(const std::string& path, std::string_view data, int mode = 0644);
Expected<void> append_file(const std::string& path, std::string_view data);
// mkdir -p; ok if it exists.
// The directory's mode is set to `mode` (less the umask). On a directory with a POSIX
// ACL its group bits are the ACL's mask, through which the named entries (the search
// grants of drivers/local/search_access.hpp) work: they are kept, so that making a
// directory private again never cuts, even for a moment, what runs with such a grant.
Expected<void> ensure_dir(const std::string& path, int mode = 0755);
// rm -rf; ok if it does not exist.
Expected<void> remove_all(const std::string& path);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
// -1 when the file does not exist.
int64_t file_size(const std::string& path);
// Modification time in unix milliseconds, -1 when missing.
int64_t file_mtime_ms(const std::string& path);
std::string path_join(std::string_view a, std::string_view b);
// The directory part of `path`: "." for a bare name, "/" for a file in the root.
std::string parent_dir(const std::string& path);
std::string absolute_path(const std::string& path);
// A new directory under $TMPDIR (or /tmp) named prefix-XXXXXX.
Expected<std::string> make_temp_dir(std::string_view prefix);

// The daemon's home: $IDP_HOME, else $XDG_DATA_HOME/idp, else /var/lib/idp for root,
// else ~/.local/share/idp.
std::string default_idp_home();

// An exclusive advisory lock (flock) on a file, released on destruction.
class FileLock {
public:
  FileLock() = default;
  ~FileLock();
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  // Takes the lock without waiting; conflict when another holder has it.
  static Expected<FileLock> try_acquire(const std::string& path);
  // Waits for the lock.
  static Expected<FileLock> acquire(const std::string& path);
  bool held() const { return m_fd >= 0; }

private:
  explicit FileLock(int fd) : m_fd(fd) {}
  int m_fd = -1;
};

} // namespace idp::util
