#include "daemon/table_store.h"

#include <dirent.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/atomic_file.h"
#include "daemon/version_store.h"

namespace imf::control {

namespace {

constexpr size_t kMaxReportedErrors = 10;
constexpr std::string_view kCsv = ".csv";

// Why `s` cannot be a key or value, empty when it can.
std::string bad_bytes(std::string_view s, bool is_key) {
  for (char c : s) {
    if (c == '\n') return "holds a line feed";
    if (c == '\r') return "holds a carriage return";
    if (c == '\0') return "holds a NUL byte";
    if (is_key && c == ',') return "holds a ','";
  }
  return {};
}

// A key as error messages show it: long ones cut, so one bad row cannot flood a message.
std::string shown_key(std::string_view key) {
  constexpr size_t kShown = 40;
  if (key.size() <= kShown) return std::string(key);
  return std::string(key.substr(0, kShown)) + "...";
}

}  // namespace

Status check_table_name(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64 && name.front() != '.';
  for (char c : name) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-');
  }
  if (!ok) return make_error("bad table name '" + std::string(name) + "' (1-64 characters of A-Z a-z 0-9 _ . -)");
  return Ok{};
}

Status check_key(std::string_view key, const RowLimits& limits) {
  if (key.empty()) return make_error("empty key");
  if (key.size() > limits.key_bytes)
    return make_error("key '" + shown_key(key) + "' is " + std::to_string(key.size()) + " bytes, over the limit of " +
                      std::to_string(limits.key_bytes) + " bytes");
  if (std::string why = bad_bytes(key, true); !why.empty()) return make_error("key " + why);
  return Ok{};
}

Status check_value(std::string_view value, const RowLimits& limits) {
  if (value.size() > limits.value_bytes)
    return make_error("value is " + std::to_string(value.size()) + " bytes, over the limit of " +
                      std::to_string(limits.value_bytes) + " bytes");
  if (std::string why = bad_bytes(value, false); !why.empty()) return make_error("value " + why);
  return Ok{};
}

Result<Rows> parse_csv(std::string_view text, const std::string& source, const RowLimits& limits) {
  Rows rows;
  rows.reserve(static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
  std::string errors;
  size_t n_errors = 0;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;

    std::string problem;
    size_t comma = line.find(',');
    if (comma == std::string_view::npos) {
      problem = "missing ',' between key and value";
    } else if (Status s = check_key(line.substr(0, comma), limits); !s) {
      problem = s.error();
    } else if (Status v = check_value(line.substr(comma + 1), limits); !v) {
      problem = "key '" + shown_key(line.substr(0, comma)) + "': " + v.error();
    }
    if (!problem.empty()) {
      if (++n_errors <= kMaxReportedErrors) {
        errors += source;
        errors += ":" + std::to_string(line_no) + ": ";
        errors += problem;
        errors += '\n';
      }
      continue;
    }
    if (n_errors == 0) rows.emplace_back(line.substr(0, comma), line.substr(comma + 1));
  }
  if (n_errors > 0) {
    if (n_errors > kMaxReportedErrors)
      errors += "... and " + std::to_string(n_errors - kMaxReportedErrors) + " more bad lines\n";
    errors.pop_back();
    return make_error(std::move(errors));
  }
  return rows;
}

Status TableStore::init() {
  if (Status s = make_dirs(dir_, 0750); !s) return s;
  auto removed = remove_temporaries(dir_);
  if (!removed) return make_error(removed.error());
  DIR* d = ::opendir(dir_.c_str());
  if (!d) return make_error(dir_ + ": cannot read directory: " + std::strerror(errno));
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n.size() > kCsv.size() && n.substr(n.size() - kCsv.size()) == kCsv) {
      std::string name(n.substr(0, n.size() - kCsv.size()));
      if (check_table_name(name)) names.push_back(std::move(name));
    }
  }
  ::closedir(d);
  for (const std::string& name : names) {
    std::ifstream in(path(name), std::ios::binary);
    if (!in) return make_error(path(name) + ": cannot open");
    std::stringstream ss;
    ss << in.rdbuf();
    auto rows = parse_csv(ss.str(), path(name), kSnapshotLimits);
    if (!rows) return make_error(rows.error());
    Table* t = find_or_create(name);
    std::lock_guard lock(t->mu);
    t->rows.reserve(rows->size());
    for (auto& [k, v] : rows.value()) t->rows.insert_or_assign(std::move(k), std::move(v));
  }
  return Ok{};
}

TableStore::Table* TableStore::find(const std::string& name) const {
  std::lock_guard lock(mu_);
  auto it = tables_.find(name);
  return it == tables_.end() ? nullptr : it->second.get();
}

TableStore::Table* TableStore::find_or_create(const std::string& name) {
  std::lock_guard lock(mu_);
  auto& slot = tables_[name];
  if (!slot) slot = std::make_unique<Table>();
  return slot.get();
}

Status TableStore::write_snapshot(const std::string& name,
                                  const std::unordered_map<std::string, std::string>& rows) const {
  size_t bytes = 0;
  for (const auto& [k, v] : rows) bytes += k.size() + v.size() + 2;
  std::string out;
  out.reserve(bytes);
  for (const auto& [k, v] : rows) {
    out += k;
    out += ',';
    out += v;
    out += '\n';
  }
  return write_file_atomic(path(name), out);
}

Status TableStore::set(const std::string& table, const std::string& key, const std::string& value) {
  if (Status s = check_table_name(table); !s) return s;
  if (Status s = check_key(key); !s) return s;
  if (Status s = check_value(value); !s) return make_error("key '" + shown_key(key) + "': " + s.error());
  Table* t = find_or_create(table);
  std::lock_guard lock(t->mu);
  std::optional<std::string> old;
  if (auto it = t->rows.find(key); it != t->rows.end()) old = it->second;
  t->rows.insert_or_assign(key, value);
  if (Status s = write_snapshot(table, t->rows); !s) {
    if (old) {
      t->rows[key] = std::move(*old);
    } else {
      t->rows.erase(key);
    }
    return s;
  }
  return Ok{};
}

Result<bool> TableStore::del(const std::string& table, const std::string& key) {
  if (Status s = check_table_name(table); !s) return make_error(s.error());
  Table* t = find(table);
  if (!t) return make_error("no table '" + table + "'");
  std::lock_guard lock(t->mu);
  auto it = t->rows.find(key);
  if (it == t->rows.end()) return false;
  std::string old = std::move(it->second);
  t->rows.erase(it);
  if (Status s = write_snapshot(table, t->rows); !s) {
    t->rows.emplace(key, std::move(old));
    return make_error(s.error());
  }
  return true;
}

Result<std::optional<std::string>> TableStore::get(const std::string& table, const std::string& key) const {
  if (Status s = check_table_name(table); !s) return make_error(s.error());
  Table* t = find(table);
  if (!t) return make_error("no table '" + table + "'");
  std::lock_guard lock(t->mu);
  auto it = t->rows.find(key);
  if (it == t->rows.end()) return std::optional<std::string>{};
  return std::optional<std::string>(it->second);
}

Result<BulkResult> TableStore::bulk(const std::string& table, std::string_view csv, const std::string& source,
                                    bool replace) {
  if (Status s = check_table_name(table); !s) return make_error(s.error());
  auto rows = parse_csv(csv, source);
  if (!rows) return make_error(rows.error());
  BulkResult r;
  r.rows = rows->size();
  Table* t = find_or_create(table);
  std::lock_guard lock(t->mu);

  if (replace) {
    std::unordered_map<std::string, std::string> fresh;
    fresh.reserve(rows->size());
    for (auto& [k, v] : rows.value()) {
      bool had = t->rows.count(k) != 0;
      auto [it, inserted] = fresh.insert_or_assign(std::move(k), std::move(v));
      if (inserted) ++(had ? r.updated : r.inserted);
    }
    if (Status s = write_snapshot(table, fresh); !s) return make_error(s.error());
    t->rows.swap(fresh);
    r.size = t->rows.size();
    return r;
  }

  // Upsert, remembering what each row replaced so a failed snapshot write can be undone.
  std::vector<std::pair<std::string, std::optional<std::string>>> undo;
  undo.reserve(rows->size());
  t->rows.reserve(t->rows.size() + rows->size());
  for (auto& [k, v] : rows.value()) {
    auto it = t->rows.find(k);
    if (it == t->rows.end()) {
      undo.emplace_back(k, std::nullopt);
      t->rows.emplace(std::move(k), std::move(v));
      ++r.inserted;
    } else {
      undo.emplace_back(k, std::move(it->second));
      it->second = std::move(v);
      ++r.updated;
    }
  }
  if (Status s = write_snapshot(table, t->rows); !s) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
      if (it->second) {
        t->rows[it->first] = std::move(*it->second);
      } else {
        t->rows.erase(it->first);
      }
    }
    return make_error(s.error());
  }
  r.size = t->rows.size();
  return r;
}

std::optional<size_t> TableStore::rows(const std::string& name) const {
  Table* t = find(name);
  if (!t) return std::nullopt;
  std::lock_guard lock(t->mu);
  return t->rows.size();
}

std::vector<TableInfo> TableStore::list() const {
  std::vector<std::pair<std::string, Table*>> all;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, t] : tables_) all.emplace_back(name, t.get());
  }
  std::vector<TableInfo> out;
  for (const auto& [name, t] : all) {
    std::lock_guard lock(t->mu);
    out.push_back({name, t->rows.size()});
  }
  std::sort(out.begin(), out.end(), [](const TableInfo& a, const TableInfo& b) { return a.name < b.name; });
  return out;
}

}  // namespace imf::control
