#include "drivers/common/interactive_exec.hpp"

namespace idp::drivers {

std::vector<std::pair<std::string, std::string>> InteractiveExecProcess::read(int64_t timeout_ms) {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& c : m_p->read(timeout_ms)) {
    out.emplace_back(c.is_stderr ? "stderr" : "stdout", std::move(c.data));
  }
  return out;
}

std::optional<std::pair<int, int>> InteractiveExecProcess::poll_exit() {
  auto s = m_p->poll_exit();
  if (!s) {
    return std::nullopt;
  }
  return std::make_pair(s->exit_code, s->signal);
}

Expected<std::unique_ptr<ExecProcess>> start_interactive_exec(const util::Command& cmd,
                                                              const util::InteractiveOptions& opts) {
  auto p = util::InteractiveProcess::start(cmd, opts);
  if (!p) {
    return Unexpected(p.error());
  }
  return std::unique_ptr<ExecProcess>(std::make_unique<InteractiveExecProcess>(std::move(*p)));
}

} // namespace idp::drivers
