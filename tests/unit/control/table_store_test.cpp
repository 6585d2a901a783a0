#include "daemon/table_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "temp_dir.h"

namespace imf::control {
namespace {

class TableStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(store.init().ok()); }
  std::optional<std::string> get(const std::string& t, const std::string& k) {
    auto g = store.get(t, k);
    EXPECT_TRUE(g.ok()) << g.error();
    return g.ok() ? g.value() : std::nullopt;
  }
  // A fresh store over the same directory: what a restart sees.
  std::unique_ptr<TableStore> reopen() {
    auto s = std::make_unique<TableStore>(dir / "tables");
    EXPECT_TRUE(s->init().ok());
    return s;
  }

  testing::TempDir dir;
  TableStore store{dir / "tables"};
};

TEST_F(TableStoreTest, SetGetDelAndPersistence) {
  ASSERT_TRUE(store.set("markers", "alice", "vip").ok());
  ASSERT_TRUE(store.set("markers", "bob", "a,b,c").ok());  // values may hold commas
  ASSERT_TRUE(store.set("markers", "alice", "banned").ok());
  EXPECT_EQ(get("markers", "alice"), "banned");
  EXPECT_EQ(get("markers", "bob"), "a,b,c");
  EXPECT_EQ(get("markers", "carol"), std::nullopt);
  EXPECT_TRUE(store.del("markers", "bob").value());
  EXPECT_FALSE(store.del("markers", "bob").value());

  auto again = reopen();
  EXPECT_EQ(again->get("markers", "alice").value(), "banned");
  EXPECT_EQ(again->get("markers", "bob").value(), std::nullopt);
  ASSERT_EQ(again->list().size(), 1u);
  EXPECT_EQ(again->list()[0].rows, 1u);
}

TEST_F(TableStoreTest, UnknownTableAndBadNamesAreErrors) {
  auto g = store.get("nope", "k");
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error(), "no table 'nope'");
  auto d = store.del("nope", "k");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error(), "no table 'nope'");
  Status s = store.set("../etc", "k", "v");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "bad table name '../etc' (1-64 characters of A-Z a-z 0-9 _ . -)");
  EXPECT_FALSE(store.set(".hidden", "k", "v").ok());
  EXPECT_EQ(store.set("t", "", "v").error(), "empty key");
  EXPECT_EQ(store.set("t", "a,b", "v").error(), "key holds a ','");
  EXPECT_EQ(store.set("t", "a", "x\ny").error(), "key 'a': value holds a line feed");
  EXPECT_TRUE(store.list().empty());  // nothing was created by the failures
}

// The dataplane's limits (dataplane/table/kv_table.h), checked before anything is stored.
TEST_F(TableStoreTest, KeysAndValuesAreHeldToTheDataplanesLimits) {
  EXPECT_TRUE(store.set("t", std::string(96, 'k'), std::string(256, 'v')).ok());
  EXPECT_TRUE(store.set("t", "empty-value", "").ok());
  std::string long_key = "account-" + std::string(89, 'x');  // 97 bytes
  EXPECT_EQ(store.set("t", long_key, "v").error(),
            "key '" + long_key.substr(0, 40) + "...' is 97 bytes, over the limit of 96 bytes");
  EXPECT_EQ(store.set("t", "alice", std::string(257, 'v')).error(),
            "key 'alice': value is 257 bytes, over the limit of 256 bytes");
  EXPECT_EQ(get("t", "alice"), std::nullopt);

  std::string csv = "ok,1\n" + long_key + ",2\nbob," + std::string(300, 'v') + "\nfine,3\n";
  auto b = store.bulk("t", csv, "big.csv", false);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error(), "big.csv:2: key '" + long_key.substr(0, 40) +
                           "...' is 97 bytes, over the limit of 96 bytes\n"
                           "big.csv:3: key 'bob': value is 300 bytes, over the limit of 256 bytes");
  EXPECT_EQ(get("t", "ok"), std::nullopt);
  ASSERT_EQ(store.list().size(), 1u);
  EXPECT_EQ(store.list()[0].rows, 2u);
}

// Snapshots written before the dataplane's limits applied still load (the dataplane refuses the
// long rows when it is asked to load them, and the resync says so).
TEST_F(TableStoreTest, OlderSnapshotsWithLongerRowsStillLoad) {
  std::string key(200, 'k');
  std::string value(1000, 'v');
  testing::write_file(dir / "tables/old.csv", key + "," + value + "\n");
  auto again = reopen();
  EXPECT_EQ(again->get("old", key).value(), value);
  EXPECT_EQ(again->rows("old"), 1u);
  EXPECT_EQ(again->rows("absent"), std::nullopt);
  EXPECT_EQ(again->snapshot_path("old"), dir / "tables/old.csv");
}

TEST_F(TableStoreTest, BulkUpsertsAndCounts) {
  ASSERT_TRUE(store.set("t", "a", "old").ok());
  auto b = store.bulk("t", "a,1\r\nb,2\n\nc,3", "in.csv", false);
  ASSERT_TRUE(b.ok()) << b.error();
  EXPECT_EQ(b->rows, 3u);
  EXPECT_EQ(b->inserted, 2u);
  EXPECT_EQ(b->updated, 1u);
  EXPECT_EQ(b->size, 3u);
  EXPECT_EQ(get("t", "a"), "1");  // the CR of the CRLF line is not part of the value
  EXPECT_EQ(get("t", "c"), "3");
}

TEST_F(TableStoreTest, BulkReplaceMakesTheFileTheWholeTable) {
  ASSERT_TRUE(store.bulk("t", "a,1\nb,2\n", "one.csv", false).ok());
  auto b = store.bulk("t", "b,20\nz,26\n", "two.csv", true);
  ASSERT_TRUE(b.ok()) << b.error();
  EXPECT_EQ(b->size, 2u);
  EXPECT_EQ(b->updated, 1u);
  EXPECT_EQ(b->inserted, 1u);
  EXPECT_EQ(get("t", "a"), std::nullopt);
  EXPECT_EQ(reopen()->get("t", "b").value(), "20");
}

TEST_F(TableStoreTest, BulkErrorsNameEachBadLineAndChangeNothing) {
  ASSERT_TRUE(store.bulk("t", "keep,1\n", "seed.csv", false).ok());
  std::string before = testing::read_file(dir / "tables/t.csv");
  auto b = store.bulk("t", "x,1\nno comma here\n,empty key\ny,2\nbad\x01key,ok\nz,a\0b\n", "accounts.csv", false);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error(),
            "accounts.csv:2: missing ',' between key and value\n"
            "accounts.csv:3: empty key");
  std::string with_nul("ok,1\nz,a");
  with_nul.push_back('\0');
  with_nul += "b\n";
  auto n = store.bulk("t", with_nul, "nul.csv", false);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.error(), "nul.csv:2: key 'z': value holds a NUL byte");
  EXPECT_EQ(get("t", "x"), std::nullopt);
  EXPECT_EQ(get("t", "ok"), std::nullopt);
  EXPECT_EQ(testing::read_file(dir / "tables/t.csv"), before);
}

TEST_F(TableStoreTest, BulkReportsTenErrorsThenCountsTheRest) {
  std::string csv;
  for (int i = 0; i < 25; ++i) csv += "bad line " + std::to_string(i) + "\n";
  auto b = store.bulk("t", csv, "big.csv", false);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().find("big.csv:10: missing ','"), std::string::npos);
  EXPECT_EQ(b.error().find("big.csv:11:"), std::string::npos);
  EXPECT_NE(b.error().find("... and 15 more bad lines"), std::string::npos) << b.error();
}

TEST_F(TableStoreTest, ACorruptSnapshotStopsTheStartWithFileAndLine) {
  testing::write_file(dir / "tables/broken.csv", "a,1\nnot a row\n");
  TableStore s(dir / "tables");
  Status st = s.init();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error(), dir / "tables/broken.csv" + ":2: missing ',' between key and value");
}

TEST_F(TableStoreTest, AFailedSnapshotWriteLeavesMemoryAsItWas) {
  ASSERT_TRUE(store.bulk("t", "a,1\nb,2\n", "seed.csv", false).ok());
  // A directory where write_file_atomic puts its temporary file: the write fails, even for root.
  std::string blocker = dir / "tables/t.csv.tmp." + std::to_string(::getpid());
  ASSERT_EQ(::mkdir(blocker.c_str(), 0700), 0);
  Status set = store.set("t", "a", "changed");
  ASSERT_FALSE(set.ok());
  EXPECT_NE(set.error().find("cannot create temporary file"), std::string::npos) << set.error();
  EXPECT_FALSE(store.set("t", "new", "x").ok());
  EXPECT_FALSE(store.bulk("t", "a,9\nc,3\n", "x.csv", false).ok());
  EXPECT_FALSE(store.bulk("t", "z,26\n", "x.csv", true).ok());
  EXPECT_FALSE(store.del("t", "b").ok());
  ::rmdir(blocker.c_str());
  EXPECT_EQ(get("t", "a"), "1");
  EXPECT_EQ(get("t", "b"), "2");
  EXPECT_EQ(get("t", "c"), std::nullopt);
  EXPECT_EQ(get("t", "new"), std::nullopt);
  EXPECT_EQ(get("t", "z"), std::nullopt);
  EXPECT_EQ(store.list()[0].rows, 2u);
}

TEST_F(TableStoreTest, AMillionRowsLoadInSeconds) {
  std::string csv;
  csv.reserve(40u << 20);
  for (int i = 0; i < 1000000; ++i) csv += "account-" + std::to_string(i) + ",marker-" + std::to_string(i % 97) + "\n";
  auto t0 = std::chrono::steady_clock::now();
  auto b = store.bulk("big", csv, "big.csv", false);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(b.ok()) << b.error();
  EXPECT_EQ(b->size, 1000000u);
  EXPECT_EQ(get("big", "account-999999"), "marker-" + std::to_string(999999 % 97));
  EXPECT_LT(s, 20.0);  // about 1 s on the development machine; generous for sanitizer builds
  std::printf("bulk of 1M rows: %.2f s\n", s);
}

}  // namespace
}  // namespace imf::control
