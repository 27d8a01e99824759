#include "util/keyed_mutex.hpp"

namespace idp::util {

KeyedMutex::Guard& KeyedMutex::Guard::operator=(Guard&& o) noexcept {
  if (this != &o) {
    release();
    m_owner = o.m_owner;
    m_it = o.m_it;
    m_shared = o.m_shared;
    o.m_owner = nullptr;
  }
  return *this;
}

void KeyedMutex::Guard::release() {
  if (m_owner == nullptr) {
    return;
  }
  if (m_shared) {
    m_it->second.mutex.unlock_shared();
  } else {
    m_it->second.mutex.unlock();
  }
  m_owner->release_entry(m_it);
  m_owner = nullptr;
}

// std::map iterators stay valid while other keys come and go; an entry is erased only
// once its count is 0, so a waiter's iterator cannot dangle.
KeyedMutex::Entries::iterator KeyedMutex::acquire_entry(const std::string& key) {
  std::lock_guard<std::mutex> g(m_mu);
  auto it = m_entries.try_emplace(key).first;
  ++it->second.users;
  return it;
}

void KeyedMutex::release_entry(Entries::iterator it) {
  std::lock_guard<std::mutex> g(m_mu);
  if (--it->second.users == 0) {
    m_entries.erase(it);
  }
}

KeyedMutex::Guard KeyedMutex::lock(const std::string& key) {
  auto it = acquire_entry(key);
  it->second.mutex.lock();
  return Guard(this, it, false);
}

KeyedMutex::Guard KeyedMutex::lock_shared(const std::string& key) {
  auto it = acquire_entry(key);
  it->second.mutex.lock_shared();
  return Guard(this, it, true);
}

std::optional<KeyedMutex::Guard> KeyedMutex::try_lock(const std::string& key) {
  auto it = acquire_entry(key);
  if (!it->second.mutex.try_lock()) {
    release_entry(it);
    return std::nullopt;
  }
  return Guard(this, it, false);
}

size_t KeyedMutex::size_for_test() const {
  std::lock_guard<std::mutex> g(m_mu);
  return m_entries.size();
}

size_t KeyedMutex::users_for_test(const std::string& key) const {
  std::lock_guard<std::mutex> g(m_mu);
  auto it = m_entries.find(key);
  return it == m_entries.end() ? 0 : it->second.users;
}

} // namespace idp::util
