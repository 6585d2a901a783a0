// The account store: its index against std::unordered_map, the journal and snapshot on disk,
// replay after a restart, a torn last journal line, compaction, bulk loads.
#include "daemon/account_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <random>
#include <string>
#include <unordered_map>

#include "daemon/account_index.h"
#include "temp_dir.h"

namespace imf::control {
namespace {

using policy::AccountRow;
using policy::AccountState;

TEST(AccountIndex, AgreesWithUnorderedMapUnderRandomInsertsAndErases) {
  AccountIndex<uint64_t> index;
  std::unordered_map<std::string, uint64_t> ref;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    std::string key = "acct-" + std::to_string(rng() % 5000);
    switch (rng() % 3) {
      case 0: {
        auto [v, inserted] = index.try_emplace(key, static_cast<uint64_t>(i));
        auto [it, ref_inserted] = ref.try_emplace(key, static_cast<uint64_t>(i));
        ASSERT_EQ(inserted, ref_inserted) << key;
        ASSERT_EQ(*v, it->second);
        *v = it->second = static_cast<uint64_t>(i) * 3;
        break;
      }
      case 1: ASSERT_EQ(index.erase(key), ref.erase(key) == 1) << key; break;
      default: {
        const uint64_t* v = index.find(key);
        auto it = ref.find(key);
        ASSERT_EQ(v != nullptr, it != ref.end()) << key;
        if (v) {
          ASSERT_EQ(*v, it->second);
        }
      }
    }
    ASSERT_EQ(index.size(), ref.size());
  }
  size_t seen = 0;
  index.for_each([&](std::string_view k, uint64_t v) {
    ++seen;
    ASSERT_EQ(ref.at(std::string(k)), v);
  });
  EXPECT_EQ(seen, ref.size());
  // Rebuilding the arena drops erased keys' bytes and keeps every row.
  EXPECT_GT(index.garbage_bytes(), 0u);
  index.compact_keys();
  EXPECT_EQ(index.garbage_bytes(), 0u);
  EXPECT_EQ(index.size(), ref.size());
  for (const auto& [k, v] : ref) ASSERT_EQ(*index.find(k), v) << k;
}

AccountRow row(const std::string& account, std::vector<std::string> markers = {},
               AccountState state = AccountState::kNone, int64_t until = 0, policy::Rate rate = {}) {
  AccountRow r;
  r.account = account;
  r.markers = std::move(markers);
  r.state = state;
  r.until_s = until;
  r.rate = rate;
  return r;
}

class AccountStoreTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) { return dir / ("accounts/" + name); }
  std::unique_ptr<AccountStore> open() {
    auto s = std::make_unique<AccountStore>(dir / "accounts");
    Status st = s->init();
    EXPECT_TRUE(st.ok()) << st.error();
    return s;
  }
  static Status no_records(const std::vector<MeasureChange>&, const AccountStore::LoadResult&) { return Ok{}; }

  testing::TempDir dir;
};

TEST_F(AccountStoreTest, ChangesGoToTheJournalAndSurviveARestart) {
  auto s = open();
  AccountRow alice = row("alice", {"press", "verified_publisher"}, AccountState::kSuspended, 1900000000);
  AccountRow bob = row("bob@example.net", {}, AccountState::kRestricted, 0, {5, 60});
  ASSERT_TRUE(s->apply({{"alice", alice}, {"bob@example.net", bob}, {"carol", row("carol")}}).ok());
  ASSERT_TRUE(s->apply({{"carol", std::nullopt}}).ok());
  EXPECT_EQ(testing::read_file(path("accounts.journal")),
            "set alice,press;verified_publisher,suspended,1900000000,\n"
            "set bob@example.net,,restricted,,5/60s\n"
            "set carol,,,,\n"
            "del carol\n");
  struct stat st {};
  EXPECT_NE(::stat(path("accounts.csv").c_str(), &st), 0) << "a single change must not write the snapshot";

  s.reset();
  s = open();
  EXPECT_EQ(s->rows(), 2u);
  EXPECT_EQ(s->get("alice"), alice);
  EXPECT_EQ(s->get("bob@example.net"), bob);
  EXPECT_FALSE(s->get("carol"));
  AccountCounts c = s->counts();
  EXPECT_EQ(c.by_state[static_cast<int>(AccountState::kSuspended)], 1u);
  EXPECT_EQ(c.by_state[static_cast<int>(AccountState::kRestricted)], 1u);
  EXPECT_EQ(c.journal_lines, 4u);
}

TEST_F(AccountStoreTest, SnapshotForTheDataplaneCompactsAndReplayStillAgrees) {
  auto s = open();
  ASSERT_TRUE(s->apply({{"alice", row("alice", {"press"})}, {"bob", row("bob", {}, AccountState::kWarned, 7)}}).ok());
  auto p = s->snapshot_for_dataplane();
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p.value(), path("accounts.csv"));
  std::string snap = testing::read_file(p.value());
  EXPECT_NE(snap.find("alice,press,,,\n"), std::string::npos) << snap;
  EXPECT_NE(snap.find("bob,,warned,7,\n"), std::string::npos) << snap;
  EXPECT_EQ(testing::read_file(path("accounts.journal")), "");
  ASSERT_TRUE(s->apply({{"alice", std::nullopt}}).ok());
  s.reset();
  s = open();
  EXPECT_EQ(s->rows(), 1u);
  EXPECT_FALSE(s->get("alice"));
  EXPECT_EQ(s->get("bob")->state, AccountState::kWarned);
}

TEST_F(AccountStoreTest, AnEmptyStoreStillGivesTheDataplaneASnapshot) {
  auto s = open();
  auto p = s->snapshot_for_dataplane();
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(testing::read_file(p.value()), "");
}

TEST_F(AccountStoreTest, TheJournalIsCompactedWhenItOutgrowsItsLimit) {
  auto s = open();
  std::vector<AccountStore::Change> batch;
  for (int i = 0; i < 100000; ++i) batch.push_back({"u" + std::to_string(i), row("u" + std::to_string(i))});
  ASSERT_TRUE(s->apply(batch).ok());
  EXPECT_EQ(s->counts().journal_lines, 100000u);  // at the limit, not over it
  ASSERT_TRUE(s->apply({{"u1", row("u1", {"bot"})}}).ok());
  EXPECT_EQ(s->counts().journal_lines, 0u);
  EXPECT_EQ(testing::read_file(path("accounts.journal")), "");
  std::string snap = testing::read_file(path("accounts.csv"));
  EXPECT_EQ(std::count(snap.begin(), snap.end(), '\n'), 100000);
  EXPECT_NE(snap.find("\nu1,bot,,,\n"), std::string::npos);
  EXPECT_EQ(AccountStore::journal_limit(1000000), 250000u);
  s.reset();
  EXPECT_EQ(open()->get("u1")->markers, std::vector<std::string>{"bot"});
}

TEST_F(AccountStoreTest, ATornLastJournalLineIsDroppedAndCutOff) {
  auto s = open();
  ASSERT_TRUE(s->apply({{"alice", row("alice", {"press"})}}).ok());
  s.reset();
  std::string journal = testing::read_file(path("accounts.journal"));
  testing::write_file(path("accounts.journal"), journal + "set bob,,susp");  // the crash hit mid-write
  s = open();
  EXPECT_EQ(s->rows(), 1u);
  EXPECT_FALSE(s->get("bob"));
  EXPECT_EQ(testing::read_file(path("accounts.journal")), journal);
  ASSERT_TRUE(s->apply({{"carol", row("carol")}}).ok());
  EXPECT_EQ(testing::read_file(path("accounts.journal")), journal + "set carol,,,,\n");
  s.reset();
  EXPECT_EQ(open()->rows(), 2u);
}

TEST_F(AccountStoreTest, ABadLineBeforeTheLastIsAnErrorNamingFileAndLine) {
  ASSERT_EQ(::mkdir(path("").c_str(), 0750), 0);
  testing::write_file(path("accounts.journal"), "set alice,,,,\nset bob,,frozen,,\nset carol,,,,\n");
  AccountStore s(dir / "accounts");
  Status st = s.init();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error(),
            path("accounts.journal") + ":2: state: unknown 'frozen' (none, warned, restricted, suspended, shutdown)");
  testing::write_file(path("accounts.journal"), "");
  testing::write_file(path("accounts.csv"), "alice,,,,\nbob,BAD,,,\n");
  AccountStore s2(dir / "accounts");
  st = s2.init();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().rfind(path("accounts.csv") + ":2: markers: ", 0), 0u) << st.error();
}

TEST_F(AccountStoreTest, BulkLoadParsesEverythingFirstAndChangesNothingOnError) {
  auto s = open();
  ASSERT_TRUE(s->apply({{"alice", row("alice", {"press"})}}).ok());
  std::string csv = "bob,,,,\n";
  for (int i = 0; i < 12; ++i) csv += "bad" + std::to_string(i) + ",,nope,,\n";
  bool called = false;
  auto r = s->load(csv, "a.csv", false, [&](auto&, auto&) {
    called = true;
    return Status(Ok{});
  });
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(called);
  EXPECT_EQ(r.error().rfind("a.csv:2: state: unknown 'nope'", 0), 0u) << r.error();
  EXPECT_NE(r.error().find("a.csv:11: state"), std::string::npos) << r.error();
  EXPECT_EQ(r.error().find("a.csv:12:"), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("... and 2 more bad lines"), std::string::npos) << r.error();
  EXPECT_EQ(s->rows(), 1u);
  EXPECT_FALSE(s->get("bob"));
}

TEST_F(AccountStoreTest, BulkLoadReportsEveryMeasureItChanges) {
  auto s = open();
  ASSERT_TRUE(s->apply({{"alice", row("alice", {}, AccountState::kWarned, 100)}, {"bob", row("bob")}}).ok());
  std::vector<MeasureChange> seen;
  AccountStore::LoadResult lr;
  auto r = s->load("alice,press,warned,100,\r\n\nbob,,suspended,200,\ncarol,,,,\ndave,,shutdown,,\n", "a.csv", false,
                   [&](const std::vector<MeasureChange>& m, const AccountStore::LoadResult& l) {
                     seen = m;
                     lr = l;
                     return Status(Ok{});
                   });
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->rows, 4u);
  EXPECT_EQ(r->inserted, 2u);
  EXPECT_EQ(r->updated, 2u);
  EXPECT_EQ(r->size, 4u);
  EXPECT_EQ(lr.rows, 4u);
  ASSERT_EQ(seen.size(), 2u);  // alice's measure is unchanged, carol's stays none
  EXPECT_EQ(seen[0].account, "bob");
  EXPECT_EQ(seen[0].before.state, AccountState::kNone);
  EXPECT_EQ(seen[0].after.state, AccountState::kSuspended);
  EXPECT_EQ(seen[0].after.until_s, 200);
  EXPECT_EQ(seen[1].account, "dave");
  EXPECT_EQ(seen[1].after.state, AccountState::kShutdown);
  EXPECT_EQ(s->get("alice")->markers, std::vector<std::string>{"press"});
  EXPECT_EQ(testing::read_file(path("accounts.journal")), "");  // a load writes the snapshot

  // Replace: rows not in the file go, and a measure going with them is reported too.
  seen.clear();
  r = s->load("carol,,warned,,\n", "b.csv", true, [&](const std::vector<MeasureChange>& m, auto&) {
    seen = m;
    return Status(Ok{});
  });
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->removed, 3u);
  EXPECT_EQ(r->size, 1u);
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].account, "carol");
  for (size_t i = 1; i < 4; ++i) {
    EXPECT_TRUE(seen[i].removed);
    EXPECT_EQ(seen[i].after, Measure{});
  }
  s.reset();
  s = open();
  EXPECT_EQ(s->rows(), 1u);
  EXPECT_EQ(s->get("carol")->state, AccountState::kWarned);
}

TEST_F(AccountStoreTest, ARefusalBeforeCommitUndoesTheLoad) {
  auto s = open();
  ASSERT_TRUE(s->apply({{"alice", row("alice", {}, AccountState::kWarned)}}).ok());
  for (bool replace : {false, true}) {
    auto r = s->load("alice,,suspended,,\nbob,,,,\nbob,,warned,,\n", "a.csv", replace,
                     [](auto&, auto&) { return Status(make_error("records disk full")); });
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error(), "records disk full");
    EXPECT_EQ(s->rows(), 1u);
    EXPECT_EQ(s->get("alice")->state, AccountState::kWarned);
    EXPECT_EQ(s->counts().by_state[static_cast<int>(AccountState::kWarned)], 1u);
    EXPECT_EQ(s->counts().by_state[static_cast<int>(AccountState::kNone)], 0u);
  }
}

TEST_F(AccountStoreTest, ARepeatedAccountInALoadEndsWithItsLastRow) {
  auto s = open();
  std::vector<MeasureChange> seen;
  auto r = s->load("bob,,warned,,\nbob,,suspended,9,\n", "a.csv", false, [&](auto& m, auto&) {
    seen = m;
    return Status(Ok{});
  });
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(s->get("bob")->state, AccountState::kSuspended);
  ASSERT_EQ(seen.size(), 2u);  // each step is a change of its own
  EXPECT_EQ(seen[1].before.state, AccountState::kWarned);
  EXPECT_EQ(s->rows(), 1u);
}

}  // namespace
}  // namespace imf::control
