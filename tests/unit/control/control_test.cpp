// The control actions against a scripted dataplane: what is on disk and what the dataplane was
// told after loads that succeed, fail at each step, or find the dataplane down.
#include "daemon/control.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <mutex>

#include "rules/artifact.h"
#include "temp_dir.h"

namespace imf::control {
namespace {

class FakeDataplane : public DataplaneLink {
 public:
  enum class Mode { kUp, kDown, kRefuseInstalls };

  DataplaneReply call(const json::Value& request, std::chrono::milliseconds) override {
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
      r.body.set("uptime_s", 12);
    } else if (cmd == "stats") {
      r.body.set("version", running);
      r.body.set("counters", json::Object{{"rx_packets", 10}});
    }
    return r;
  }
  std::string where() const override { return "fake"; }

  std::vector<std::string> installs() {
    std::lock_guard lock(mu);
    std::vector<std::string> out;
    for (const std::string& c : calls) {
      if (c.find("\"install\"") != std::string::npos) out.push_back(c);
    }
    return out;
  }

  std::mutex mu;
  Mode mode = Mode::kUp;
  uint64_t running = 0;
  std::vector<std::string> calls;
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

}  // namespace
}  // namespace imf::control
