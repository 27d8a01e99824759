#include "sources/seen_heads.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "engine/repo_resolver.hpp"
#include "util/hash.hpp"
#include "util/json.hpp"

namespace idp::sources {

namespace {

// Branch names are bytes and JSON keys are text. A name that is not UTF-8 is kept with
// each invalid byte as "\xNN": lossless, because git refuses '\' in a branch name, so no
// real name looks like an escaped one (a stored key that does is kept as it is).
std::string branch_key(const std::string& branch) { return util::escape_invalid_utf8(branch); }

std::string branch_of_key(const std::string& key) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') {
      return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
      return c - 'a' + 10;
    }
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < key.size(); ++i) {
    if (key[i] == '\\' && i + 3 < key.size() && key[i + 1] == 'x' && hex(key[i + 2]) >= 0 && hex(key[i + 3]) >= 0) {
      out += static_cast<char>(hex(key[i + 2]) * 16 + hex(key[i + 3]));
      i += 3;
    } else {
      out += key[i];
    }
  }
  return out;
}

} // namespace

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
          heads[branch_of_key(branch)] = commit.get<std::string>();
        }
      }
    }
  }
  return heads;
}

void SeenHeads::save(const std::string& repo) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [branch, commit] : load(repo)) {
    j[branch_key(branch)] = commit;
  }
  auto saved = m_store.set_setting(setting_key(repo), util::json_dump(j));
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
