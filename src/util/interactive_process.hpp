#pragma once
// A program whose input and output the caller drives chunk by chunk (idp exec): pipes, with
// stdout and stderr apart, or a pseudo-terminal that is the child's controlling terminal.
// The child runs in its own session and process group, always from argv, never a shell.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

#include "util/expected.hpp"
#include "util/subprocess.hpp"

namespace idp::util {

struct InteractiveOptions {
  bool tty = false; // a pseudo-terminal for stdin, stdout and stderr (one output stream)
  unsigned short rows = 24;
  unsigned short cols = 80;
  int uid = -1; // as SpawnOptions: the user and group it runs as (-1 = unchanged)
  int gid = -1;
  ChildPlacement placement; // cgroups it enters and its process limit (SpawnOptions::placement)
};

struct OutputChunk {
  bool is_stderr = false;
  std::string data;
};

struct ExitStatus {
  int exit_code = -1; // -1 when killed by a signal
  int signal = 0;     // the terminating signal, 0 when it exited
};

class InteractiveProcess {
public:
  // Starts `cmd`. not_found when the program is missing, io_error when it cannot start.
  static Expected<std::unique_ptr<InteractiveProcess>> start(const Command& cmd, const InteractiveOptions& opts);
  // Kills what is left of the process group (SIGKILL) and reaps the child: nothing outlives it.
  ~InteractiveProcess();
  InteractiveProcess(const InteractiveProcess&) = delete;
  InteractiveProcess& operator=(const InteractiveProcess&) = delete;

  // Waits up to timeout_ms for output (or the child's exit) and returns what is there, at
  // most max_bytes, possibly nothing. For one reader thread.
  std::vector<OutputChunk> read(int64_t timeout_ms, size_t max_bytes = 64 * 1024);
  // True once every output stream is at end of file. For the reader thread. A process the
  // command left running may hold them open: call poll_exit too, which stops it.
  bool output_done() const;
  // Writes all of `data` to the child's input, waiting up to timeout_ms for room: timeout
  // when the child does not read it, io_error once its input is closed. Thread-safe.
  Expected<void> write_input(std::string_view data, int64_t timeout_ms);
  // End of input: closes the pipe, or on a terminal types the EOF character (^D). Thread-safe.
  void close_input();
  // Sets the terminal's size (the child gets SIGWINCH); invalid_argument without a tty.
  Expected<void> resize(unsigned short rows, unsigned short cols);
  // Sends `sig` to the child's whole process group, unless it was already reaped. Thread-safe.
  void signal_group(int sig);
  // nullopt while the child runs. Once it has exited: kills the rest of its group (nothing
  // it started may run on), reaps it and returns its status (the same on every later call).
  // Thread-safe.
  std::optional<ExitStatus> poll_exit();
  bool tty() const { return m_tty; }

private:
  InteractiveProcess() = default;
  int m_master = -1; // the terminal's master side (tty): output, input and size; kept to the end
  int m_out = -1;    // stdout pipe, or m_master; for the reader thread
  int m_err = -1;    // stderr pipe (-1 with a tty); for the reader thread
  bool m_out_open = false;
  bool m_err_open = false;
  int m_in = -1;    // stdin pipe (-1 with a tty); guarded by m_input_mutex
  int m_pidfd = -1; // readable once the child exits (-1 on kernels without pidfd_open)
  bool m_tty = false;
  pid_t m_pid = -1;
  // Serialises writers of the input (its owner: a write may wait for the child to read).
  std::mutex m_input_mutex;
  bool m_input_closed = false;      // guarded by m_input_mutex
  std::mutex m_exit_mutex;          // held only for waitid/kill/waitpid, never for I/O
  std::optional<ExitStatus> m_exit; // set once reaped; guarded by m_exit_mutex
};

} // namespace idp::util
