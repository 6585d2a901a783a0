#include "proto/protocol.h"

namespace imf::proto {

Result<Request> parse_request(std::string_view line, json::Value* id) {
  *id = nullptr;
  auto parsed = json::parse(line);
  if (!parsed) return make_error(parsed.error());
  json::Value& v = parsed.value();
  if (!v.is_object()) return make_error(std::string("request must be a JSON object, not ") + json::type_name(v.type()));
  if (const json::Value* i = v.find("id")) {
    if (i->is_string() || i->is_number() || i->is_null()) *id = *i;
  }
  for (const auto& [k, unused] : v.as_object()) {
    if (k != "v" && k != "id" && k != "cmd" && k != "args")
      return make_error("unknown field '" + k + "' in request (allowed: v, id, cmd, args)");
  }
  const json::Value* ver = v.find("v");
  if (!ver) return make_error("missing field 'v' (protocol version; this daemon speaks 1)");
  if (!ver->is_int() || ver->as_int() != kVersion)
    return make_error("unsupported protocol version " + json::to_string(*ver) + " (this daemon speaks 1)");
  if (const json::Value* i = v.find("id"); i && !(i->is_string() || i->is_number() || i->is_null()))
    return make_error("field 'id' must be a string or a number");
  const json::Value* cmd = v.find("cmd");
  if (!cmd) return make_error("missing field 'cmd'");
  if (!cmd->is_string()) return make_error("field 'cmd' must be a string");
  Request r;
  r.id = *id;
  r.cmd = cmd->as_string();
  r.args = json::Object{};
  for (auto& [k, a] : v.as_object()) {
    if (k != "args" || a.is_null()) continue;
    if (!a.is_object()) return make_error("field 'args' must be an object");
    r.args = std::move(a);  // may hold megabytes of rule or table text: move, never copy
  }
  return r;
}

namespace {

std::string envelope(const json::Value& id, const char* key, json::Value v, bool ok_member, bool ok) {
  json::Value out = json::Object{};
  out.set("v", kVersion);
  out.set("id", id);
  if (ok_member) out.set("ok", ok);
  out.set(key, std::move(v));
  std::string line = json::to_string(out);
  line.push_back('\n');
  return line;
}

}  // namespace

std::string ok_line(const json::Value& id, json::Value result) {
  return envelope(id, "result", std::move(result), true, true);
}

std::string error_line(const json::Value& id, const std::string& error) {
  return envelope(id, "error", error, true, false);
}

std::string progress_line(const json::Value& id, const std::string& text) {
  return envelope(id, "progress", text, false, false);
}

std::string request_line(const json::Value& id, const std::string& cmd, json::Value args) {
  json::Value out = json::Object{};
  out.set("v", kVersion);
  out.set("id", id);
  out.set("cmd", cmd);
  out.set("args", std::move(args));
  std::string line = json::to_string(out);
  line.push_back('\n');
  return line;
}

Status check_args(const std::string& cmd, const json::Value& args, std::initializer_list<Field> fields) {
  auto find = [&](const std::string& name) -> const Field* {
    for (const Field& f : fields) {
      if (name == f.name) return &f;
    }
    return nullptr;
  };
  for (const auto& [k, v] : args.as_object()) {
    const Field* f = find(k);
    if (!f) {
      std::string msg = cmd + ": unknown field '";
      msg += k;
      msg += "' in args";
      if (fields.size() == 0) {
        msg += " (this command takes none)";
      } else {
        const char* sep = " (allowed: ";
        for (const Field& candidate : fields) {
          msg += sep;
          msg += candidate.name;
          sep = ", ";
        }
        msg += ")";
      }
      return make_error(std::move(msg));
    }
    if (v.type() != f->type) {
      std::string msg = cmd + ": args.";
      msg += k;
      msg += std::string(" must be ") + json::type_name(f->type) + ", not " + json::type_name(v.type());
      return make_error(std::move(msg));
    }
  }
  for (const Field& f : fields) {
    if (f.required && !args.find(f.name)) return make_error(cmd + ": missing args." + f.name);
  }
  return Ok{};
}

const std::string* get_string(const json::Value& args, std::string_view name) {
  const json::Value* v = args.find(name);
  return v && v->is_string() ? &v->as_string() : nullptr;
}

std::optional<int64_t> get_int(const json::Value& args, std::string_view name) {
  const json::Value* v = args.find(name);
  if (!v || !v->is_int()) return std::nullopt;
  return v->as_int();
}

bool get_bool(const json::Value& args, std::string_view name, bool fallback) {
  const json::Value* v = args.find(name);
  return v && v->is_bool() ? v->as_bool() : fallback;
}

}  // namespace imf::proto
