#include "core/environment.hpp"

#include <cstdio>

namespace idp::core {

namespace {
constexpr std::string_view k_phase_names[] = {"pending",  "provisioning", "ready",      "updating",
                                              "degraded", "failed",       "destroying", "destroyed"};
constexpr std::string_view k_revision_names[] = {"pending", "building",   "starting", "serving",
                                                 "failed",  "superseded", "stopped"};
} // namespace

std::string_view phase_name(Phase p) { return k_phase_names[static_cast<int>(p)]; }

std::optional<Phase> parse_phase(std::string_view s) {
  for (int i = 0; i < 8; ++i) {
    if (k_phase_names[i] == s) {
      return static_cast<Phase>(i);
    }
  }
  return std::nullopt;
}

bool phase_is_live(Phase p) { return p != Phase::destroyed; }

std::string_view desired_name(Desired d) { return d == Desired::present ? "present" : "absent"; }

std::optional<Desired> parse_desired(std::string_view s) {
  if (s == "present") {
    return Desired::present;
  }
  if (s == "absent") {
    return Desired::absent;
  }
  return std::nullopt;
}

std::string_view revision_status_name(RevisionStatus s) { return k_revision_names[static_cast<int>(s)]; }

std::optional<RevisionStatus> parse_revision_status(std::string_view s) {
  for (int i = 0; i < 7; ++i) {
    if (k_revision_names[i] == s) {
      return static_cast<RevisionStatus>(i);
    }
  }
  return std::nullopt;
}

static nlohmann::json time_or_null(Millis t) {
  return t > 0 ? nlohmann::json(util::format_iso8601(t)) : nlohmann::json(nullptr);
}

nlohmann::json to_json(const Freeze& f) {
  return {{"by", f.by},
          {"reason", f.reason},
          {"at", time_or_null(f.at)},
          {"until", time_or_null(f.until)},
          {"waiting", f.waiting}};
}

std::string freeze_text(const std::optional<Freeze>& f) {
  if (!f) {
    return "";
  }
  return nlohmann::json{
      {"by", f->by}, {"reason", f->reason}, {"at", f->at}, {"until", f->until}, {"waiting", f->waiting}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<Freeze> parse_freeze(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  Freeze f;
  try {
    f.by = j.value("by", "");
    f.reason = j.value("reason", "");
    f.at = j.value("at", Millis{0});
    f.until = j.value("until", Millis{0});
    f.waiting = j.value("waiting", std::vector<std::string>{});
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return f;
}

std::string_view sleep_state_name(Sleep::State s) {
  switch (s) {
  case Sleep::State::to_sleep: return "to_sleep";
  case Sleep::State::asleep: return "asleep";
  case Sleep::State::to_wake: return "to_wake";
  }
  return "asleep";
}

nlohmann::json to_json(const Sleep& s) {
  return {{"state", sleep_state_name(s.state)}, {"by", s.by}, {"reason", s.reason}, {"at", time_or_null(s.at)}};
}

std::string sleep_text(const std::optional<Sleep>& s) {
  if (!s) {
    return "";
  }
  return nlohmann::json{{"state", sleep_state_name(s->state)}, {"by", s->by}, {"reason", s->reason}, {"at", s->at}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<Sleep> parse_sleep(std::string_view text) {
  if (text.empty()) {
    return std::nullopt;
  }
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  Sleep s;
  try {
    std::string state = j.value("state", "");
    if (state == "to_sleep") {
      s.state = Sleep::State::to_sleep;
    } else if (state == "asleep") {
      s.state = Sleep::State::asleep;
    } else if (state == "to_wake") {
      s.state = Sleep::State::to_wake;
    } else {
      return std::nullopt;
    }
    s.by = j.value("by", "");
    s.reason = j.value("reason", "");
    s.at = j.value("at", Millis{0});
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
  return s;
}

nlohmann::json to_json(const Environment& e) {
  nlohmann::json j;
  j["name"] = e.name;
  j["repo"] = e.repo;
  j["branch"] = e.branch;
  j["template"] = e.template_name;
  j["runtime"] = e.runtime;
  j["owner"] = e.owner;
  j["phase"] = phase_name(e.phase);
  j["desired"] = desired_name(e.desired);
  j["recreate"] = e.recreate;
  j["url"] = e.url.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.url);
  j["commit"] = e.commit;
  j["deployed_commit"] = e.deployed_commit.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.deployed_commit);
  j["pr_number"] = e.pr_number ? nlohmann::json(*e.pr_number) : nlohmann::json(nullptr);
  j["profile"] = e.profile.empty() ? std::string("default") : e.profile;
  j["freeze"] = e.freeze ? to_json(*e.freeze) : nlohmann::json(nullptr);
  j["sleep"] = e.sleep ? to_json(*e.sleep) : nlohmann::json(nullptr);
  j["sleeping"] = e.sleeping();
  j["message"] = e.message;
  j["warnings"] = e.warnings;
  j["attempts"] = e.attempts;
  j["next_attempt_at"] = time_or_null(e.next_attempt_at);
  j["created_at"] = time_or_null(e.created_at);
  j["expires_at"] = time_or_null(e.expires_at);
  j["updated_at"] = time_or_null(e.updated_at);
  j["destroyed_at"] = time_or_null(e.destroyed_at);
  j["generation"] = e.generation;
  j["observed_generation"] = e.observed_generation;
  auto outputs = nlohmann::json::parse(e.outputs_json, nullptr, false);
  if (!outputs.is_object()) {
    outputs = nlohmann::json::object();
  }
  j["last_deploy"] = nullptr;
  if (outputs.contains("deploy")) {
    j["last_deploy"] = outputs["deploy"];
    outputs.erase("deploy");
  }
  j["outputs"] = outputs;
  return j;
}

namespace {

std::string short_duration(int64_t ms) {
  if (ms < 1000) {
    return std::to_string(ms) + " ms";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

} // namespace

std::string deploy_summary(const nlohmann::json& deploy) {
  if (!deploy.is_object() || !deploy.contains("phases") || !deploy["phases"].is_array()) {
    return "";
  }
  std::vector<std::string> parts;
  for (const auto& p : deploy["phases"]) {
    if (p.is_object() && p.contains("phase") && p["phase"].is_string() && p.contains("ms") &&
        p["ms"].is_number_integer()) {
      parts.push_back(p["phase"].get<std::string>() + " " + short_duration(p["ms"].get<int64_t>()));
    }
  }
  int64_t total =
      deploy.contains("total_ms") && deploy["total_ms"].is_number_integer() ? deploy["total_ms"].get<int64_t>() : 0;
  std::string outcome =
      deploy.contains("outcome") && deploy["outcome"].is_string() ? deploy["outcome"].get<std::string>() : "done";
  std::string out = outcome + " " + short_duration(total) + " after the change";
  std::string sep = ": ";
  for (const auto& p : parts) {
    out += sep + p;
    sep = " \u00b7 ";
  }
  return out;
}

nlohmann::json to_json(const Revision& r) {
  // "id" is the per-environment number: users name revisions within their environment.
  return {{"id", r.number},
          {"environment", r.env},
          {"commit", r.commit},
          {"generation", r.generation},
          {"status", revision_status_name(r.status)},
          {"message", r.message},
          {"log_tail", r.log_tail},
          {"created_at", time_or_null(r.created_at)},
          {"finished_at", time_or_null(r.finished_at)}};
}

nlohmann::json to_json(const JobRun& r) {
  return {{"id", r.id},
          {"environment", r.env},
          {"scheduled_at", time_or_null(r.scheduled_at)},
          {"started_at", time_or_null(r.started_at)},
          {"finished_at", time_or_null(r.finished_at)},
          {"exit_code", r.finished_at > 0 ? nlohmann::json(r.exit_code) : nlohmann::json(nullptr)},
          {"status", r.status},
          {"message", r.message}};
}

nlohmann::json to_json(const Event& e) {
  return {{"id", e.id},         {"environment", e.env}, {"at", util::format_iso8601(e.at)}, {"actor", e.actor},
          {"action", e.action}, {"reason", e.reason},   {"from_phase", e.from_phase},       {"to_phase", e.to_phase}};
}

} // namespace idp::core
