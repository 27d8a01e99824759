#include "drivers/terraform/module_inspect.hpp"

#include <algorithm>
#include <cctype>
#include <dirent.h>

#include <nlohmann/json.hpp>

#include "util/fs.hpp"
#include "util/strings.hpp"

namespace idp::drivers::terraform {

namespace {

// One token of the structural skeleton of an HCL file: identifiers, string literals
// (their text when they hold no interpolation), braces, '=' and newlines. Everything
// else (expressions, comments, heredoc bodies) is skipped.
struct Token {
  enum Kind { ident, string, open, close, assign, newline, other } kind;
  std::string text;
};

bool ident_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'; }

std::vector<Token> tokenize(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  const size_t n = s.size();
  // Skips a quoted string starting at s[i] == '"'; returns its text (raw, without
  // interpolation handling beyond matching braces).
  auto skip_string = [&](auto& self) -> std::string {
    std::string text;
    ++i;
    while (i < n) {
      char c = s[i];
      if (c == '\\' && i + 1 < n) {
        text += s[i + 1];
        i += 2;
        continue;
      }
      if (c == '"') {
        ++i;
        return text;
      }
      if ((c == '$' || c == '%') && i + 1 < n && s[i + 1] == '{') {
        // Template interpolation: skip to the matching '}', honouring nested strings.
        i += 2;
        int depth = 1;
        while (i < n && depth > 0) {
          if (s[i] == '"') {
            self(self);
            continue;
          }
          if (s[i] == '{') {
            ++depth;
          } else if (s[i] == '}') {
            --depth;
          }
          ++i;
        }
        text += "${}";
        continue;
      }
      if (c == '\n') {
        return text; // unterminated: be lenient
      }
      text += c;
      ++i;
    }
    return text;
  };
  while (i < n) {
    char c = s[i];
    if (c == '#' || (c == '/' && i + 1 < n && s[i + 1] == '/')) {
      while (i < n && s[i] != '\n') {
        ++i;
      }
      continue;
    }
    if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      size_t end = s.find("*/", i + 2);
      i = end == std::string_view::npos ? n : end + 2;
      continue;
    }
    if (c == '"') {
      out.push_back({Token::string, skip_string(skip_string)});
      continue;
    }
    if (c == '<' && i + 1 < n && s[i + 1] == '<') {
      // Heredoc: <<EOF or <<-EOF, body up to a line holding only the marker.
      size_t j = i + 2;
      if (j < n && s[j] == '-') {
        ++j;
      }
      size_t start = j;
      while (j < n && ident_char(s[j])) {
        ++j;
      }
      std::string marker(s.substr(start, j - start));
      if (!marker.empty()) {
        size_t line = s.find('\n', j);
        while (line != std::string_view::npos) {
          size_t next = s.find('\n', line + 1);
          std::string_view l = s.substr(line + 1, (next == std::string_view::npos ? n : next) - line - 1);
          if (util::trim(l) == marker) {
            i = next == std::string_view::npos ? n : next;
            break;
          }
          line = next;
        }
        if (line == std::string_view::npos) {
          i = n;
        }
        out.push_back({Token::other, ""});
        continue;
      }
    }
    if (c == '\n') {
      out.push_back({Token::newline, ""});
      ++i;
      continue;
    }
    if (c == '{') {
      out.push_back({Token::open, ""});
      ++i;
      continue;
    }
    if (c == '}') {
      out.push_back({Token::close, ""});
      ++i;
      continue;
    }
    if (c == '=') {
      bool cmp = (i + 1 < n && (s[i + 1] == '=' || s[i + 1] == '>')) ||
                 (i > 0 && (s[i - 1] == '=' || s[i - 1] == '!' || s[i - 1] == '<' || s[i - 1] == '>'));
      out.push_back({cmp ? Token::other : Token::assign, ""});
      i += (i + 1 < n && (s[i + 1] == '=' || s[i + 1] == '>')) ? 2 : 1;
      continue;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t start = i;
      while (i < n && ident_char(s[i])) {
        ++i;
      }
      out.push_back({Token::ident, std::string(s.substr(start, i - start))});
      continue;
    }
    if (!std::isspace(static_cast<unsigned char>(c))) {
      out.push_back({Token::other, std::string(1, c)});
    }
    ++i;
  }
  return out;
}

} // namespace

void scan_hcl(std::string_view text, ModuleInfo& info) {
  std::vector<Token> toks = tokenize(text);
  // Block stack: the header tokens (type and labels) of each open block; "" for a brace
  // that opens an object expression.
  std::vector<std::vector<std::string>> stack;
  std::vector<Token> line; // tokens since the last newline at the current depth
  std::string current_var, current_out;
  for (size_t k = 0; k < toks.size(); ++k) {
    const Token& t = toks[k];
    if (t.kind == Token::newline) {
      line.clear();
      continue;
    }
    if (t.kind == Token::open) {
      std::vector<std::string> header;
      bool is_block = !line.empty() && line.front().kind == Token::ident &&
                      std::none_of(line.begin(), line.end(), [](const Token& x) { return x.kind == Token::assign; });
      if (is_block) {
        for (const auto& x : line) {
          header.push_back(x.text);
        }
      }
      stack.push_back(header);
      if (stack.size() == 1 && header.size() >= 2) {
        if (header[0] == "variable") {
          info.variables[header[1]];
        } else if (header[0] == "output") {
          info.outputs[header[1]] = false;
        } else if (header[0] == "provider") {
          info.providers.insert(header[1]);
        }
      }
      line.clear();
      continue;
    }
    if (t.kind == Token::close) {
      if (!stack.empty()) {
        stack.pop_back();
      }
      line.clear();
      continue;
    }
    if (t.kind == Token::assign && line.size() == 1 && line.front().kind == Token::ident) {
      const std::string& attr = line.front().text;
      if (stack.size() == 1 && stack[0].size() >= 2) {
        const auto& h = stack[0];
        if (h[0] == "variable" && attr == "default") {
          info.variables[h[1]].has_default = true;
        } else if (h[0] == "variable" && attr == "sensitive") {
          info.variables[h[1]].sensitive = k + 1 < toks.size() && toks[k + 1].text == "true";
        } else if (h[0] == "output" && attr == "sensitive") {
          info.outputs[h[1]] = k + 1 < toks.size() && toks[k + 1].text == "true";
        } else if (h[0] == "module" && attr == "source" && k + 1 < toks.size() && toks[k + 1].kind == Token::string) {
          info.module_sources.push_back(toks[k + 1].text);
        }
      }
      if (stack.size() == 2 && !stack[0].empty() && stack[0][0] == "terraform" && !stack[1].empty() &&
          stack[1][0] == "required_providers") {
        info.providers.insert(attr);
      }
    }
    line.push_back(t);
  }
}

Expected<void> scan_tf_json(std::string_view text, ModuleInfo& info) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return make_error(ErrorCode::invalid_config, "not a JSON object");
  }
  if (auto v = j.find("variable"); v != j.end() && v->is_object()) {
    for (const auto& [name, body] : v->items()) {
      auto& var = info.variables[name];
      var.has_default = body.is_object() && body.contains("default");
      var.sensitive = body.is_object() && body.value("sensitive", false);
    }
  }
  if (auto o = j.find("output"); o != j.end() && o->is_object()) {
    for (const auto& [name, body] : o->items()) {
      info.outputs[name] = body.is_object() && body.value("sensitive", false);
    }
  }
  if (auto p = j.find("provider"); p != j.end() && p->is_object()) {
    for (const auto& [name, body] : p->items()) {
      info.providers.insert(name);
    }
  }
  if (auto m = j.find("module"); m != j.end() && m->is_object()) {
    for (const auto& [name, body] : m->items()) {
      if (body.is_object() && body.contains("source") && body["source"].is_string()) {
        info.module_sources.push_back(body["source"].get<std::string>());
      }
    }
  }
  return {};
}

Expected<ModuleInfo> inspect_module(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    return make_error(ErrorCode::not_found, "no Terraform module at " + util::quote(dir));
  }
  std::vector<std::string> files;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (util::ends_with(n, ".tf") || util::ends_with(n, ".tf.json")) {
      files.push_back(n);
    }
  }
  ::closedir(d);
  std::sort(files.begin(), files.end());
  ModuleInfo info;
  for (const auto& f : files) {
    std::string path = util::path_join(dir, f);
    if (util::is_directory(path)) {
      continue;
    }
    IDP_TRY_ASSIGN(std::string text, util::read_file(path));
    if (util::ends_with(f, ".tf.json")) {
      auto r = scan_tf_json(text, info);
      if (!r) {
        return Unexpected(r.error().with_context(path));
      }
    } else {
      scan_hcl(text, info);
    }
  }
  return info;
}

} // namespace idp::drivers::terraform
