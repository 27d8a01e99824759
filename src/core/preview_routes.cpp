#include "core/preview_routes.hpp"

#include <mutex>

namespace idp::core {

void PreviewRouteTable::set(const std::string& env, PreviewTarget target) {
  std::unique_lock<std::shared_mutex> g(m_mutex);
  m_targets[env] = std::move(target);
}

void PreviewRouteTable::erase(const std::string& env) {
  std::unique_lock<std::shared_mutex> g(m_mutex);
  m_targets.erase(env);
}

std::optional<PreviewTarget> PreviewRouteTable::get(const std::string& env) const {
  std::shared_lock<std::shared_mutex> g(m_mutex);
  auto it = m_targets.find(env);
  return it == m_targets.end() ? std::nullopt : std::optional<PreviewTarget>(it->second);
}

size_t PreviewRouteTable::size() const {
  std::shared_lock<std::shared_mutex> g(m_mutex);
  return m_targets.size();
}

void PreviewSessionTable::replace(std::vector<PreviewSession> sessions) {
  std::lock_guard<std::mutex> p(m_publish);
  Listener listener;
  {
    std::lock_guard<std::mutex> g(m_mutex);
    m_sessions = std::move(sessions);
    listener = m_listener;
  }
  if (listener) {
    listener(all());
  }
}

std::vector<PreviewSession> PreviewSessionTable::all() const {
  std::lock_guard<std::mutex> g(m_mutex);
  return m_sessions;
}

void PreviewSessionTable::listen(Listener listener) {
  std::lock_guard<std::mutex> p(m_publish);
  {
    std::lock_guard<std::mutex> g(m_mutex);
    m_listener = listener;
  }
  if (listener) {
    listener(all());
  }
}

} // namespace idp::core
