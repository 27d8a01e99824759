// Writing to a child's pipe without SIGPIPE (util/subprocess.hpp).

#include <cerrno>
#include <csignal>
#include <ctime>
#include <pthread.h>
#include <unistd.h>

#include "util/subprocess.hpp"

namespace idp::util {

ssize_t write_without_sigpipe(int fd, std::string_view data) {
  sigset_t pipe_set;
  sigset_t old_mask;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
  sigset_t pending;
  sigpending(&pending);
  bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  ssize_t w = ::write(fd, data.data(), data.size());
  int e = errno;
  if (w < 0 && e == EPIPE && !was_pending) {
    struct timespec zero {};
    while (::sigtimedwait(&pipe_set, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = e;
  return w;
}

} // namespace idp::util
