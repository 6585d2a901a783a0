#include "daemon/version_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "temp_dir.h"

namespace imf::control {
namespace {

using Versions = std::vector<uint64_t>;

class VersionStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(store.init().ok()); }
  void add(uint64_t v) { testing::write_file(store.artifact_path(v), "artifact " + std::to_string(v)); }
  Versions kept() { return store.versions().value(); }

  testing::TempDir dir;
  VersionStore store{dir / "rules"};
};

TEST_F(VersionStoreTest, EmptyStoreHasNoActiveVersionAndStartsAtOne) {
  EXPECT_TRUE(kept().empty());
  auto act = store.active();
  ASSERT_TRUE(act.ok()) << act.error();
  EXPECT_FALSE(act.value().has_value());
  EXPECT_EQ(store.next_version(0).value(), 1u);
}

TEST_F(VersionStoreTest, ListsOnlyArtifactsInNumericOrder) {
  for (uint64_t v : {10, 2, 9}) add(v);
  testing::write_file(dir / "rules/notes.txt", "x");
  testing::write_file(dir / "rules/007.imfrules", "leading zero: not ours");
  testing::write_file(dir / "rules/x.imfrules", "x");
  EXPECT_EQ(kept(), (Versions{2, 9, 10}));
  EXPECT_EQ(store.next_version(0).value(), 11u);
  EXPECT_EQ(store.next_version(40).value(), 41u);  // numbers handed out earlier are never reused
}

TEST_F(VersionStoreTest, ActiveMarkerIsWrittenAtomicallyAndReadBack) {
  add(4);
  ASSERT_TRUE(store.set_active(4).ok());
  EXPECT_EQ(testing::read_file(dir / "rules/active"), "4\n");
  EXPECT_EQ(store.active().value(), 4u);
  testing::write_file(dir / "rules/active", "four\n");
  auto bad = store.active();
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), dir / "rules/active" + ": does not hold a version number");
}

TEST_F(VersionStoreTest, PruneKeepsTheNewestAndNeverTheActive) {
  for (uint64_t v = 1; v <= 6; ++v) add(v);
  ASSERT_TRUE(store.set_active(2).ok());  // e.g. after a rollback
  auto gone = store.prune(3);
  ASSERT_TRUE(gone.ok()) << gone.error();
  EXPECT_EQ(gone.value(), (Versions{1, 3}));
  EXPECT_EQ(kept(), (Versions{2, 4, 5, 6}));
  EXPECT_EQ(store.active().value(), 2u);
  EXPECT_TRUE(store.prune(3)->empty());
  EXPECT_EQ(store.prune(1).value(), (Versions{4, 5}));
  EXPECT_EQ(kept(), (Versions{2, 6}));
}

TEST_F(VersionStoreTest, PreviousVersionIsTheNewestBelowTheActive) {
  for (uint64_t v : {1, 3, 5}) add(v);
  auto none = store.previous_version();
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error(), "no version is active yet");
  ASSERT_TRUE(store.set_active(5).ok());
  EXPECT_EQ(store.previous_version().value(), 3u);
  ASSERT_TRUE(store.set_active(1).ok());
  auto bottom = store.previous_version();
  ASSERT_FALSE(bottom.ok());
  EXPECT_EQ(bottom.error(), "no kept version older than the active version 1");
}

TEST_F(VersionStoreTest, RemoveRefusesTheActiveVersion) {
  add(1);
  add(2);
  ASSERT_TRUE(store.set_active(1).ok());
  Status s = store.remove(1);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "version 1 is active and cannot be removed");
  EXPECT_TRUE(store.remove(2).ok());
  EXPECT_EQ(kept(), (Versions{1}));
}

TEST_F(VersionStoreTest, InitRemovesTemporariesOfInterruptedWrites) {
  add(1);
  testing::write_file(dir / "rules/2.imfrules.tmp.1234", "half an artifact");
  testing::write_file(dir / "rules/active.tmp.99", "2");
  ASSERT_TRUE(store.init().ok());
  EXPECT_EQ(kept(), (Versions{1}));
  EXPECT_NE(::access((dir / "rules/2.imfrules.tmp.1234").c_str(), F_OK), 0);
  EXPECT_NE(::access((dir / "rules/active.tmp.99").c_str(), F_OK), 0);
}

TEST(MakeDirs, CreatesEveryLevelAndRefusesAFile) {
  testing::TempDir dir;
  ASSERT_TRUE(make_dirs(dir / "a/b/c", 0750).ok());
  struct stat st {};
  ASSERT_EQ(::stat((dir / "a/b/c").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  testing::write_file(dir / "f", "x");
  Status s = make_dirs(dir / "f", 0750);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), dir / "f" + ": not a directory");
}

}  // namespace
}  // namespace imf::control
