#include "records/chain.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "control/temp_dir.h"

namespace imf::records {
namespace {

using control::testing::read_file;
using control::testing::TempDir;
using control::testing::write_file;
using Lines = std::vector<std::string>;

constexpr int64_t kSec = 1'000'000'000;
const std::string kZeros(64, '0');

int64_t at(const char* iso) { return parse_time(iso, 0).value(); }
const int64_t kT0 = at("2026-11-28T21:14:04.123Z");

Lines split_lines(const std::string& text) {
  Lines out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::string join_lines(const Lines& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

// Joins problems for failure messages and substring checks.
std::string all(const VerifyReport& r) {
  std::string s;
  for (const auto& p : r.problems) s += p + "\n";
  return s;
}

class ChainTest : public ::testing::Test {
 protected:
  ChainConfig config(const std::string& source = "control") {
    ChainConfig c;
    c.dir = dir / "rec";
    c.source = source;
    c.appliance = "imf-1";
    c.fsync_interval_ms = 0;
    // Records carry fixed times around kT0, but a reopened writer's recovery record carries the
    // wall clock: rotation by age would then depend on today's date. Tests of rotation set it.
    c.rotate_seconds = 0;
    return c;
  }
  std::unique_ptr<ChainWriter> open(const ChainConfig& c) {
    auto w = ChainWriter::open(c);
    EXPECT_TRUE(w.ok()) << w.error();
    return w ? std::move(w.value()) : nullptr;
  }
  // Appends n records one second apart from t, accounts alternating alice/bob.
  void append_n(ChainWriter& w, int n, int64_t t = kT0) {
    for (int i = 0; i < n; ++i) {
      auto seq = w.append(t + i * kSec, std::string("\"kind\":\"measure\",\"account\":\"") + (i % 2 ? "bob" : "alice") +
                                            "\",\"n\":" + std::to_string(i));
      ASSERT_TRUE(seq.ok()) << seq.error();
    }
  }
  // A chain of n records in one file, writer closed.
  void make_chain(int n) {
    auto w = open(config());
    append_n(*w, n);
  }
  std::string path(const std::string& name) { return dir / ("rec/" + name); }
  std::string file1() { return path("control-000000000001.jsonl"); }
  Lines lines(const std::string& p) { return split_lines(read_file(p)); }
  std::vector<std::string> chain_files(const std::string& source = "control") {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir / "rec")) {
      std::string n = e.path().filename();
      if (n.starts_with(source + "-")) names.push_back(n);
    }
    std::sort(names.begin(), names.end());
    return names;
  }
  VerifyReport verify(const std::string& source = "control") { return verify_chain(dir / "rec", source); }

  TempDir dir;
};

// ---- format and writing ----

TEST_F(ChainTest, LineFormatIsExactAndLinked) {
  ChainConfig c = config();
  c.appliance = "imf \"one\"";
  auto w = open(c);
  ASSERT_EQ(w->append(kT0, "\"kind\":\"measure\",\"account\":\"a\"").value(), 1u);
  ASSERT_EQ(w->append(kT0 + 1, "").value(), 2u);
  Lines l = lines(file1());
  ASSERT_EQ(l.size(), 2u);
  EXPECT_EQ(l[0],
            "{\"seq\":1,\"time\":\"2026-11-28T21:14:04.123Z\",\"appliance\":\"imf \\\"one\\\"\",\"source\":\"control\","
            "\"kind\":\"measure\",\"account\":\"a\",\"prev\":\"" +
                kZeros + "\"}");
  EXPECT_EQ(l[1],
            "{\"seq\":2,\"time\":\"2026-11-28T21:14:04.123Z\",\"appliance\":\"imf \\\"one\\\"\",\"source\":"
            "\"control\",\"prev\":\"" +
                sha256_hex(l[0]) + "\"}");
  EXPECT_EQ(w->last_seq(), 2u);
  EXPECT_EQ(w->last_hash(), sha256_hex(l[1]));
  EXPECT_EQ(read_file(path("control.head")), "2 " + sha256_hex(l[1]) + "\n");  // fsync_every = 1
  EXPECT_TRUE(verify().ok) << all(verify());
}

TEST_F(ChainTest, RefusesNewlinesAndBadSources) {
  auto w = open(config());
  auto r = w->append(kT0, "\"kind\":\"x\",\n\"a\":1");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), "records: fields must not contain a newline");
  EXPECT_EQ(w->last_seq(), 0u);
  EXPECT_FALSE(std::filesystem::exists(file1()));

  ChainConfig c = config("Data/plane");
  auto bad = ChainWriter::open(c);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error(), "records: source \"Data/plane\" must be lowercase letters, digits, '_' or '-'");
}

TEST_F(ChainTest, CleanChainVerifies) {
  make_chain(5);
  VerifyReport r = verify();
  EXPECT_TRUE(r.ok) << all(r);
  EXPECT_EQ(r.records, 5u);
  EXPECT_EQ(r.files, 1u);
  EXPECT_EQ(r.first_seq, 1u);
  EXPECT_EQ(r.last_seq, 5u);
}

TEST_F(ChainTest, ReopenResumesSeqAndPrev) {
  std::string hash;
  {
    auto w = open(config());
    append_n(*w, 3);
    hash = w->last_hash();
  }
  auto w = open(config());
  EXPECT_EQ(w->last_seq(), 3u);
  EXPECT_EQ(w->last_hash(), hash);
  ASSERT_EQ(w->append(kT0 + 10 * kSec, "\"kind\":\"x\"").value(), 4u);
  Lines l = lines(file1());
  ASSERT_EQ(l.size(), 4u);  // same file continued
  EXPECT_EQ(record_field(l[3], "prev"), hash);
  EXPECT_TRUE(verify().ok) << all(verify());
}

// ---- tampering ----

TEST_F(ChainTest, EditedMiddleLineIsCaught) {
  make_chain(5);
  Lines l = lines(file1());
  l[2].replace(l[2].find("alice"), 5, "mallo");
  write_file(file1(), join_lines(l));
  VerifyReport r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problems, Lines{"control-000000000001.jsonl:4: prev does not match the hash of line 3: line 3 was edited "
                              "or lines were reordered"});
}

TEST_F(ChainTest, EditedLastLineIsCaughtByTheHead) {
  make_chain(5);
  Lines l = lines(file1());
  l[4].replace(l[4].find("\"n\":4"), 5, "\"n\":9");
  write_file(file1(), join_lines(l));
  EXPECT_EQ(verify().problems, Lines{"control-000000000001.jsonl:5: record 5 was edited (its hash differs from the "
                                     "head) or the head file was"});
}

TEST_F(ChainTest, RemovedLinesAreCaught) {
  make_chain(5);
  Lines orig = lines(file1());

  Lines l = orig;
  l.erase(l.begin() + 2);  // middle
  write_file(file1(), join_lines(l));
  EXPECT_EQ(verify().problems, Lines{"control-000000000001.jsonl:3: seq 4 follows 2: record 3 was removed"});

  l = orig;
  l.erase(l.begin());  // first
  write_file(file1(), join_lines(l));
  EXPECT_EQ(verify().problems,
            (Lines{"control-000000000001.jsonl:1: first record is seq 2 but the file name says 1: the file was renamed "
                   "or its first lines removed",
                   "control-000000000001.jsonl:1: the chain starts at seq 2, not 1: record 1 was removed"}));

  l = orig;
  l.pop_back();  // last
  write_file(file1(), join_lines(l));
  EXPECT_EQ(verify().problems,
            Lines{"control.head: head says seq 5 but the last record is 4: records were removed from the end"});
}

TEST_F(ChainTest, ReorderedLinesAreCaught) {
  make_chain(5);
  Lines l = lines(file1());
  std::swap(l[1], l[2]);
  write_file(file1(), join_lines(l));
  VerifyReport r = verify();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.problems, (Lines{"control-000000000001.jsonl:2: seq 3 follows 1: record 2 was removed",
                               "control-000000000001.jsonl:3: seq 2 follows 3: lines were reordered or duplicated",
                               "control-000000000001.jsonl:4: seq 4 follows 2: record 3 was removed"}));
}

TEST_F(ChainTest, EditedHeadIsCaught) {
  make_chain(5);
  std::string head = read_file(path("control.head"));
  std::string edited = head;
  edited[2] = edited[2] == 'a' ? 'b' : 'a';
  write_file(path("control.head"), edited);
  EXPECT_EQ(verify().problems, Lines{"control-000000000001.jsonl:5: record 5 was edited (its hash differs from the "
                                     "head) or the head file was"});
  write_file(path("control.head"), "7" + head.substr(1));
  EXPECT_EQ(verify().problems,
            Lines{"control.head: head says seq 7 but the last record is 5: records were removed from the end"});
  write_file(path("control.head"), "garbage\n");
  EXPECT_EQ(verify().problems, Lines{"control.head: malformed: expected \"SEQ HASH\" and a newline"});
  std::filesystem::remove(path("control.head"));
  EXPECT_EQ(verify().problems, Lines{"control.head: missing: the end of the chain cannot be checked (removed?)"});
}

TEST_F(ChainTest, TruncatedTailIsCaught) {
  make_chain(5);
  std::string text = read_file(file1());
  write_file(file1(), text.substr(0, text.size() - 10));  // mid-line
  EXPECT_EQ(verify().problems,
            (Lines{"control-000000000001.jsonl:5: incomplete last line (no newline): a write was interrupted or the "
                   "file was truncated",
                   "control.head: head says seq 5 but the last record is 4: records were removed from the end"}));
  Lines l = lines(file1());
  write_file(file1(), join_lines(Lines(l.begin(), l.begin() + 2)));  // at a line boundary
  EXPECT_EQ(verify().problems,
            Lines{"control.head: head says seq 5 but the last record is 2: records were removed from the end"});
}

TEST_F(ChainTest, NonRecordLinesAreCaught) {
  make_chain(4);
  Lines l = lines(file1());
  l[1] = "not json";
  l[2] = "{\"seq\":3,\"time\":\"x\"}";
  write_file(file1(), join_lines(l));
  VerifyReport r = verify();
  EXPECT_EQ(r.problems, (Lines{"control-000000000001.jsonl:2: not a JSON record",
                               "control-000000000001.jsonl:3: missing or malformed \"appliance\"",
                               "control-000000000001.jsonl:4: prev does not match the hash of line 3: line 3 was "
                               "edited or lines were reordered"}));
}

TEST_F(ChainTest, ProblemsAreCappedAtTwenty) {
  make_chain(30);
  Lines l = lines(file1());
  for (auto& line : l) line.replace(line.find("measure"), 7, "MEASURE");
  write_file(file1(), join_lines(l));
  VerifyReport r = verify();
  ASSERT_EQ(r.problems.size(), 21u);
  EXPECT_EQ(r.problems.back(), "... and 10 more problems");  // 29 broken links + the head
}

// ---- crash recovery ----

TEST_F(ChainTest, TornLineIsRepairedOnReopenAndRecorded) {
  make_chain(3);
  std::string torn = "{\"seq\":4,\"time\":\"2026-11-28T21:";
  write_file(file1(), read_file(file1()) + torn);
  EXPECT_FALSE(verify().ok);
  auto w = open(config());
  ASSERT_EQ(w->last_seq(), 4u);
  Lines l = lines(file1());
  ASSERT_EQ(l.size(), 4u);
  EXPECT_EQ(record_field(l[3], "kind"), "recovered");
  EXPECT_EQ(record_field(l[3], "discarded_bytes"), std::to_string(torn.size()));
  EXPECT_EQ(record_field(l[3], "prev"), sha256_hex(l[2]));
  ASSERT_TRUE(w->append(kT0 + 100 * kSec, "\"kind\":\"x\"").ok());
  VerifyReport r = verify();
  EXPECT_TRUE(r.ok) << all(r);
  EXPECT_EQ(r.last_seq, 5u);
}

TEST_F(ChainTest, AFileHoldingOnlyATornLineIsRemovedOnReopen) {
  ChainConfig c = config();
  c.rotate_bytes = 1;  // every record in its own file
  {
    auto w = open(c);
    append_n(*w, 2);
  }
  write_file(path("control-000000000003.jsonl"), "{\"seq\":3,");  // crash right after rotation
  auto w = open(c);
  EXPECT_EQ(w->last_seq(), 3u);  // the recovered record
  EXPECT_EQ(record_field(lines(path("control-000000000003.jsonl"))[0], "discarded_bytes"), "9");
  EXPECT_TRUE(verify().ok) << all(verify());
}

TEST_F(ChainTest, ReopenAfterRemovedOrEditedLastLineKeepsTheEvidence) {
  make_chain(5);
  Lines l = lines(file1());
  write_file(file1(), join_lines(Lines(l.begin(), l.begin() + 4)));
  {
    auto w = open(config());  // succeeds; continues after the head's seq 5
    EXPECT_EQ(w->last_seq(), 6u);
    EXPECT_EQ(record_field(lines(file1()).back(), "kind"), "head_mismatch");
    EXPECT_EQ(record_field(lines(file1()).back(), "head_seq"), "5");
    EXPECT_EQ(record_field(lines(file1()).back(), "found_seq"), "4");
    append_n(*w, 2, kT0 + 100 * kSec);
  }
  EXPECT_EQ(verify().problems, Lines{"control-000000000001.jsonl:5: seq 6 follows 4: record 5 was removed"});

  TempDir other;
  ChainConfig c = config();
  c.dir = other / "rec";
  {
    auto w = open(c);
    append_n(*w, 3);
  }
  std::string f = other / "rec/control-000000000001.jsonl";
  l = lines(f);
  l[2].replace(l[2].find("alice"), 5, "mallo");
  write_file(f, join_lines(l));
  {
    auto w = open(c);
    append_n(*w, 1, kT0 + 100 * kSec);
  }
  EXPECT_EQ(verify_chain(c.dir, "control").problems,
            Lines{"control-000000000001.jsonl:4: prev does not match the hash of line 3: line 3 was edited or lines "
                  "were reordered"});
}

TEST_F(ChainTest, ReopenAfterAForeignLastLineContinuesFromTheHead) {
  make_chain(3);
  write_file(file1(), read_file(file1()) + "garbage\n");
  {
    auto w = open(config());
    EXPECT_EQ(w->last_seq(), 4u);
    EXPECT_EQ(record_field(lines(file1()).back(), "kind"), "head_mismatch");
    EXPECT_EQ(record_field(lines(file1()).back(), "head_seq"), "3");
  }
  EXPECT_EQ(verify().problems, Lines{"control-000000000001.jsonl:4: not a JSON record"});
  std::filesystem::remove(path("control.head"));
  write_file(file1(), read_file(file1()) + "garbage\n");
  auto w = ChainWriter::open(config());
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error(), file1() + ": last line is not a record and there is no head file: cannot resume the chain");
}

// ---- fsync policy ----

TEST_F(ChainTest, FsyncEveryNUpdatesTheHeadEveryN) {
  ChainConfig c = config();
  c.fsync_every = 3;
  auto w = open(c);
  append_n(*w, 2);
  EXPECT_FALSE(std::filesystem::exists(path("control.head")));
  append_n(*w, 1);
  EXPECT_EQ(read_file(path("control.head")), "3 " + w->last_hash() + "\n");
  append_n(*w, 1);
  EXPECT_EQ(read_file(path("control.head")).substr(0, 2), "3 ");
  ASSERT_TRUE(w->flush().ok());
  EXPECT_EQ(read_file(path("control.head")), "4 " + w->last_hash() + "\n");
}

TEST_F(ChainTest, FsyncZeroSyncsOnFlushCloseOrInterval) {
  ChainConfig c = config();
  c.fsync_every = 0;
  {
    auto w = open(c);
    append_n(*w, 5);
    EXPECT_FALSE(std::filesystem::exists(path("control.head")));
  }
  EXPECT_EQ(read_file(path("control.head")).substr(0, 2), "5 ");  // on close

  c.fsync_interval_ms = 1;
  auto w = open(c);
  std::this_thread::sleep_for(std::chrono::milliseconds(3));  // lets the interval pass; not synchronization
  append_n(*w, 1);
  EXPECT_EQ(read_file(path("control.head")).substr(0, 2), "6 ");
}

// ---- rotation and retention ----

TEST_F(ChainTest, RotationBySizeKeepsOneChain) {
  ChainConfig c = config();
  c.rotate_bytes = 700;
  {
    auto w = open(c);
    append_n(*w, 20);
  }
  auto names = chain_files();
  ASSERT_GT(names.size(), 3u);
  for (const auto& n : names) {
    Lines l = lines(path(n));
    ASSERT_FALSE(l.empty());
    EXPECT_EQ(n, "control-" + std::string(12 - record_field(l[0], "seq")->size(), '0') + *record_field(l[0], "seq") +
                     ".jsonl");
    EXPECT_LE(read_file(path(n)).size(), 700u);
  }
  VerifyReport r = verify();
  EXPECT_TRUE(r.ok) << all(r);
  EXPECT_EQ(r.records, 20u);
  EXPECT_EQ(r.files, names.size());
  // Reopen continues in the newest file and the chain stays whole.
  auto w = open(c);
  append_n(*w, 5, kT0 + 100 * kSec);
  EXPECT_TRUE(verify().ok) << all(verify());
}

TEST_F(ChainTest, RotationByAge) {
  ChainConfig c = config();
  c.rotate_seconds = 60;
  auto w = open(c);
  ASSERT_TRUE(w->append(kT0, "").ok());
  ASSERT_TRUE(w->append(kT0 + 59 * kSec, "").ok());
  ASSERT_TRUE(w->append(kT0 + 60 * kSec, "").ok());
  EXPECT_EQ(chain_files(), (Lines{"control-000000000001.jsonl", "control-000000000003.jsonl"}));
}

TEST_F(ChainTest, RemovedFilesAreCaught) {
  ChainConfig c = config();
  c.rotate_bytes = 1;  // one record per file
  {
    auto w = open(c);
    append_n(*w, 4);
  }
  std::filesystem::remove(path("control-000000000002.jsonl"));
  EXPECT_EQ(verify().problems,
            Lines{"control-000000000003.jsonl:1: seq 3 follows 1: record 2 was removed (a file is missing?)"});
  std::filesystem::remove(path("control-000000000001.jsonl"));
  EXPECT_EQ(verify().problems,
            Lines{"control-000000000003.jsonl:1: the chain starts at seq 3, not 1: records 1..2 were removed"});
  std::filesystem::remove(path("control-000000000004.jsonl"));
  EXPECT_EQ(verify().problems,
            (Lines{"control-000000000003.jsonl:1: the chain starts at seq 3, not 1: records 1..2 were removed",
                   "control.head: head says seq 4 but the last record is 3: records were removed from the end"}));
}

TEST_F(ChainTest, RetentionDeletesOldFilesAndVerifyStartsAtTheAnchor) {
  ChainConfig c = config();
  c.rotate_seconds = 3600;
  c.retention_seconds = 7200;
  std::string seq5_hash;
  {
    auto w = open(c);
    for (int64_t h = 0; h < 6; ++h) {  // two records an hour, a file per hour
      ASSERT_TRUE(w->append(kT0 + h * 3600 * kSec, "\"kind\":\"a\"").ok());
      ASSERT_TRUE(w->append(kT0 + (h * 3600 + 1800) * kSec, "\"kind\":\"b\"").ok());
      if (h == 2) seq5_hash = sha256_hex(lines(path("control-000000000005.jsonl"))[0]);
    }
  }
  // At the last rotation (5h), files whose last record is more than 2h older are gone: hours 0..2
  // (their last records at 0.5h, 1.5h, 2.5h).
  EXPECT_EQ(chain_files(),
            (Lines{"control-000000000007.jsonl", "control-000000000009.jsonl", "control-000000000011.jsonl"}));
  EXPECT_EQ(read_file(path("control.anchor")).substr(0, 2), "6 ");
  VerifyReport r = verify();
  EXPECT_TRUE(r.ok) << all(r);
  EXPECT_EQ(r.first_seq, 7u);
  EXPECT_EQ(r.last_seq, 12u);

  // The anchor is checked: the first remaining record must link to it.
  std::string anchor = read_file(path("control.anchor"));
  write_file(path("control.anchor"), "6 " + seq5_hash + "\n");
  EXPECT_EQ(verify().problems, Lines{"control-000000000007.jsonl:1: prev does not match the anchor: the first line "
                                     "was edited or the anchor"});
  write_file(path("control.anchor"), anchor);
  std::filesystem::remove(path("control-000000000007.jsonl"));
  EXPECT_EQ(verify().problems, Lines{"control-000000000009.jsonl:1: seq 9 follows the anchor's 6: records 7..8 were "
                                     "removed"});
  // Reopening after retention continues the chain.
  auto w = open(c);
  EXPECT_EQ(w->last_seq(), 12u);
}

TEST_F(ChainTest, LeftoversOfAnInterruptedRetentionPassAreSkipped) {
  ChainConfig c = config();
  c.rotate_bytes = 1;
  {
    auto w = open(c);
    append_n(*w, 4);
  }
  // As if retention wrote the anchor for files 1..2 and crashed before deleting file 2.
  std::filesystem::remove(path("control-000000000001.jsonl"));
  write_file(path("control.anchor"), "2 " + sha256_hex(lines(path("control-000000000002.jsonl"))[0]) + "\n");
  VerifyReport r = verify();
  EXPECT_TRUE(r.ok) << all(r);
  EXPECT_EQ(r.first_seq, 3u);
}

TEST_F(ChainTest, ReopenWithOnlyTheAnchorLeftContinuesFromIt) {
  make_chain(2);
  std::string hash = sha256_hex(lines(file1())[1]);
  std::filesystem::remove(file1());
  std::filesystem::remove(path("control.head"));
  write_file(path("control.anchor"), "2 " + hash + "\n");
  auto w = open(config());
  EXPECT_EQ(w->last_seq(), 2u);
  ASSERT_EQ(w->append(kT0, "").value(), 3u);
  EXPECT_TRUE(verify().ok) << all(verify());
}

// ---- query ----

class QueryTest : public ChainTest {
 protected:
  void SetUp() override {
    auto ctl = open(config("control"));
    auto dp = open(config("dataplane"));
    ASSERT_TRUE(ctl->append(kT0 + 1 * kSec, "\"kind\":\"block\",\"account\":\"alice\"").ok());
    ASSERT_TRUE(dp->append(kT0 + 0 * kSec, "\"kind\":\"match\",\"account\":\"alice\",\"rule\":7").ok());
    ASSERT_TRUE(
        dp->append(kT0 + 2 * kSec, "\"kind\":\"match\",\"account\":\"bob\",\"peer\":{\"account\":\"alice\"}").ok());
    ASSERT_TRUE(ctl->append(kT0 + 2 * kSec, "\"kind\":\"unblock\",\"account\":\"alice\"").ok());
    ASSERT_TRUE(ctl->append(kT0 + 3 * kSec, "\"kind\":\"note\",\"account\":\"alice2\"").ok());
  }
  Lines run(const QueryFilter& f) {
    auto r = query({{dir / "rec", "control"}, {dir / "rec", "dataplane"}}, f);
    EXPECT_TRUE(r.ok()) << r.error();
    return r ? r.value() : Lines{};
  }
  static Lines kinds(const Lines& lines) {
    Lines out;
    for (const auto& l : lines) out.push_back(*record_field(l, "kind"));
    return out;
  }
};

TEST_F(QueryTest, MergesSourcesByTimeStably) {
  // Equal times (2s): the control source comes first, as listed.
  EXPECT_EQ(kinds(run({})), (Lines{"match", "block", "unblock", "match", "note"}));
}

TEST_F(QueryTest, AccountSinceAndLimit) {
  QueryFilter f;
  f.account = "alice";
  EXPECT_EQ(kinds(run(f)), (Lines{"match", "block", "unblock"}));  // not "alice2", not bob's peer
  f.since_ns = kT0 + 1 * kSec;
  EXPECT_EQ(kinds(run(f)), (Lines{"block", "unblock"}));
  f.account.reset();
  f.since_ns = at("2026-11-28T21:14:06.123Z");
  EXPECT_EQ(kinds(run(f)), (Lines{"unblock", "match", "note"}));
  f.limit = 2;
  EXPECT_EQ(kinds(run(f)), (Lines{"match", "note"}));  // the last two
  f.limit = 0;
  f.account = "carol";
  EXPECT_TRUE(run(f).empty());
}

TEST_F(QueryTest, PseudonymizesEveryAccount) {
  Key key{};
  key[0] = 9;
  QueryFilter f;
  f.pseudonym_key = &key;
  Lines out = run(f);
  ASSERT_EQ(out.size(), 5u);
  for (const auto& l : out) {
    EXPECT_EQ(l.find("alice"), std::string::npos) << l;
    EXPECT_EQ(l.find("bob"), std::string::npos) << l;
  }
  EXPECT_EQ(record_field(out[0], "account"), pseudonym(key, "alice"));
  EXPECT_NE(out[3].find("\"peer\":{\"account\":\"" + pseudonym(key, "alice") + "\"}"), std::string::npos) << out[3];
  // Filtering is on the real account.
  f.account = "bob";
  out = run(f);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(record_field(out[0], "account"), pseudonym(key, "bob"));
}

TEST_F(QueryTest, MissingSourceDirectoryIsAnError) {
  auto r = query({{dir / "nope", "control"}}, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error(), dir / "nope" + ": cannot read directory: No such file or directory");
}

// ---- time ----

TEST(ChainTime, FormatAndParse) {
  EXPECT_EQ(format_time(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_time(kT0), "2026-11-28T21:14:04.123Z");
  EXPECT_EQ(format_time(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_time(at("2024-02-29T23:59:59.999999999Z")), "2024-02-29T23:59:59.999Z");

  const int64_t now = kT0;
  EXPECT_EQ(parse_time("2026-11-28T21:14:04Z", now).value(), kT0 - 123'000'000);
  EXPECT_EQ(parse_time("2026-11-28T21:14:04.123Z", now).value(), kT0);
  EXPECT_EQ(parse_time("2026-11-28T21:14:04.5Z", now).value(), kT0 + 377'000'000);
  EXPECT_EQ(parse_time("2026-11-28", now).value(), kT0 - (21 * 3600 + 14 * 60 + 4) * kSec - 123'000'000);
  EXPECT_EQ(parse_time("1764364444", now).value(), 1764364444 * kSec);
  EXPECT_EQ(format_time(parse_time("1764364444", now).value()), "2025-11-28T21:14:04.000Z");
  EXPECT_EQ(parse_time("-45s", now).value(), now - 45 * kSec);
  EXPECT_EQ(parse_time("-30m", now).value(), now - 30 * kSec * 60);
  EXPECT_EQ(parse_time("-2h", now).value(), now - 2 * kSec * 3600);
  EXPECT_EQ(parse_time("-7d", now).value(), now - 7 * kSec * 86400);

  for (const char* bad : {"", "yesterday", "-2w", "-h", "2026-13-01", "2026-02-29", "2026-11-28T24:00:00Z",
                          "2026-11-28T21:14:04", "2026-11-28 21:14:04Z", "2026-11-28T21:14:04.Z",
                          "2026-11-28T21:14:04.1234567890Z", "99999999999999999999", "-99999999999d", "+2h"}) {
    auto r = parse_time(bad, now);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error(), std::string("cannot read time \"") + bad +
                             "\": use 2026-11-28T21:14:04Z, 2026-11-28T21:14:04.123Z, 2026-11-28, unix seconds "
                             "(1764364444) or a time relative to now (-45s, -30m, -2h, -7d)");
  }
}

TEST(ChainRecordField, StringsAndNumbers) {
  std::string line = "{\"seq\":12,\"time\":\"t\",\"account\":\"a\\\"b\",\"x\":true}";
  EXPECT_EQ(record_field(line, "seq"), "12");
  EXPECT_EQ(record_field(line, "account"), "a\"b");
  EXPECT_EQ(record_field(line, "x"), std::nullopt);
  EXPECT_EQ(record_field(line, "nope"), std::nullopt);
  EXPECT_EQ(record_field("not json", "seq"), std::nullopt);
}

// ---- ChainReader ----

TEST_F(ChainTest, ReaderFollowsAppendsAndRotation) {
  ChainConfig c = config("dataplane");
  c.rotate_bytes = 700;
  c.fsync_every = 0;  // the reader sees what was written, durable or not
  auto w = open(c);
  ChainReader reader(c.dir, "dataplane", 0);
  EXPECT_TRUE(reader.next(10).value().empty());
  append_n(*w, 3);
  Lines got = reader.next(10).value();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(record_field(got[0], "seq"), "1");
  EXPECT_EQ(got[2], lines(path("dataplane-000000000001.jsonl"))[2]);
  EXPECT_TRUE(reader.next(10).value().empty());

  append_n(*w, 20, kT0 + 100 * kSec);  // crosses several files
  ASSERT_GT(chain_files("dataplane").size(), 3u);
  Lines all_lines;
  for (Lines part; !(part = reader.next(4).value()).empty();) {
    EXPECT_LE(part.size(), 4u);
    all_lines.insert(all_lines.end(), part.begin(), part.end());
  }
  ASSERT_EQ(all_lines.size(), 20u);
  for (size_t i = 0; i < all_lines.size(); ++i) EXPECT_EQ(record_field(all_lines[i], "seq"), std::to_string(i + 4));
  EXPECT_EQ(reader.last_seq(), 23u);
  EXPECT_EQ(reader.skipped(), 0u);

  // Starting part way, in a later file.
  ChainReader mid(c.dir, "dataplane", 17);
  got = mid.next(100).value();
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(record_field(got[0], "seq"), "18");
}

TEST_F(ChainTest, ReaderWaitsForACompleteLine) {
  make_chain(2);
  ChainReader reader(dir / "rec", "control", 0);
  ASSERT_EQ(reader.next(10).value().size(), 2u);
  std::string next = "{\"seq\":3,\"time\":\"2026-11-28T21:14:09.000Z\",\"appliance\":\"x\",\"source\":\"control\"";
  write_file(file1(), read_file(file1()) + next);
  EXPECT_TRUE(reader.next(10).value().empty());
  write_file(file1(), read_file(file1()) + ",\"prev\":\"" + kZeros + "\"}\n");
  Lines got = reader.next(10).value();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(record_field(got[0], "seq"), "3");
}

TEST_F(ChainTest, ReaderSkipsFilesDeletedByRetention) {
  ChainConfig c = config();
  c.rotate_bytes = 1;
  {
    auto w = open(c);
    append_n(*w, 5);
  }
  std::filesystem::remove(path("control-000000000001.jsonl"));
  std::filesystem::remove(path("control-000000000002.jsonl"));
  ChainReader reader(c.dir, "control", 0);
  Lines got = reader.next(10).value();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(record_field(got[0], "seq"), "3");
  EXPECT_EQ(reader.skipped(), 2u);
}

TEST(ChainReaderMissing, MissingDirectoryReadsAsEmpty) {
  ChainReader reader("/nonexistent/imf-records", "dataplane", 5);
  auto r = reader.next(10);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(r.value().empty());
  EXPECT_EQ(reader.last_seq(), 5u);
}

}  // namespace
}  // namespace imf::records
