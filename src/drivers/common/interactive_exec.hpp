#pragma once
// An exec session's command run on this machine (util::InteractiveProcess: its own process
// group, on pipes or a pseudo-terminal) as a Driver's ExecProcess: the local runtime's
// command itself, the Kubernetes runtime's `kubectl exec`.

#include <memory>

#include "drivers/driver.hpp"
#include "util/interactive_process.hpp"

namespace idp::drivers {

class InteractiveExecProcess final : public ExecProcess {
public:
  explicit InteractiveExecProcess(std::unique_ptr<util::InteractiveProcess> p) : m_p(std::move(p)) {}
  std::vector<std::pair<std::string, std::string>> read(int64_t timeout_ms) override;
  bool output_done() const override { return m_p->output_done(); }
  Expected<void> write_input(std::string_view data, int64_t timeout_ms) override {
    return m_p->write_input(data, timeout_ms);
  }
  void close_input() override { m_p->close_input(); }
  Expected<void> resize(unsigned short rows, unsigned short cols) override { return m_p->resize(rows, cols); }
  void signal(int sig) override { m_p->signal_group(sig); }
  std::optional<std::pair<int, int>> poll_exit() override;

private:
  std::unique_ptr<util::InteractiveProcess> m_p;
};

// Starts `cmd` with `opts` (tty, size) as an exec session.
Expected<std::unique_ptr<ExecProcess>> start_interactive_exec(const util::Command& cmd,
                                                              const util::InteractiveOptions& opts);

} // namespace idp::drivers
