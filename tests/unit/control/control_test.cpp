// The control actions against a scripted dataplane: what is on disk and what the dataplane was
// told after loads that succeed, fail at each step, or find the dataplane down.
#include "daemon/control.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <utility>

#include "daemon/dispatch.h"
#include "policy/policy_config.h"
#include "records/chain.h"
#include "records/digest.h"
#include "rules/artifact.h"
#include "temp_dir.h"

namespace imf::control {
namespace {

class FakeDataplane : public DataplaneLink {
 public:
  enum class Mode { kUp, kDown, kRefuseInstalls };
  using Table = std::map<std::string, std::string>;

  DataplaneReply call(const json::Value& request, std::chrono::milliseconds) override {
    DataplaneReply r = answer(request);
    // After the answer, outside the lock: what happens between a status and what follows it.
    if (request.find("cmd")->as_string() == "status" && after_status) std::exchange(after_status, nullptr)();
    return r;
  }
  std::string where() const override { return "fake"; }

  std::vector<std::string> installs() { return calls_of("\"install\""); }
  // account.set, account.del, account.get and accounts.load requests.
  std::vector<std::string> account_calls() { return calls_of("\"cmd\":\"account"); }
  // The requests whose cmd starts with "table.".
  std::vector<std::string> table_calls() { return calls_of("\"cmd\":\"table."); }

  std::mutex mu;
  Mode mode = Mode::kUp;
  uint64_t running = 0;
  std::vector<std::string> calls;
  // An imfd with tables (its status lists them) or an older one without.
  bool keeps_tables = false;
  std::map<std::string, Table> tables;
  std::string refuse_tables;  // error text to refuse every table.* request with
  // An imfd with accounts (its status has "accounts"): account -> row text.
  bool keeps_accounts = false;
  std::map<std::string, std::string> accounts;
  std::string refuse_accounts;  // error text to refuse every account request with
  double uptime_s = 12;
  std::function<void()> after_status;  // runs once, after the next status is answered

 private:
  std::vector<std::string> calls_of(const std::string& needle) {
    std::lock_guard lock(mu);
    std::vector<std::string> out;
    for (const std::string& c : calls) {
      if (c.find(needle) != std::string::npos) out.push_back(c);
    }
    return out;
  }

  DataplaneReply answer(const json::Value& request) {
    std::lock_guard lock(mu);
    std::string cmd = request.find("cmd")->as_string();
    calls.push_back(json::to_string(request));
    DataplaneReply r;
    if (mode == Mode::kDown) {
      r.kind = DataplaneReply::Kind::kUnreachable;
      r.error = "dataplane at fake: connect: Connection refused";
      return r;
    }
    r.kind = DataplaneReply::Kind::kOk;
    r.body = json::Object{};
    r.body.set("ok", true);
    if (cmd.rfind("table.", 0) == 0) return table_answer(cmd, request, r);
    if (cmd.rfind("account", 0) == 0) return account_answer(cmd, request, r);
    if (cmd == "install") {
      if (mode == Mode::kRefuseInstalls) {
        r.kind = DataplaneReply::Kind::kRejected;
        r.error = "out of hugepage memory";
        return r;
      }
      // The real agent reads the artifact it is given: so does the fake, to prove it is whole.
      auto a = rules::read_artifact(request.find("artifact")->as_string());
      if (!a || static_cast<int64_t>(a->version) != request.find("version")->as_int()) {
        r.kind = DataplaneReply::Kind::kRejected;
        r.error = a ? "wrong version" : a.error();
        return r;
      }
      running = a->version;
      r.body.set("version", running);
      r.body.set("load_ms", 1.5);
      r.body.set("swap_ms", 0.25);
    } else if (cmd == "status") {
      r.body.set("version", running);
      r.body.set("uptime_s", uptime_s);
      if (keeps_tables) {
        json::Array list;
        for (const auto& [name, rows] : tables) list.push_back(json::Object{{"table", name}, {"rows", rows.size()}});
        r.body.set("tables", std::move(list));
      }
      if (keeps_accounts)
        r.body.set("accounts", json::Object{{"rows", accounts.size()},
                                            {"capacity", 1 << 24},
                                            {"memory_bytes", 4096},
                                            {"markers", json::Array{"press"}}});
    } else if (cmd == "stats") {
      r.body.set("version", running);
      r.body.set("counters", json::Object{{"rx_packets", 10}});
    }
    return r;
  }

  DataplaneReply account_answer(const std::string& cmd, const json::Value& request, DataplaneReply r) {
    auto refuse = [&](std::string why) {
      r.kind = DataplaneReply::Kind::kRejected;
      r.error = std::move(why);
      return r;
    };
    if (!keeps_accounts) return refuse("unknown cmd '" + cmd + "'");
    if (!refuse_accounts.empty()) return refuse(refuse_accounts);
    auto account_of = [](const std::string& row) { return row.substr(0, row.find(',')); };
    if (cmd == "accounts.load") {
      // Reads the snapshot as imfd does: the whole table is replaced by its rows.
      std::ifstream in(request.find("path")->as_string());
      if (!in) return refuse(request.find("path")->as_string() + ": cannot open");
      std::map<std::string, std::string> fresh;
      for (std::string line; std::getline(in, line);) {
        if (!policy::parse_account_row(line)) return refuse("bad row: " + line);
        fresh[account_of(line)] = line;
      }
      accounts = std::move(fresh);
      r.body.set("rows", accounts.size());
      r.body.set("ms", 0.5);
    } else if (cmd == "account.set") {
      const std::string& row = request.find("row")->as_string();
      if (!policy::parse_account_row(row)) return refuse("bad row");
      accounts[account_of(row)] = row;
    } else if (cmd == "account.del") {
      r.body.set("deleted", accounts.erase(request.find("account")->as_string()) == 1);
    } else if (cmd == "account.get") {
      auto it = accounts.find(request.find("account")->as_string());
      r.body.set("row", it == accounts.end() ? json::Value() : json::Value(it->second));
    } else {
      return refuse("unknown cmd '" + cmd + "'");
    }
    return r;
  }

  DataplaneReply table_answer(const std::string& cmd, const json::Value& request, DataplaneReply r) {
    auto refuse = [&](std::string why) {
      r.kind = DataplaneReply::Kind::kRejected;
      r.error = std::move(why);
      return r;
    };
    if (!keeps_tables) return refuse("unknown cmd '" + cmd + "' (install, status, stats)");
    if (!refuse_tables.empty()) return refuse(refuse_tables);
    const std::string& name = request.find("table")->as_string();
    if (cmd == "table.load") {
      // Reads the snapshot as imfd does: a file of key,value lines, split at the first comma.
      std::ifstream in(request.find("path")->as_string());
      if (!in) return refuse(request.find("path")->as_string() + ": cannot open");
      Table t;
      for (std::string line; std::getline(in, line);) {
        size_t comma = line.find(',');
        if (comma == std::string::npos) return refuse("bad snapshot line: " + line);
        t[line.substr(0, comma)] = line.substr(comma + 1);
      }
      tables[name] = std::move(t);
      r.body.set("table", name);
      r.body.set("rows", tables[name].size());
      r.body.set("ms", 0.5);
    } else if (cmd == "table.set") {
      tables[name][request.find("key")->as_string()] = request.find("value")->as_string();
    } else if (cmd == "table.del") {
      auto it = tables.find(name);
      if (it == tables.end()) return refuse("no table '" + name + "'");
      r.body.set("deleted", it->second.erase(request.find("key")->as_string()) == 1);
    }
    return r;
  }
};

const char* kV1 = "a drop payload \"alpha\"\nb alert topic /beta/\n";
const char* kV2 = "a drop payload \"alpha\"\nc drop payload /gamma+/i\n";

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ControlConfig c;
    c.state_dir = dir.path();
    c.keep_versions = 3;
    control = std::make_unique<Control>(c, dp);
    ASSERT_TRUE(control->init().ok());
  }
  json::Value load(const std::string& text) {
    auto r = control->rules_load(text, "t.rules", [&](const std::string& p) { progress.push_back(p); });
    EXPECT_TRUE(r.ok()) << r.error();
    return r.ok() ? r.value() : json::Value();
  }
  std::string active_marker() { return testing::read_file(dir / "rules/active"); }
  std::vector<uint64_t> kept() { return VersionStore(dir / "rules").versions().value(); }

  testing::TempDir dir;
  FakeDataplane dp;
  std::unique_ptr<Control> control;
  std::vector<std::string> progress;
};

TEST_F(ControlTest, LoadWritesArtifactInstallsThenMarksActive) {
  json::Value r = load(kV1);
  EXPECT_EQ(r.find("version")->as_int(), 1);
  EXPECT_TRUE(r.find("previous")->is_null());
  EXPECT_EQ(r.find("rules")->as_int(), 2);
  EXPECT_TRUE(r.find("dataplane")->find("installed")->as_bool());
  EXPECT_EQ(active_marker(), "1\n");
  EXPECT_EQ(dp.running, 1u);
  ASSERT_EQ(dp.installs().size(), 1u);
  EXPECT_EQ(dp.installs()[0], "{\"cmd\":\"install\",\"version\":1,\"artifact\":\"" + dir / "rules/1.imfrules" + "\"}");
  EXPECT_EQ(progress, (std::vector<std::string>{"parsing t.rules", "compiling 2 rules",
                                                progress[2],  // "compiled 2 rules in N ms"
                                                "writing version 1", "installing version 1 in the dataplane"}));
  auto a = rules::read_artifact(dir / "rules/1.imfrules");
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(a->rules_text, kV1);
  EXPECT_EQ(a->source, "t.rules");
}

TEST_F(ControlTest, ABadRuleSetChangesNothingAndNamesRuleAndLine) {
  load(kV1);
  auto bad = control->rules_load("a drop payload \"x\"\nbroken drop payload /(a)\\1/\n", "bad.rules", [](auto&) {});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().rfind("bad.rules:2: rule 'broken': pattern rejected by Hyperscan", 0), 0u) << bad.error();
  auto unparsable = control->rules_load("x block payload \"y\"\n", "bad.rules", [](auto&) {});
  ASSERT_FALSE(unparsable.ok());
  EXPECT_EQ(unparsable.error(), "bad.rules:1: rule 'x': unknown action 'block' (allowed: drop, alert)");
  EXPECT_EQ(active_marker(), "1\n");
  EXPECT_EQ(kept(), (std::vector<uint64_t>{1}));
  EXPECT_EQ(dp.installs().size(), 1u);
  EXPECT_EQ(dp.running, 1u);
}

TEST_F(ControlTest, ARefusedInstallKeepsThePreviousVersionAndRemovesTheNewArtifact) {
  load(kV1);
  dp.mode = FakeDataplane::Mode::kRefuseInstalls;
  auto r = control->rules_load(kV2, "t.rules", [](auto&) {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "dataplane refused version 2: out of hugepage memory; version 1 stays active");
  EXPECT_EQ(active_marker(), "1\n");
  EXPECT_EQ(kept(), (std::vector<uint64_t>{1}));
  EXPECT_EQ(dp.running, 1u);
  dp.mode = FakeDataplane::Mode::kUp;
  EXPECT_EQ(load(kV2).find("version")->as_int(), 3);  // 2 was handed out once: never reused
}

TEST_F(ControlTest, AnUnreachableDataplaneStillGetsTheLoadOnDiskAndAResyncLater) {
  load(kV1);
  dp.mode = FakeDataplane::Mode::kDown;
  json::Value r = load(kV2);
  const json::Value* d = r.find("dataplane");
  EXPECT_FALSE(d->find("installed")->as_bool());
  EXPECT_EQ(d->find("note")->as_string(),
            "version 2 is active on disk; the dataplane will be synced when it is reachable");
  EXPECT_EQ(active_marker(), "2\n");
  EXPECT_EQ(dp.running, 1u);

  control->resync();  // still down: nothing happens, nothing breaks
  EXPECT_EQ(dp.running, 1u);
  dp.mode = FakeDataplane::Mode::kUp;
  control->resync();
  EXPECT_EQ(dp.running, 2u);
  size_t installs = dp.installs().size();
  control->resync();  // in sync: no further install
  EXPECT_EQ(dp.installs().size(), installs);
}

TEST_F(ControlTest, ResyncInstallsTheActiveVersionIntoARestartedDataplane) {
  load(kV1);
  load(kV2);
  dp.running = 0;  // a fresh imfd that came up without rules
  control->resync();
  EXPECT_EQ(dp.running, 2u);
  dp.running = 1;  // or with an old version
  control->resync();
  EXPECT_EQ(dp.running, 2u);
}

TEST_F(ControlTest, RollbackReinstallsAKeptVersionWithoutCompiling) {
  load(kV1);
  load(kV2);
  auto r = control->rules_rollback(std::nullopt, [](auto&) {});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->find("version")->as_int(), 1);
  EXPECT_EQ(r->find("previous")->as_int(), 2);
  EXPECT_EQ(active_marker(), "1\n");
  EXPECT_EQ(dp.running, 1u);
  EXPECT_EQ(kept(), (std::vector<uint64_t>{1, 2}));  // rollback deletes nothing

  auto again = control->rules_rollback(std::nullopt, [](auto&) {});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error(), "nothing to roll back to: no kept version older than the active version 1");
  auto missing = control->rules_rollback(7, [](auto&) {});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("cannot roll back to version 7: "), std::string::npos) << missing.error();
  EXPECT_NE(missing.error().find("(kept versions: 1, 2)"), std::string::npos) << missing.error();
  EXPECT_EQ(active_marker(), "1\n");
  ASSERT_TRUE(control->rules_rollback(2, [](auto&) {}).ok());
  EXPECT_EQ(dp.running, 2u);
}

TEST_F(ControlTest, KeepsTheLastNVersionsButNeverTheActive) {
  load(kV1);
  ASSERT_TRUE(control->rules_load(kV2, "t.rules", [](auto&) {}).ok());
  ASSERT_TRUE(control->rules_rollback(1, [](auto&) {}).ok());  // 1 active, 2 newest
  for (int i = 0; i < 3; ++i) {
    dp.mode = FakeDataplane::Mode::kDown;  // loads while down still become active...
    load(kV2);
  }
  // 5 active now; keep 3 newest (3, 4, 5); 1 and 2 pruned.
  EXPECT_EQ(kept(), (std::vector<uint64_t>{3, 4, 5}));
  ASSERT_TRUE(control->rules_rollback(3, [](auto&) {}).ok());
  load(kV1);  // 6 active; newest three are 4, 5, 6; 3 was active before but is not now
  EXPECT_EQ(kept(), (std::vector<uint64_t>{4, 5, 6}));
}

TEST_F(ControlTest, RollbackToAVersionBeyondKeepVersionsKeepsIt) {
  dp.mode = FakeDataplane::Mode::kDown;
  for (int i = 0; i < 3; ++i) load(kV1);
  // Restarted with keep_versions 2: version 1 is beyond the newest two, but once active it stays.
  ControlConfig c;
  c.state_dir = dir.path();
  c.keep_versions = 2;
  Control fewer(c, dp);
  ASSERT_TRUE(fewer.init().ok());
  auto r = fewer.rules_rollback(1, [](auto&) {});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(json::to_string(*r->find("pruned")), "[]");
  EXPECT_EQ(kept(), (std::vector<uint64_t>{1, 2, 3}));
  ASSERT_TRUE(fewer.rules_load(kV2, "t.rules", [](auto&) {}).ok());
  EXPECT_EQ(kept(), (std::vector<uint64_t>{3, 4}));
}

TEST_F(ControlTest, ShowListAndDiff) {
  load(kV1);
  load(kV2);
  auto show = control->rules_show(std::nullopt);
  ASSERT_TRUE(show.ok()) << show.error();
  EXPECT_EQ(show->find("version")->as_int(), 2);
  EXPECT_TRUE(show->find("active")->as_bool());
  EXPECT_EQ(show->find("text")->as_string(), kV2);
  auto old = control->rules_show(1);
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->find("active")->as_bool());
  EXPECT_FALSE(control->rules_show(9).ok());

  auto list = control->rules_list();
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->find("active")->as_int(), 2);
  ASSERT_EQ(list->find("versions")->as_array().size(), 2u);
  EXPECT_EQ(list->find("versions")->as_array()[0].find("rules")->as_int(), 2);

  auto diff = control->rules_diff(1, 2);
  ASSERT_TRUE(diff.ok()) << diff.error();
  EXPECT_EQ(json::to_string(*diff->find("added")), R"([{"id":"c","line":2,"text":"c drop payload /gamma+/i"}])");
  EXPECT_EQ(json::to_string(*diff->find("removed")), R"([{"id":"b","line":2,"text":"b alert topic /beta/"}])");
  EXPECT_TRUE(diff->find("changed")->as_array().empty());
  auto missing = control->rules_diff(1, 5);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().rfind("version 5 is not kept: ", 0), 0u) << missing.error();
}

TEST_F(ControlTest, StatusStatsAndHealthReportTheDataplane) {
  load(kV1);
  auto st = control->status();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->find("control")->find("active_version")->as_int(), 1);
  EXPECT_EQ(st->find("control")->find("last_load")->find("version")->as_int(), 1);
  EXPECT_TRUE(st->find("dataplane")->find("reachable")->as_bool());
  EXPECT_TRUE(st->find("dataplane")->find("in_sync")->as_bool());
  auto stats = control->stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->find("ok"), nullptr);
  EXPECT_EQ(stats->find("counters")->find("rx_packets")->as_int(), 10);

  dp.mode = FakeDataplane::Mode::kDown;
  auto down = control->stats();
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.error(), "dataplane at fake: connect: Connection refused");
  auto h = control->health();
  ASSERT_TRUE(h.ok());
  EXPECT_FALSE(h->find("dataplane")->find("reachable")->as_bool());
  auto st2 = control->status();
  ASSERT_TRUE(st2.ok());
  EXPECT_FALSE(st2->find("dataplane")->find("reachable")->as_bool());
  EXPECT_EQ(st2->find("control")->find("active_version")->as_int(), 1);
}

TEST_F(ControlTest, ARestartedControlContinuesNumberingAndKeepsTables) {
  load(kV1);
  ASSERT_TRUE(control->table_set("m", "alice", "x").ok());
  ControlConfig c;
  c.state_dir = dir.path();
  Control again(c, dp);
  ASSERT_TRUE(again.init().ok());
  auto r = again.rules_load(kV2, "t.rules", [](auto&) {});
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->find("version")->as_int(), 2);
  auto g = again.table_get("m", "alice");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->find("value")->as_string(), "x");
}

// ---------------------------------------------------------------------------------- tables
using Table = FakeDataplane::Table;

constexpr const char* kNoTables =
    R"({"applied":false,"note":"the dataplane does not keep tables (its status lists none); nothing to apply"})";

class TableSyncTest : public ControlTest {
 protected:
  void SetUp() override {
    ControlTest::SetUp();
    dp.keeps_tables = true;
    control->resync();  // learns that the dataplane keeps tables; there are none yet
  }
  std::string load_call(const std::string& table) {
    return "{\"cmd\":\"table.load\",\"table\":\"" + table + "\",\"path\":\"" + dir / "tables/" + table + ".csv\"}";
  }
  std::string dataplane_of(const Result<json::Value>& r) {
    EXPECT_TRUE(r.ok()) << r.error();
    return r.ok() ? json::to_string(*r->find("dataplane")) : "";
  }
  std::string resync_error() {
    auto st = control->status();
    const json::Value* e = st->find("control")->find("resync_error");
    return e ? e->as_string() : "";
  }
};

TEST_F(TableSyncTest, SetDelAndBulkAreForwardedAfterTheSnapshotIsWritten) {
  EXPECT_TRUE(dp.table_calls().empty());
  EXPECT_EQ(dataplane_of(control->table_set("markers", "alice", "vip")), R"({"applied":true})");
  EXPECT_EQ(dataplane_of(control->table_del("markers", "alice")), R"({"applied":true})");
  auto bulk = control->table_bulk("markers", "bob,1\ncarol,2,x\n", "m.csv", false);
  EXPECT_EQ(dataplane_of(bulk), R"({"applied":true,"rows":2,"ms":0.5})");
  EXPECT_EQ(dp.table_calls(), (std::vector<std::string>{
                                  R"({"cmd":"table.set","table":"markers","key":"alice","value":"vip"})",
                                  R"({"cmd":"table.del","table":"markers","key":"alice"})",
                                  load_call("markers"),
                              }));
  EXPECT_EQ(dp.tables["markers"], (Table{{"bob", "1"}, {"carol", "2,x"}}));
  control->resync();  // the load after the bulk made the copies equal: nothing to send
  EXPECT_EQ(dp.table_calls().size(), 3u);
  EXPECT_EQ(resync_error(), "");
}

TEST_F(TableSyncTest, AChangeTheDataplaneMissedIsLoadedAtTheNextResync) {
  ASSERT_TRUE(control->table_bulk("m", "alice,vip\nbob,x\n", "m.csv", false).ok());
  dp.mode = FakeDataplane::Mode::kDown;
  // Same row count afterwards: only control's record of the missed change tells the copies apart.
  EXPECT_EQ(dataplane_of(control->table_set("m", "alice", "banned")),
            R"({"applied":false,"error":"dataplane at fake: connect: Connection refused",)"
            R"("note":"the table is stored; the next resync loads it into the dataplane"})");
  auto del = control->table_del("m", "bob");
  ASSERT_TRUE(del.ok());
  EXPECT_TRUE(del->find("deleted")->as_bool());
  EXPECT_FALSE(del->find("dataplane")->find("applied")->as_bool());
  ASSERT_TRUE(control->table_set("m", "bob", "x").ok());
  EXPECT_EQ(dp.tables["m"], (Table{{"alice", "vip"}, {"bob", "x"}}));

  control->resync();  // still down: nothing breaks
  dp.mode = FakeDataplane::Mode::kUp;
  size_t n = dp.table_calls().size();
  control->resync();
  ASSERT_EQ(dp.table_calls().size(), n + 1);
  EXPECT_EQ(dp.table_calls().back(), load_call("m"));
  EXPECT_EQ(dp.tables["m"], (Table{{"alice", "banned"}, {"bob", "x"}}));
  control->resync();
  EXPECT_EQ(dp.table_calls().size(), n + 1);
}

TEST_F(TableSyncTest, ResyncLoadsTablesWhoseRowCountsDiffer) {
  ASSERT_TRUE(control->table_bulk("m", "alice,vip\nbob,x\n", "m.csv", false).ok());
  ASSERT_TRUE(control->table_bulk("n", "carol,1\n", "n.csv", false).ok());
  size_t n = dp.table_calls().size();
  control->resync();
  EXPECT_EQ(dp.table_calls().size(), n);  // equal counts, nothing missed: nothing sent

  dp.tables["m"].erase("alice");  // the dataplane lost a row, and a whole table
  dp.tables.erase("n");
  control->resync();
  EXPECT_EQ(dp.table_calls(),
            (std::vector<std::string>{load_call("m"), load_call("n"), load_call("m"), load_call("n")}));
  EXPECT_EQ(dp.tables["m"], (Table{{"alice", "vip"}, {"bob", "x"}}));
  EXPECT_EQ(dp.tables["n"], (Table{{"carol", "1"}}));
}

TEST_F(TableSyncTest, AnEmptyTableIsNotCreatedInTheDataplane) {
  ASSERT_TRUE(control->table_set("m", "alice", "vip").ok());
  ASSERT_TRUE(control->table_del("m", "alice").ok());
  dp.tables.erase("m");
  size_t n = dp.table_calls().size();
  control->resync();
  EXPECT_EQ(dp.table_calls().size(), n);
  EXPECT_EQ(dp.tables.count("m"), 0u);
}

TEST_F(TableSyncTest, ResyncLoadsEveryTableAfterTheDataplaneRestarts) {
  ASSERT_TRUE(control->table_bulk("m", "alice,vip\nbob,x\n", "m.csv", false).ok());
  dp.tables["m"]["alice"] = "stale";  // a difference row counts cannot see
  dp.uptime_s = 13;                   // the same process, a second later
  size_t n = dp.table_calls().size();
  control->resync();
  EXPECT_EQ(dp.table_calls().size(), n);
  dp.uptime_s = 2;  // a new process (imfd may load the snapshots itself at start: same row counts)
  control->resync();
  ASSERT_EQ(dp.table_calls().size(), n + 1);
  EXPECT_EQ(dp.tables["m"]["alice"], "vip");
}

TEST_F(TableSyncTest, ARestartedControlLoadsEveryTableOnce) {
  ASSERT_TRUE(control->table_bulk("m", "alice,vip\nbob,x\n", "m.csv", false).ok());
  dp.tables["m"]["alice"] = "stale";  // e.g. control crashed between a snapshot and its forward
  ControlConfig c;
  c.state_dir = dir.path();
  Control again(c, dp);
  ASSERT_TRUE(again.init().ok());
  size_t n = dp.table_calls().size();
  again.resync();
  ASSERT_EQ(dp.table_calls().size(), n + 1);
  EXPECT_EQ(dp.table_calls().back(), load_call("m"));
  EXPECT_EQ(dp.tables["m"]["alice"], "vip");
  again.resync();
  EXPECT_EQ(dp.table_calls().size(), n + 1);
}

TEST_F(TableSyncTest, AChangeForwardedAfterTheStatusIsNotMistakenForADifference) {
  ASSERT_TRUE(control->table_bulk("m", "alice,vip\nbob,x\n", "m.csv", false).ok());
  size_t n = dp.table_calls().size();
  // The status says 2 rows; by the time they are compared both copies hold 3.
  dp.after_status = [&] { ASSERT_TRUE(control->table_set("m", "carol", "new").ok()); };
  control->resync();
  ASSERT_EQ(dp.table_calls().size(), n + 1);
  EXPECT_EQ(dp.table_calls().back(), R"({"cmd":"table.set","table":"m","key":"carol","value":"new"})");
  control->resync();
  EXPECT_EQ(dp.table_calls().size(), n + 1);
}

TEST_F(TableSyncTest, ARefusalIsReportedAndTheResyncRetries) {
  dp.refuse_tables = "table 'm' is full (capacity 1 rows)";
  EXPECT_EQ(dataplane_of(control->table_set("m", "alice", "vip")),
            R"j({"applied":false,"error":"dataplane refused: table 'm' is full (capacity 1 rows)",)j"
            R"("note":"the table is stored; the next resync loads it into the dataplane"})");
  auto g = control->table_get("m", "alice");  // the command itself succeeded
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->find("value")->as_string(), "vip");
  control->resync();
  EXPECT_EQ(resync_error(), "loading table m: dataplane refused: table 'm' is full (capacity 1 rows)");
  EXPECT_EQ(dp.table_calls().back(), load_call("m"));
  dp.refuse_tables.clear();
  control->resync();
  EXPECT_EQ(resync_error(), "");
  EXPECT_EQ(dp.tables["m"], (Table{{"alice", "vip"}}));
}

TEST_F(TableSyncTest, LimitsAreCheckedBeforeAnythingIsStoredOrSent) {
  std::string long_key(97, 'k');
  auto k = control->table_set("m", long_key, "v");
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.error(), "table m: key '" + long_key.substr(0, 40) + "...' is 97 bytes, over the limit of 96 bytes");
  auto v = control->table_set("m", "alice", std::string(257, 'v'));
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.error(), "table m: key 'alice': value is 257 bytes, over the limit of 256 bytes");
  auto b = control->table_bulk("m", "ok,1\nbob," + std::string(300, 'v') + "\n", "m.csv", false);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error(), "m.csv:2: key 'bob': value is 300 bytes, over the limit of 256 bytes");
  auto d = control->table_del("absent", "k");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error(), "no table 'absent'");
  EXPECT_TRUE(dp.table_calls().empty());
  EXPECT_TRUE(dp.tables.empty());
}

TEST_F(ControlTest, ADataplaneWithoutTablesIsSentNoneAndNothingFails) {
  control->resync();  // its status has no "tables"
  EXPECT_EQ(json::to_string(*control->table_set("m", "alice", "vip")->find("dataplane")), kNoTables);
  EXPECT_EQ(json::to_string(*control->table_bulk("m", "bob,1\n", "m.csv", false)->find("dataplane")), kNoTables);
  EXPECT_EQ(json::to_string(*control->table_del("m", "bob")->find("dataplane")), kNoTables);
  control->resync();
  EXPECT_TRUE(dp.table_calls().empty());
  auto st = control->status();
  EXPECT_EQ(st->find("control")->find("resync_error"), nullptr);

  // Replaced by an imfd that keeps tables: it gets them at the next resync.
  dp.keeps_tables = true;
  dp.uptime_s = 1;
  control->resync();
  EXPECT_EQ(dp.table_calls().size(), 1u);
  EXPECT_EQ(dp.tables["m"], (Table{{"alice", "vip"}}));
}

// ---------------------------------------------------------------------------------- accounts
class AccountsTest : public ControlTest {
 protected:
  static constexpr int64_t kNow = 1800000000;  // unix seconds: 2027-01-15T08:00:00Z

  void SetUp() override {
    dp.keeps_accounts = true;
    start();
  }
  // (Re)starts the control process on the same state directory.
  void start(const std::string& policy = "") {
    control.reset();
    ControlConfig c;
    c.state_dir = dir.path();
    c.appliance_id = "unit";
    if (!policy.empty()) {
      testing::write_file(dir / "policy.conf", policy);
      c.policy_file = dir / "policy.conf";
    }
    control = std::make_unique<Control>(c, dp);
    control->set_clock([this] { return now_s * 1000000000; });
    Status s = control->init();
    ASSERT_TRUE(s.ok()) << s.error();
    control->resync();  // learns that the dataplane keeps accounts, loads them once
  }
  std::vector<json::Value> records(const std::string& sub = "records", const std::string& source = "control") {
    records::QueryFilter f;
    auto lines = records::query({{dir / sub, source}}, f);
    EXPECT_TRUE(lines.ok()) << lines.error();
    std::vector<json::Value> out;
    for (const std::string& l : lines.value()) out.push_back(json::parse(l).value());
    return out;
  }
  static std::string str(const json::Value& v, const char* k) {
    const json::Value* m = v.find(k);
    return m ? (m->is_string() ? m->as_string() : json::to_string(*m)) : "<absent>";
  }
  Result<json::Value> set(AccountSetArgs a, uid_t uid = 1000) { return control->account_set(a, uid); }
  static AccountSetArgs args(const std::string& account) {
    AccountSetArgs a;
    a.account = account;
    return a;
  }
  std::string account_row(const std::string& account) {
    auto r = control->account_show(account);
    return r.ok() && r->find("row") ? r->find("row")->as_string() : "";
  }
  std::string time_of(int64_t unix_s) { return records::format_time(unix_s * 1000000000); }
  records::Key key() { return records::load_or_create_key(dir / "digest.key").value(); }

  int64_t now_s = kNow;
};

TEST_F(AccountsTest, SetRecordsStoresAndForwardsEachChange) {
  AccountSetArgs a = args("alice");
  a.markers = std::vector<std::string>{"verified_publisher", "press"};
  a.state = "suspended";
  a.for_duration = "2h";
  a.reason = "spam wave";
  auto r = set(a);
  ASSERT_TRUE(r.ok()) << r.error();
  const std::string row = "alice,press;verified_publisher,suspended,1800007200,";
  EXPECT_EQ(r->find("row")->as_string(), row);
  EXPECT_EQ(json::to_string(*r->find("changed")), R"({"markers":true,"measure":true})");
  EXPECT_EQ(json::to_string(*r->find("records")), "[1,2]");
  EXPECT_EQ(json::to_string(*r->find("dataplane")), R"({"applied":true})");
  EXPECT_EQ(dp.account_calls().back(), R"({"cmd":"account.set","row":")" + row + R"("})");
  EXPECT_EQ(dp.accounts["alice"], row);

  auto recs = records();
  ASSERT_EQ(recs.size(), 2u);
  EXPECT_EQ(str(recs[0], "kind"), "markers");
  EXPECT_EQ(str(recs[0], "account"), "alice");
  EXPECT_EQ(str(recs[0], "markers_before"), "[]");
  EXPECT_EQ(str(recs[0], "markers_after"), R"(["press","verified_publisher"])");
  EXPECT_EQ(str(recs[0], "cause"), "operator");
  EXPECT_EQ(str(recs[0], "peer_uid"), "1000");
  EXPECT_EQ(str(recs[0], "reason"), "spam wave");
  EXPECT_EQ(str(recs[1], "kind"), "state_change");
  EXPECT_EQ(str(recs[1], "state_before"), "none");
  EXPECT_EQ(str(recs[1], "state_after"), "suspended");
  EXPECT_EQ(str(recs[1], "until"), time_of(kNow + 7200));
  EXPECT_EQ(str(recs[1], "rate"), "null");
  EXPECT_EQ(str(recs[1], "cause"), "operator");
  EXPECT_EQ(str(recs[1], "reason"), "spam wave");
  EXPECT_EQ(str(recs[1], "appliance"), "unit");
  EXPECT_EQ(str(recs[1], "time"), time_of(kNow));

  // Restricted at a rate of its own; without --until the policy's expiry applies (1d).
  a = args("alice");
  a.state = "restricted";
  a.rate = "5/1m";
  r = set(a, 0);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->find("row")->as_string(), "alice,press;verified_publisher,restricted,1800086400,5/60s");
  recs = records();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(str(recs[2], "state_before"), "suspended");
  EXPECT_EQ(str(recs[2], "state_after"), "restricted");
  EXPECT_EQ(str(recs[2], "rate"), "5/60s");
  EXPECT_EQ(str(recs[2], "peer_uid"), "0");
  EXPECT_EQ(recs[2].find("reason"), nullptr);

  // Markers only: one markers record, the measure stays.
  a = args("alice");
  a.add_markers = {"bot"};
  a.remove_markers = {"press", "absent"};
  r = set(a);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->find("row")->as_string(), "alice,bot;verified_publisher,restricted,1800086400,5/60s");
  recs = records();
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(str(recs[3], "kind"), "markers");
  EXPECT_EQ(str(recs[3], "markers_after"), R"(["bot","verified_publisher"])");

  // The same again changes nothing and records nothing.
  r = set(a);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(json::to_string(*r->find("changed")), R"({"markers":false,"measure":false})");
  EXPECT_EQ(records().size(), 4u);
  EXPECT_EQ(dp.accounts["alice"], "alice,bot;verified_publisher,restricted,1800086400,5/60s");
}

struct BadSet {
  std::function<void(AccountSetArgs&)> change;
  std::string error;  // the message, or its beginning when it ends in "..."
};

TEST_F(AccountsTest, ValidationErrorsNameTheOptionAndChangeNothing) {
  std::vector<BadSet> cases = {
      {[](auto& a) { a.state = "frozen"; },
       "--state 'frozen': not one of none, warned, restricted, suspended, shutdown"},
      {[](auto& a) {
         a.until = "2027-02-01";
         a.for_duration = "1h";
       },
       "--until and --for: give one of them"},
      {[](auto& a) {
         a.state = "shutdown";
         a.for_duration = "1h";
       },
       "--for: a state of shutdown does not lapse (only warned, restricted and suspended do)"},
      {[](auto& a) { a.until = "2027-02-01"; },
       "--until: a state of none does not lapse (only warned, restricted and suspended do)"},
      {[](auto& a) {
         a.state = "warned";
         a.rate = "5/1m";
       },
       "--rate: only for a restricted account (give --state restricted)"},
      {[](auto& a) {
         a.state = "restricted";
         a.rate = "five";
       },
       "--rate: ..."},
      {[](auto& a) {
         a.state = "warned";
         a.until = "yesterday";
       },
       "--until: ..."},
      {[](auto& a) {
         a.state = "warned";
         a.until = "2001-01-01";
       },
       "--until '2001-01-01': that is not in the future"},
      {[](auto& a) {
         a.state = "warned";
         a.for_duration = "soon";
       },
       "--for: ..."},
      {[](auto& a) {
         a.markers = std::vector<std::string>{"press", "Bad Marker"};
       },
       "--markers: marker name 'Bad Marker' may only use a-z, 0-9, '_', '.', '-'"},
      {[](auto& a) { a.add_markers = {""}; }, "--add-marker: marker name '' must be 1-32 characters"},
      {[](auto& a) { a.remove_markers = {"x y"}; },
       "--remove-marker: marker name 'x y' may only use a-z, 0-9, '_', '.', '-'"},
      {[](auto& a) { a.account = "a,b"; }, "account: ..."},
      {[](auto& a) { a.account = ""; }, "account: ..."},
      {[](auto& a) { a.reason = "two\nlines"; }, "--reason: holds a control character"},
      {[](auto& a) {
         a.markers = std::vector<std::string>{};
         for (int i = 0; i < 65; ++i) a.markers->push_back("m" + std::to_string(i));
       },
       "--markers: 65 markers, at most 64"},
  };
  for (const BadSet& c : cases) {
    AccountSetArgs a = args("alice");
    c.change(a);
    auto r = set(a);
    ASSERT_FALSE(r.ok()) << c.error;
    if (c.error.size() > 3 && c.error.substr(c.error.size() - 3) == "...") {
      EXPECT_EQ(r.error().rfind(c.error.substr(0, c.error.size() - 3), 0), 0u) << r.error();
    } else {
      EXPECT_EQ(r.error(), c.error);
    }
  }
  EXPECT_TRUE(records().empty());
  EXPECT_EQ(control->account_count()->find("rows")->as_int(), 0);
  EXPECT_TRUE(dp.accounts.empty());
  for (const std::string& call : dp.account_calls()) EXPECT_EQ(call.find("account.set"), std::string::npos) << call;
}

TEST_F(AccountsTest, SuspendedWithoutUntilTakesThePolicysExpiryShutdownNone) {
  AccountSetArgs a = args("bob");
  a.state = "suspended";
  ASSERT_TRUE(set(a).ok());
  EXPECT_EQ(account_row("bob"), "bob,,suspended,1800604800,");  // the default policy: 7 days
  a.state = "shutdown";
  ASSERT_TRUE(set(a).ok());
  EXPECT_EQ(account_row("bob"), "bob,,shutdown,,");
  auto recs = records();
  EXPECT_EQ(str(recs.back(), "state_after"), "shutdown");
  EXPECT_EQ(str(recs.back(), "until"), "null");

  start("expire suspended never\n");
  a = args("carol");
  a.state = "suspended";
  auto r = set(a);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "--state suspended needs --until or --for (the policy gives suspended no expiry)");
  a.until = "2027-03-01T00:00:00Z";
  ASSERT_TRUE(set(a).ok());
  EXPECT_EQ(account_row("carol"), "carol,,suspended,1803859200,");
}

TEST_F(AccountsTest, DelRecordsWhatGoesAndForwards) {
  AccountSetArgs a = args("alice");
  a.markers = std::vector<std::string>{"press"};
  a.state = "warned";
  ASSERT_TRUE(set(a).ok());
  auto d = control->account_del("alice", 1000);
  ASSERT_TRUE(d.ok()) << d.error();
  EXPECT_TRUE(d->find("deleted")->as_bool());
  EXPECT_EQ(json::to_string(*d->find("records")), "[3,4]");
  auto recs = records();
  ASSERT_EQ(recs.size(), 4u);
  EXPECT_EQ(str(recs[2], "kind"), "state_change");
  EXPECT_EQ(str(recs[2], "state_before"), "warned");
  EXPECT_EQ(str(recs[2], "state_after"), "none");
  EXPECT_EQ(str(recs[2], "deleted"), "true");
  EXPECT_EQ(str(recs[3], "kind"), "markers");
  EXPECT_EQ(str(recs[3], "markers_after"), "[]");
  EXPECT_EQ(dp.account_calls().back(), R"({"cmd":"account.del","account":"alice"})");
  EXPECT_EQ(dp.accounts.count("alice"), 0u);
  EXPECT_FALSE(control->account_show("alice")->find("found")->as_bool());

  d = control->account_del("nobody", 0);  // idempotent: still sent, nothing recorded
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->find("deleted")->as_bool());
  EXPECT_EQ(records().size(), 4u);
  EXPECT_EQ(dp.account_calls().back(), R"({"cmd":"account.del","account":"nobody"})");
}

TEST_F(AccountsTest, BulkLoadRecordsTheLoadAndEveryChangedMeasure) {
  std::vector<std::string> progress;
  auto p = [&](const std::string& t) { progress.push_back(t); };
  auto r = control->account_load("alice,press,,,\nbob,,warned,1800003600,\ncarol,,suspended,,\n", "a.csv", false, 0, p);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->find("rows")->as_int(), 3);
  EXPECT_EQ(r->find("inserted")->as_int(), 3);
  EXPECT_EQ(r->find("state_changes")->as_int(), 2);
  EXPECT_EQ(json::to_string(*r->find("records")), "[1,3]");
  EXPECT_EQ(json::to_string(*r->find("dataplane")), R"({"applied":true,"rows":3,"ms":0.5})");
  EXPECT_EQ(dp.account_calls().back(), R"({"cmd":"accounts.load","path":")" + dir / "accounts/accounts.csv" + R"("})");
  EXPECT_EQ(dp.accounts.size(), 3u);
  EXPECT_EQ(dp.accounts["bob"], "bob,,warned,1800003600,");
  EXPECT_EQ(progress.front(), "parsing a.csv");
  auto recs = records();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(json::to_string(recs[0]).find(R"("kind":"accounts_loaded","file":"a.csv","rows":3,"inserted":3,)"
                                          R"("updated":0,"removed":0,"replace":false,"state_changes":2,"peer_uid":0)"),
            json::to_string(recs[0]).find("\"kind\""))
      << json::to_string(recs[0]);
  EXPECT_EQ(str(recs[1], "account"), "bob");
  EXPECT_EQ(str(recs[1], "state_after"), "warned");
  EXPECT_EQ(str(recs[1], "until"), time_of(1800003600));
  EXPECT_EQ(str(recs[1], "bulk"), "true");
  EXPECT_EQ(str(recs[2], "account"), "carol");
  EXPECT_EQ(str(recs[2], "state_after"), "suspended");

  // A bad line: nothing stored, recorded or sent.
  size_t calls = dp.account_calls().size();
  auto bad = control->account_load("dave,,,,\neve,,banned,,\n", "b.csv", false, 0, p);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), "b.csv:2: state: unknown 'banned' (none, warned, restricted, suspended, shutdown)");
  EXPECT_EQ(records().size(), 3u);
  EXPECT_EQ(dp.account_calls().size(), calls);
  EXPECT_FALSE(control->account_show("dave")->find("found")->as_bool());

  // Replace: the accounts not in the file go, and their measures going are recorded.
  r = control->account_load("alice,press,,,\n", "c.csv", true, 0, p);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->find("removed")->as_int(), 2);
  recs = records();
  ASSERT_EQ(recs.size(), 6u);
  EXPECT_EQ(str(recs[3], "replace"), "true");
  for (size_t i : {4u, 5u}) {
    EXPECT_EQ(str(recs[i], "state_after"), "none");
    EXPECT_EQ(str(recs[i], "deleted"), "true");
  }
  EXPECT_EQ(dp.accounts, (std::map<std::string, std::string>{{"alice", "alice,press,,,"}}));
}

TEST_F(AccountsTest, ShowGivesTheStoredAndTheLiveRow) {
  AccountSetArgs a = args("alice");
  a.state = "warned";
  ASSERT_TRUE(set(a).ok());
  ASSERT_TRUE(control->report_add("alice", "spam", std::nullopt, 0).ok());
  auto r = control->account_show("alice");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->find("found")->as_bool());
  EXPECT_EQ(r->find("state")->as_string(), "warned");
  EXPECT_EQ(r->find("open_reports")->as_int(), 1);
  EXPECT_EQ(json::to_string(*r->find("dataplane")),
            R"({"reachable":true,"row":"alice,,warned,1800086400,","state":"warned","until":")" + time_of(1800086400) +
                R"(","in_sync":true})");
  dp.accounts["alice"] = "alice,,suspended,1800100000,";  // imfd escalated it
  r = control->account_show("alice");
  EXPECT_EQ(r->find("dataplane")->find("state")->as_string(), "suspended");
  EXPECT_FALSE(r->find("dataplane")->find("in_sync")->as_bool());
  r = control->account_show("bob");
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->find("found")->as_bool());
  EXPECT_TRUE(r->find("dataplane")->find("row")->is_null());
  dp.mode = FakeDataplane::Mode::kDown;
  r = control->account_show("alice");
  EXPECT_EQ(json::to_string(*r->find("dataplane")),
            R"({"reachable":false,"error":"dataplane at fake: connect: Connection refused"})");
  EXPECT_EQ(control->account_show("a,b").error().rfind("account: ", 0), 0u);
}

TEST_F(AccountsTest, ReportsOpenResolveAndEscalateAtTheThreshold) {
  start("report-threshold 2\n");
  std::string digest(64, 'c');
  auto r1 = control->report_add("bob", "threats in group chat", digest, 1000);
  ASSERT_TRUE(r1.ok()) << r1.error();
  EXPECT_EQ(r1->find("report")->as_int(), 1);
  EXPECT_TRUE(r1->find("escalation")->is_null());
  auto r2 = control->report_add("bob", "again", std::nullopt, 1000);
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->find("open_reports")->as_int(), 2);
  const json::Value* e = r2->find("escalation");
  ASSERT_TRUE(e && e->is_object()) << json::to_string(r2.value());
  EXPECT_EQ(e->find("state_before")->as_string(), "none");
  EXPECT_EQ(e->find("row")->as_string(), "bob,,warned,1800086400,");
  EXPECT_EQ(dp.accounts["bob"], "bob,,warned,1800086400,");
  auto recs = records();
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(str(recs[0], "kind"), "report_opened");
  EXPECT_EQ(str(recs[0], "report"), "1");
  EXPECT_EQ(str(recs[0], "digest"), digest);
  EXPECT_EQ(str(recs[0], "reason"), "threats in group chat");
  EXPECT_EQ(str(recs[1], "digest"), "null");
  EXPECT_EQ(str(recs[2], "kind"), "state_change");
  EXPECT_EQ(str(recs[2], "cause"), "reports");
  EXPECT_EQ(str(recs[2], "open_reports"), "2");
  EXPECT_EQ(str(recs[2], "state_after"), "warned");
  EXPECT_EQ(str(recs[2], "until"), time_of(1800086400));

  ASSERT_TRUE(control->report_add("bob", "3", std::nullopt, 0)->find("escalation")->is_null());
  auto r4 = control->report_add("bob", "4", std::nullopt, 0);
  EXPECT_EQ(r4->find("escalation")->find("row")->as_string(), "bob,,restricted,1800086400,10/60s");
  EXPECT_EQ(str(records().back(), "rate"), "10/60s");

  now_s += 90;  // how long reports wait is visible, so they can be handled in time
  auto list = control->report_list(true, std::string("bob"));
  ASSERT_EQ(list->find("reports")->as_array().size(), 4u);
  EXPECT_EQ(str(list->find("reports")->as_array()[0], "digest"), digest);
  EXPECT_EQ(list->find("reports")->as_array()[0].find("age_s")->as_int(), 90);
  EXPECT_EQ(control->status()->find("control")->find("reports")->find("oldest_open_age_s")->as_int(), 90);
  EXPECT_NE(control->metrics_text().find("imf_control_reports_oldest_open_seconds 90"), std::string::npos);
  auto res = control->report_resolve(1, "user warned", 1000);
  ASSERT_TRUE(res.ok()) << res.error();
  EXPECT_EQ(res->find("open_reports")->as_int(), 3);
  EXPECT_EQ(str(records().back(), "kind"), "report_resolved");
  EXPECT_EQ(str(records().back(), "note"), "user warned");
  EXPECT_EQ(str(records().back(), "account"), "bob");
  EXPECT_EQ(control->report_list(true, std::nullopt)->find("reports")->as_array().size(), 3u);
  EXPECT_EQ(str(control->report_list(false, std::nullopt)->find("reports")->as_array()[0], "status"), "resolved");

  size_t n = records().size();
  EXPECT_EQ(control->report_resolve(1, "", 0).error(), "report 1 is already resolved");
  EXPECT_EQ(control->report_resolve(99, "", 0).error(), "no report 99");
  EXPECT_EQ(control->report_add("bob", "x", std::string("zz"), 0).error(),
            "--digest: expected 64 hex digits, got 2 characters");
  EXPECT_EQ(control->report_add("bob", "", std::nullopt, 0).error(), "--reason: empty (1-500 bytes)");
  EXPECT_EQ(control->report_add("bo,b", "x", std::nullopt, 0).error().rfind("account: ", 0), 0u);
  EXPECT_EQ(records().size(), n);
}

TEST_F(AccountsTest, AShutDownAccountIsNotEscalatedFurther) {
  start("report-threshold 1\n");
  AccountSetArgs a = args("bob");
  a.state = "shutdown";
  ASSERT_TRUE(set(a).ok());
  auto r = control->report_add("bob", "x", std::nullopt, 0);
  EXPECT_EQ(json::to_string(*r->find("escalation")), R"({"note":"the account is shut down already"})");
  EXPECT_EQ(account_row("bob"), "bob,,shutdown,,");
}

TEST_F(AccountsTest, AccountsReportsAndRecordsSurviveARestart) {
  AccountSetArgs a = args("alice");
  a.markers = std::vector<std::string>{"press"};
  a.state = "warned";
  ASSERT_TRUE(set(a).ok());
  ASSERT_TRUE(control->report_add("bob", "spam", std::nullopt, 0).ok());
  ASSERT_TRUE(control->account_load("carol,,restricted,,\n", "c.csv", false, 0, [](auto&) {}).ok());
  uint64_t last = records().back().find("seq")->as_int();
  start();
  EXPECT_EQ(account_row("alice"), "alice,press,warned,1800086400,");
  EXPECT_EQ(account_row("carol"), "carol,,restricted,,");
  auto list = control->report_list(false, std::nullopt);
  ASSERT_EQ(list->find("reports")->as_array().size(), 1u);
  EXPECT_EQ(str(list->find("reports")->as_array()[0], "reason"), "spam");
  ASSERT_TRUE(control->report_resolve(1, "", 0).ok());
  EXPECT_EQ(static_cast<uint64_t>(records().back().find("seq")->as_int()), last + 1);
  auto v = control->records_verify();
  ASSERT_TRUE(v.ok());
  EXPECT_TRUE(v->find("ok")->as_bool()) << json::to_string(v.value());
}

TEST_F(AccountsTest, TheDataplanesStateChangesAreAppliedNotSentBackAndTheCursorPersists) {
  AccountSetArgs a = args("alice");
  a.state = "warned";
  ASSERT_TRUE(set(a).ok());
  size_t calls = dp.account_calls().size();
  records::ChainConfig cc;
  cc.dir = dir / "dataplane-records";
  cc.source = "dataplane";
  cc.appliance = "dp";
  auto w = records::ChainWriter::open(cc);
  ASSERT_TRUE(w.ok()) << w.error();
  auto append = [&](const std::string& fields) { ASSERT_TRUE(w.value()->append(kNow * 1000000000, fields).ok()); };
  append(
      R"("kind":"state_change","account":"alice","state_before":"warned","state_after":"restricted","until":1800090000)");
  append(R"("kind":"verdict","account":"alice","verdict":"drop")");
  append(R"("kind":"state_change","account":"zed","state_before":"none","state_after":"warned","until":0)");
  append(R"("kind":"state_change","account":"alice","state_before":"none","state_after":"suspended","until":0)");
  append(R"("kind":"state_change","state_before":"none","state_after":"warned","until":0)");
  ASSERT_TRUE(w.value()->flush().ok());

  auto n = control->follow_dataplane_records();
  ASSERT_TRUE(n.ok()) << n.error();
  EXPECT_EQ(n.value(), 5u);
  EXPECT_EQ(account_row("alice"), "alice,,restricted,1800090000,");
  EXPECT_EQ(account_row("zed"), "zed,,warned,,");
  EXPECT_EQ(testing::read_file(dir / "dataplane-records.cursor"), "5\n");
  std::vector<std::string> sets;
  for (const std::string& c : dp.account_calls()) {
    if (c.find("account.set") != std::string::npos) sets.push_back(c);
  }
  EXPECT_EQ(dp.account_calls().size() - calls, 2u);  // only the account.get of the two shows
  EXPECT_EQ(sets.size(), 1u);                        // alice's warned, before the records
  auto st = control->status();
  const json::Value* f = st->find("control")->find("records")->find("dataplane");
  EXPECT_EQ(str(*f, "read_seq"), "5");
  EXPECT_EQ(str(*f, "applied"), "2");
  EXPECT_EQ(str(*f, "stale"), "1");
  EXPECT_EQ(str(*f, "bad"), "1");
  EXPECT_EQ(str(*f, "head_seq"), "5");
  EXPECT_TRUE(records().size() == 1u) << "imfd's changes are its records, not control's";

  // A restart resumes after the cursor: nothing is applied twice.
  start();
  EXPECT_EQ(control->follow_dataplane_records().value(), 0u);
  append(R"("kind":"state_change","account":"zed","state_before":"warned","state_after":"none","until":0)");
  ASSERT_TRUE(w.value()->flush().ok());
  EXPECT_EQ(control->follow_dataplane_records().value(), 1u);
  EXPECT_EQ(account_row("zed"), "zed,,,,");
  EXPECT_EQ(testing::read_file(dir / "dataplane-records.cursor"), "6\n");

  // imfd's records directory emptied: its new chain is read from its first record.
  w.value().reset();
  std::filesystem::remove_all(dir / "dataplane-records");
  auto w2 = records::ChainWriter::open(cc);
  ASSERT_TRUE(w2.ok()) << w2.error();
  ASSERT_TRUE(
      w2.value()
          ->append(kNow * 1000000000,
                   R"("kind":"state_change","account":"zed","state_before":"none","state_after":"warned","until":0)")
          .ok());
  ASSERT_TRUE(w2.value()->flush().ok());
  EXPECT_EQ(control->follow_dataplane_records().value(), 1u);
  EXPECT_EQ(account_row("zed"), "zed,,warned,,");
  EXPECT_EQ(testing::read_file(dir / "dataplane-records.cursor"), "1\n");
}

TEST_F(AccountsTest, ResyncLoadsTheAccountsWhenImfdsCopyMayDiffer) {
  auto loads = [&] {
    size_t n = 0;
    for (const std::string& c : dp.account_calls()) n += c.find("accounts.load") != std::string::npos;
    return n;
  };
  EXPECT_EQ(loads(), 1u);  // once after this process started
  AccountSetArgs a = args("alice");
  a.state = "warned";
  ASSERT_TRUE(set(a).ok());
  control->resync();
  EXPECT_EQ(loads(), 1u);  // the same row count, nothing missed
  dp.accounts.erase("alice");
  control->resync();
  EXPECT_EQ(loads(), 2u);
  EXPECT_EQ(dp.accounts["alice"], "alice,,warned,1800086400,");

  // imfd escalated bob and then restarted: its record is applied before the load, so the load
  // keeps bob's escalation instead of undoing it.
  records::ChainConfig cc;
  cc.dir = dir / "dataplane-records";
  cc.source = "dataplane";
  cc.appliance = "dp";
  auto w = records::ChainWriter::open(cc);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w.value()
                  ->append(kNow * 1000000000, R"("kind":"state_change","account":"bob","state_before":"none",)"
                                              R"("state_after":"warned","until":1800001000)")
                  .ok());
  ASSERT_TRUE(w.value()->flush().ok());
  dp.uptime_s = 1;
  dp.accounts.clear();
  control->resync();
  EXPECT_EQ(loads(), 3u);
  EXPECT_EQ(dp.accounts["bob"], "bob,,warned,1800001000,");
  EXPECT_EQ(dp.accounts["alice"], "alice,,warned,1800086400,");
  auto st = control->status();
  EXPECT_EQ(st->find("control")->find("resync_error"), nullptr);
}

TEST_F(AccountsTest, AChangeTheDataplaneMissedIsStoredAndLoadedAtTheNextResync) {
  dp.mode = FakeDataplane::Mode::kDown;
  AccountSetArgs a = args("alice");
  a.state = "warned";
  auto r = set(a);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(json::to_string(*r->find("dataplane")),
            R"({"applied":false,"error":"dataplane at fake: connect: Connection refused",)"
            R"("note":"the account is stored; the next resync loads the accounts into the dataplane"})");
  EXPECT_EQ(account_row("alice"), "alice,,warned,1800086400,");
  control->resync();  // still down
  dp.mode = FakeDataplane::Mode::kUp;
  control->resync();
  EXPECT_EQ(dp.accounts["alice"], "alice,,warned,1800086400,");
  EXPECT_NE(dp.account_calls().back().find("accounts.load"), std::string::npos);

  dp.refuse_accounts = "account table full (capacity 1)";
  a = args("bob");
  ASSERT_TRUE(set(a).ok());
  control->resync();
  EXPECT_EQ(control->status()->find("control")->find("resync_error")->as_string(),
            "loading accounts: dataplane refused: account table full (capacity 1)");
}

TEST_F(AccountsTest, ADataplaneWithoutAccountsIsSentNone) {
  dp.keeps_accounts = false;
  start();
  size_t calls = dp.account_calls().size();  // those of the imfd with accounts SetUp started with
  AccountSetArgs a = args("alice");
  a.state = "warned";
  auto r = set(a);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(
      json::to_string(*r->find("dataplane")),
      R"({"applied":false,"note":"the dataplane does not keep accounts (its status has none); nothing to apply"})");
  control->resync();
  EXPECT_EQ(dp.account_calls().size(), calls);
  // Replaced by an imfd that keeps accounts: it gets them at the next resync.
  dp.keeps_accounts = true;
  control->resync();
  EXPECT_EQ(dp.accounts["alice"], "alice,,warned,1800086400,");
}

TEST_F(AccountsTest, RecordsVerifyQueryAndDigest) {
  AccountSetArgs a = args("alice");
  a.state = "warned";
  ASSERT_TRUE(set(a).ok());
  a = args("bob");
  a.state = "suspended";
  ASSERT_TRUE(set(a).ok());
  auto v = control->records_verify();
  ASSERT_TRUE(v.ok()) << v.error();
  EXPECT_TRUE(v->find("ok")->as_bool()) << json::to_string(v.value());
  const json::Array& chains = v->find("chains")->as_array();
  ASSERT_EQ(chains.size(), 2u);
  EXPECT_EQ(str(chains[0], "records"), "2");
  EXPECT_EQ(str(chains[1], "note"), "no such directory: imfd has written no records yet");

  auto q = control->records_query({std::string("alice"), std::nullopt, std::nullopt, false});
  ASSERT_TRUE(q.ok()) << q.error();
  ASSERT_EQ(q->find("count")->as_int(), 1);
  EXPECT_EQ(str(q->find("records")->as_array()[0], "account"), "alice");
  q = control->records_query({std::nullopt, std::nullopt, std::nullopt, true});
  ASSERT_EQ(q->find("count")->as_int(), 2);
  std::string text = json::to_string(q.value());
  EXPECT_EQ(text.find("alice"), std::string::npos) << text;
  EXPECT_EQ(text.find("bob"), std::string::npos) << text;
  EXPECT_EQ(str(q->find("records")->as_array()[0], "account"), records::pseudonym(key(), "alice"));
  q = control->records_query({std::nullopt, std::nullopt, int64_t{1}, false});
  ASSERT_EQ(q->find("count")->as_int(), 1);
  EXPECT_EQ(str(q->find("records")->as_array()[0], "account"), "bob");  // the newest
  q = control->records_query({std::nullopt, std::string("2027-01-16"), std::nullopt, false});
  EXPECT_EQ(q->find("count")->as_int(), 0);
  EXPECT_EQ(control->records_query({std::nullopt, std::string("whenever"), std::nullopt, false})
                .error()
                .rfind("--since: ", 0),
            0u);
  EXPECT_EQ(control->records_query({std::nullopt, std::nullopt, int64_t{0}, false}).error(),
            "--limit 0: must be from 1 to 1000000");

  auto d = control->records_digest("hello world", std::nullopt);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->find("digest")->as_string(), records::hmac_hex(key(), "hello world"));
  d = control->records_digest("hello world", 5);
  EXPECT_EQ(d->find("digest")->as_string(), records::hmac_hex(key(), "hello"));
  EXPECT_EQ(json::to_string(d.value()).find("hello"), std::string::npos);
  d = control->records_digest("secret", 9);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error(), "--bytes 9: the file has only 6 bytes");

  // An edited line breaks the chain, and verify says where.
  std::string file = dir / "records/control-000000000001.jsonl";
  std::string content = testing::read_file(file);
  size_t at = content.find("\"warned\"");
  ASSERT_NE(at, std::string::npos);
  testing::write_file(file, content.replace(at, 8, "\"none\"  "));
  v = control->records_verify();
  EXPECT_FALSE(v->find("ok")->as_bool());
  const json::Value& problems = *v->find("chains")->as_array()[0].find("problems");
  ASSERT_FALSE(problems.as_array().empty());
  EXPECT_EQ(problems.as_array()[0].as_string().rfind("control-000000000001.jsonl:2: ", 0), 0u)
      << json::to_string(problems);
}

TEST_F(AccountsTest, StatusAndStatsCarryAccountAndRecordFigures) {
  AccountSetArgs a = args("alice");
  a.state = "warned";
  ASSERT_TRUE(set(a).ok());
  ASSERT_TRUE(control->report_add("alice", "x", std::nullopt, 0).ok());
  auto st = control->status();
  const json::Value* c = st->find("control");
  EXPECT_EQ(str(*c->find("accounts"), "rows"), "1");
  EXPECT_EQ(str(*c->find("accounts")->find("by_state"), "warned"), "1");
  EXPECT_EQ(json::to_string(*c->find("reports")), R"({"open":1,"total":1,"oldest_open_age_s":0})");
  EXPECT_EQ(str(*c->find("records")->find("control"), "last_seq"), "2");
  EXPECT_EQ(str(*st->find("dataplane")->find("accounts"), "rows"), "1");
  auto stats = control->stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(str(*stats->find("control")->find("accounts"), "rows"), "1");
  EXPECT_EQ(json::to_string(*control->account_count()->find("by_state")),
            R"({"none":0,"warned":1,"restricted":0,"suspended":0,"shutdown":0})");
}

// The socket handler only translates: arguments reach the actions as given, and its own errors
// are about the request's shape.
TEST_F(AccountsTest, TheProtocolTranslatesAccountReportAndRecordCommands) {
  Peer peer{1234, 1234, 1};
  auto call = [&](const std::string& line) {
    std::string out = handle_request(*control, line, peer, [](const std::string&) {});
    return json::parse(out.substr(0, out.size() - 1)).value();
  };
  json::Value r = call(R"({"v":1,"id":1,"cmd":"account.set","args":{"account":"alice","markers":["press"],)"
                       R"("add_markers":["bot"],"state":"restricted","for":"1h","rate":"3/1m","reason":"r"}})");
  ASSERT_TRUE(r.find("ok")->as_bool()) << json::to_string(r);
  EXPECT_EQ(r.find("result")->find("row")->as_string(), "alice,bot;press,restricted,1800003600,3/60s");
  EXPECT_EQ(str(records().back(), "peer_uid"), "1234");
  r = call(R"({"v":1,"cmd":"account.set","args":{"account":"alice","markers":"press"}})");
  EXPECT_EQ(str(r, "error"), "account.set: args.markers must be an array, not a string");
  r = call(R"({"v":1,"cmd":"account.set","args":{"account":"alice","add_markers":[1]}})");
  EXPECT_EQ(str(r, "error"), "account.set: args.add_markers must be an array of strings");
  r = call(R"({"v":1,"cmd":"account.set","args":{"account":"alice","state":"frozen"}})");
  EXPECT_EQ(str(r, "error"), "--state 'frozen': not one of none, warned, restricted, suspended, shutdown");
  r = call(R"({"v":1,"cmd":"account.show","args":{"account":"alice"}})");
  EXPECT_EQ(str(*r.find("result"), "state"), "restricted");
  r = call(R"({"v":1,"cmd":"account.load","args":{"text":"bob,,warned,,\n","source":"b.csv","replace":false}})");
  EXPECT_EQ(str(*r.find("result"), "size"), "2");
  r = call(R"({"v":1,"cmd":"account.load","args":{"path":"/etc/hostname"}})");
  EXPECT_EQ(str(r, "error").rfind("account.load: args.path is read by the daemon and accepted from root only", 0), 0u);
  r = call(R"({"v":1,"cmd":"report.add","args":{"account":"bob","reason":"x","digest":")" + std::string(64, 'f') +
           R"("}})");
  EXPECT_EQ(str(*r.find("result"), "report"), "1");
  r = call(R"({"v":1,"cmd":"report.resolve","args":{"report":0}})");
  EXPECT_EQ(str(r, "error"), "report.resolve: args.report must be a report number (1 or more)");
  r = call(R"({"v":1,"cmd":"report.list","args":{"open":true,"account":"bob"}})");
  EXPECT_EQ(r.find("result")->find("reports")->as_array().size(), 1u);
  r = call(R"({"v":1,"cmd":"records.query","args":{"account":"bob","limit":5,"pseudonymize":true}})");
  EXPECT_EQ(str(*r.find("result"), "count"), "2");  // bob's load record and the report
  EXPECT_EQ(json::to_string(r).find("\"bob\""), std::string::npos);
  r = call(R"({"v":1,"cmd":"records.digest","args":{"text":"abc","bytes":2}})");
  EXPECT_EQ(str(*r.find("result"), "digest"), records::hmac_hex(key(), "ab"));
  r = call(R"({"v":1,"cmd":"records.verify"})");
  EXPECT_TRUE(r.find("result")->find("ok")->as_bool());
  r = call(R"({"v":1,"cmd":"account.count","args":{"x":1}})");
  EXPECT_EQ(str(r, "error"), "account.count: unknown field 'x' in args (this command takes none)");
}

}  // namespace
}  // namespace imf::control
