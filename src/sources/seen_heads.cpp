#include "sources/seen_heads.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/repo_resolver.hpp"
#include "util/hash.hpp"

namespace idp::sources {

std::string SeenHeads::setting_key(const std::string& repo) {
  return "sources.heads." + util::sha256_hex(engine::RepoResolver::canonical_repo(repo)).substr(0, 16);
}

std::map<std::string, std::string>& SeenHeads::load(const std::string& repo) {
  std::string canon = engine::RepoResolver::canonical_repo(repo);
  auto it = m_heads.find(canon);
  if (it != m_heads.end()) {
    return it->second;
  }
  auto& heads = m_heads[canon];
  auto text = m_store.get_setting(setting_key(repo));
  if (text && *text) {
    auto j = nlohmann::json::parse(**text, nullptr, false);
    if (j.is_object()) {
      for (const auto& [branch, commit] : j.items()) {
        if (commit.is_string()) {
          heads[branch] = commit.get<std::string>();
        }
      }
    }
  }
  return heads;
}

void SeenHeads::save(const std::string& repo) {
  nlohmann::json j = load(repo);
  auto saved = m_store.set_setting(setting_key(repo), j.dump());
  if (!saved) {
    // Only costs a repeated (idempotent) sync after a restart.
    spdlog::warn("sources: cannot record branch heads: {}", saved.error().full_message());
  }
}

std::optional<std::string> SeenHeads::get(const std::string& repo, const std::string& branch) {
  std::lock_guard<std::mutex> g(m_mu);
  auto& heads = load(repo);
  auto it = heads.find(branch);
  if (it == heads.end()) {
    return std::nullopt;
  }
  return it->second;
}

void SeenHeads::set(const std::string& repo, const std::string& branch, const std::string& commit) {
  std::lock_guard<std::mutex> g(m_mu);
  auto& heads = load(repo);
  auto it = heads.find(branch);
  if (it != heads.end() && it->second == commit) {
    return;
  }
  heads[branch] = commit;
  save(repo);
}

void SeenHeads::erase(const std::string& repo, const std::string& branch) {
  std::lock_guard<std::mutex> g(m_mu);
  auto& heads = load(repo);
  if (heads.erase(branch) > 0) {
    save(repo);
  }
}

std::map<std::string, std::string> SeenHeads::all(const std::string& repo) {
  std::lock_guard<std::mutex> g(m_mu);
  return load(repo);
}

} // namespace idp::sources
