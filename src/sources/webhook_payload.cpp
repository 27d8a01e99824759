#include "sources/webhook_payload.hpp"

#include <limits>

#include <simdjson.h>

namespace idp::sources {

namespace {

// One projection, written once over two JSON libraries, so the fast path and the fallback
// cannot drift apart. An adapter says how to read a value: whether it is an object, its
// fields in document order, and its string, integer and boolean readings.

struct SimdjsonValues {
  using Value = simdjson::dom::element;
  static bool is_object(Value v) { return v.type() == simdjson::dom::element_type::OBJECT; }
  template <class F>
  static void fields(Value v, F&& f) {
    simdjson::dom::object o;
    if (v.get_object().get(o) != simdjson::SUCCESS) {
      return;
    }
    for (simdjson::dom::key_value_pair kv : o) {
      f(kv.key, kv.value);
    }
  }
  static std::string string(Value v) {
    std::string_view s;
    return v.get_string().get(s) == simdjson::SUCCESS ? std::string(s) : std::string();
  }
  static PayloadInt integer(Value v) {
    int64_t i = 0;
    switch (v.type()) {
    case simdjson::dom::element_type::INT64:
      return v.get_int64().get(i) == simdjson::SUCCESS ? PayloadInt(i) : std::nullopt;
    case simdjson::dom::element_type::UINT64: return -1; // only used for values above INT64_MAX
    default: return std::nullopt;
    }
  }
  static bool is_true(Value v) {
    bool b = false;
    return v.get_bool().get(b) == simdjson::SUCCESS && b;
  }
};

struct NlohmannValues {
  using Value = const nlohmann::json&;
  static bool is_object(Value v) { return v.is_object(); }
  template <class F>
  static void fields(Value v, F&& f) {
    if (!v.is_object()) {
      return;
    }
    for (auto it = v.begin(); it != v.end(); ++it) {
      f(std::string_view(it.key()), *it);
    }
  }
  static std::string string(Value v) { return v.is_string() ? v.get<std::string>() : std::string(); }
  static PayloadInt integer(Value v) {
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      return u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? -1 : static_cast<int64_t>(u);
    }
    return v.is_number_integer() ? PayloadInt(v.get<int64_t>()) : std::nullopt;
  }
  static bool is_true(Value v) { return v.is_boolean() && v.get<bool>(); }
};

// The string value of `name` in object `v`: "" when `v` is not an object, the key is absent
// or its (last) value is not a string.
template <class A>
std::string member_string(typename A::Value v, std::string_view name) {
  std::string out;
  A::fields(v, [&](std::string_view key, typename A::Value value) {
    if (key == name) {
      out = A::string(value);
    }
  });
  return out;
}

template <class A>
PayloadRepository project_repository(typename A::Value v) {
  PayloadRepository r;
  r.is_object = A::is_object(v);
  A::fields(v, [&](std::string_view key, typename A::Value value) {
    if (key == "full_name") {
      r.full_name = A::string(value);
    } else if (key == "clone_url") {
      r.clone_url = A::string(value);
    } else if (key == "html_url") {
      r.html_url = A::string(value);
    } else if (key == "ssh_url") {
      r.ssh_url = A::string(value);
    } else if (key == "git_url") {
      r.git_url = A::string(value);
    } else if (key == "url") {
      r.url = A::string(value);
    } else if (key == "svn_url") {
      r.svn_url = A::string(value);
    }
  });
  return r;
}

void clear_head(WebhookPayload& p) {
  p.has_head = false;
  p.head_ref.clear();
  p.head_sha.clear();
  p.head_repo_full_name.clear();
}

template <class A>
void project_head(typename A::Value v, WebhookPayload& p) {
  clear_head(p);
  p.has_head = A::is_object(v);
  A::fields(v, [&](std::string_view key, typename A::Value value) {
    if (key == "ref") {
      p.head_ref = A::string(value);
    } else if (key == "sha") {
      p.head_sha = A::string(value);
    } else if (key == "repo") {
      p.head_repo_full_name = member_string<A>(value, "full_name");
    }
  });
}

template <class A>
void project_pull_request(typename A::Value v, WebhookPayload& p) {
  p.has_pull_request = A::is_object(v);
  p.pr_number.reset();
  p.pr_merged = false;
  p.pr_author.clear();
  clear_head(p); // a later "pull_request" replaces all of an earlier one
  A::fields(v, [&](std::string_view key, typename A::Value value) {
    if (key == "number") {
      p.pr_number = A::integer(value);
    } else if (key == "user") {
      p.pr_author = member_string<A>(value, "login");
    } else if (key == "merged") {
      p.pr_merged = A::is_true(value);
    } else if (key == "head") {
      project_head<A>(value, p);
    }
  });
}

template <class A>
void project_issue(typename A::Value v, WebhookPayload& p) {
  p.issue_number.reset();
  p.issue_is_pull_request = false;
  A::fields(v, [&](std::string_view key, typename A::Value value) {
    if (key == "number") {
      p.issue_number = A::integer(value);
    } else if (key == "pull_request") {
      p.issue_is_pull_request = A::is_object(value);
    }
  });
}

template <class A>
void project_comment(typename A::Value v, WebhookPayload& p) {
  p.comment_body.clear();
  p.comment_author.clear();
  A::fields(v, [&](std::string_view key, typename A::Value value) {
    if (key == "body") {
      p.comment_body = A::string(value);
    } else if (key == "user") {
      p.comment_author = member_string<A>(value, "login");
    }
  });
}

template <class A>
WebhookPayload project(typename A::Value root) {
  WebhookPayload p;
  A::fields(root, [&](std::string_view key, typename A::Value value) {
    if (key == "repository") {
      p.repository = project_repository<A>(value);
    } else if (key == "ref") {
      p.ref = A::string(value);
    } else if (key == "after") {
      p.after = A::string(value);
    } else if (key == "deleted") {
      p.deleted = A::is_true(value);
    } else if (key == "action") {
      p.action = A::string(value);
    } else if (key == "ref_type") {
      p.ref_type = A::string(value);
    } else if (key == "number") {
      p.number = A::integer(value);
    } else if (key == "sender") {
      p.sender_login = member_string<A>(value, "login");
    } else if (key == "pusher") {
      p.pusher_name = member_string<A>(value, "name");
    } else if (key == "pull_request") {
      project_pull_request<A>(value, p);
    } else if (key == "issue") {
      project_issue<A>(value, p);
    } else if (key == "comment") {
      project_comment<A>(value, p);
    }
  });
  return p;
}

// A parser keeps its buffers (about 13 bytes per input byte) for the next document: one per
// thread for ordinary payloads; a rare huge one gets its own, freed afterwards.
constexpr size_t k_reuse_limit = 256 * 1024;

Expected<WebhookPayload> not_an_object() {
  return make_error(ErrorCode::invalid_argument, "webhook body is not a JSON object");
}

} // namespace

WebhookPayload project_webhook_payload(const nlohmann::json& payload) { return project<NlohmannValues>(payload); }

Expected<WebhookPayload> parse_webhook_payload(std::string_view text) {
  thread_local simdjson::dom::parser t_parser;
  std::optional<simdjson::dom::parser> own;
  simdjson::dom::parser* parser = &t_parser;
  if (text.size() > k_reuse_limit) {
    parser = &own.emplace();
  }
  simdjson::dom::element root;
  if (parser->parse(text.data(), text.size(), /*realloc_if_needed=*/true).get(root) == simdjson::SUCCESS) {
    if (!SimdjsonValues::is_object(root)) {
      return not_an_object();
    }
    return project<SimdjsonValues>(root);
  }
  // simdjson refuses some documents nlohmann::json accepts (integers beyond 64 bits, nesting
  // deeper than 1024, a leading byte order mark): they were accepted before, so nlohmann
  // decides. Only signed bodies get here, and only malformed ones pay twice.
  nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return not_an_object();
  }
  return project_webhook_payload(doc);
}

} // namespace idp::sources
