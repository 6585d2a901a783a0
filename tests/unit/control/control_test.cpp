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
    } else if (cmd == "stats") {
      r.body.set("version", running);
      r.body.set("counters", json::Object{{"rx_packets", 10}});
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

}  // namespace
}  // namespace imf::control
