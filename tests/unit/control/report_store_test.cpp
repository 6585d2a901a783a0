// Reports: ids, open counts per account, resolution, the event file replayed after a restart,
// a torn last line, and the checks of reasons, notes and digests.
#include "daemon/report_store.h"

#include <gtest/gtest.h>

#include "temp_dir.h"

namespace imf::control {
namespace {

class ReportStoreTest : public ::testing::Test {
 protected:
  std::unique_ptr<ReportStore> open() {
    auto s = std::make_unique<ReportStore>(file());
    Status st = s->init();
    EXPECT_TRUE(st.ok()) << st.error();
    return s;
  }
  std::string file() { return dir / "reports.jsonl"; }
  testing::TempDir dir;
};

TEST_F(ReportStoreTest, OpenResolveListAndCount) {
  auto s = open();
  EXPECT_EQ(s->next_id(), 1u);
  auto a = s->open("bob", "threats", "", 1000);
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(a->id, 1u);
  auto b = s->open("bob", "spam", std::string(64, 'a'), 2000);
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(s->open("carol", "spam", "", 3000).ok());
  EXPECT_EQ(s->open_count("bob"), 2u);
  EXPECT_EQ(s->open_count("nobody"), 0u);
  EXPECT_EQ(s->open_total(), 3u);
  EXPECT_EQ(s->oldest_open_ns(), 1000);

  auto r = s->resolve(1, "warned the user", 4000);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r->resolved);
  EXPECT_EQ(s->open_count("bob"), 1u);
  EXPECT_EQ(s->oldest_open_ns(), 2000);  // report 1 is handled: report 2 waits longest
  auto again = s->resolve(1, "", 5000);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error(), "report 1 is already resolved");
  auto missing = s->resolve(9, "", 5000);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error(), "no report 9");

  EXPECT_EQ(s->list(false, std::nullopt).size(), 3u);
  auto open_bob = s->list(true, std::string("bob"));
  ASSERT_EQ(open_bob.size(), 1u);
  EXPECT_EQ(open_bob[0].id, 2u);
  EXPECT_EQ(open_bob[0].digest, std::string(64, 'a'));
  EXPECT_EQ(testing::read_file(file()),
            R"({"event":"opened","id":1,"account":"bob","reason":"threats","digest":null,"time_ns":1000})"
            "\n"
            R"({"event":"opened","id":2,"account":"bob","reason":"spam","digest":")" +
                std::string(64, 'a') +
                R"(","time_ns":2000})"
                "\n"
                R"({"event":"opened","id":3,"account":"carol","reason":"spam","digest":null,"time_ns":3000})"
                "\n"
                R"({"event":"resolved","id":1,"note":"warned the user","time_ns":4000})"
                "\n");
}

TEST_F(ReportStoreTest, ReportsSurviveARestartAndIdsContinue) {
  auto s = open();
  ASSERT_TRUE(s->open("bob", "threats", "", 1000).ok());
  ASSERT_TRUE(s->open("bob", "spam", "", 2000).ok());
  ASSERT_TRUE(s->resolve(2, "dup", 3000).ok());
  s.reset();
  s = open();
  EXPECT_EQ(s->open_count("bob"), 1u);
  EXPECT_EQ(s->total(), 2u);
  auto r = s->get(2);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->resolved);
  EXPECT_EQ(r->note, "dup");
  EXPECT_EQ(r->resolved_ns, 3000);
  EXPECT_EQ(s->open("dave", "x", "", 4000)->id, 3u);
}

TEST_F(ReportStoreTest, ATornLastLineIsDroppedABadOneBeforeIsAnError) {
  auto s = open();
  ASSERT_TRUE(s->open("bob", "threats", "", 1000).ok());
  s.reset();
  std::string good = testing::read_file(file());
  testing::write_file(file(), good + R"({"event":"opened","id":2,"acc)");
  s = open();
  EXPECT_EQ(s->total(), 1u);
  EXPECT_EQ(testing::read_file(file()), good);
  EXPECT_EQ(s->open("eve", "y", "", 2000)->id, 2u);
  s.reset();

  testing::write_file(file(), "not json\n" + good);
  ReportStore bad(file());
  Status st = bad.init();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().rfind(file() + ":1: malformed JSON", 0), 0u) << st.error();
}

TEST(ReportChecks, ReasonsNotesAndDigests) {
  EXPECT_TRUE(check_report_text("spam in group", "--reason", false).ok());
  EXPECT_EQ(check_report_text("", "--reason", false).error(), "--reason: empty (1-500 bytes)");
  EXPECT_TRUE(check_report_text("", "--note", true).ok());
  EXPECT_EQ(check_report_text(std::string(501, 'x'), "--reason", false).error(),
            "--reason: 501 bytes, over the limit of 500");
  EXPECT_EQ(check_report_text("a\nb", "--note", true).error(), "--note: holds a control character");
  auto d = check_digest(std::string(32, 'A') + std::string(32, '0'));
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d.value(), std::string(32, 'a') + std::string(32, '0'));
  EXPECT_EQ(check_digest("abc").error(), "--digest: expected 64 hex digits, got 3 characters");
  EXPECT_EQ(check_digest(std::string(63, 'a') + "g").error(), "--digest: not a hex digit in it");
}

}  // namespace
}  // namespace imf::control
