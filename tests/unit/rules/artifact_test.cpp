#include "rules/artifact.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>

#include "rules/rule_parser.h"

namespace imf::rules {
namespace {

RuleSetArtifact sample() {
  auto set = parse_rules("a drop payload \"x\"\nb alert payload,topic /y+/i\n", "t.rules");
  EXPECT_TRUE(set.ok());
  auto compiled = compile_rules(set.value());
  EXPECT_TRUE(compiled.ok());
  RuleSetArtifact a;
  a.version = 42;
  a.created_unix_ms = 1767225600000;
  a.source = "t.rules";
  a.rules_text = "a drop payload \"x\"\nb alert payload,topic /y+/i\n";
  a.compiled = compiled.value();
  return a;
}

TEST(Artifact, RoundTripsEveryField) {
  RuleSetArtifact a = sample();
  auto b = decode_artifact(encode_artifact(a), "mem");
  ASSERT_TRUE(b.ok()) << b.error();
  EXPECT_EQ(b->version, 42u);
  EXPECT_EQ(b->created_unix_ms, a.created_unix_ms);
  EXPECT_EQ(b->source, a.source);
  EXPECT_EQ(b->rules_text, a.rules_text);
  ASSERT_EQ(b->compiled.rules.size(), 2u);
  EXPECT_EQ(b->compiled.rules[1].id, "b");
  EXPECT_EQ(b->compiled.rules[0].action, Action::kDrop);
  EXPECT_EQ(b->compiled.rules[1].scope, kScopePayload | kScopeTopic);
  EXPECT_EQ(b->compiled.database, a.compiled.database);
}

TEST(Artifact, RuleProtocolsRoundTrip) {
  auto set = parse_rules("a drop body protocol=irc,xmpp \"x\"\nb drop body \"y\"\n", "p.rules");
  ASSERT_TRUE(set.ok()) << set.error();
  RuleSetArtifact a;
  a.version = 7;
  a.compiled = compile_rules(set.value()).value();
  auto b = decode_artifact(encode_artifact(a), "mem");
  ASSERT_TRUE(b.ok()) << b.error();
  EXPECT_EQ(b->compiled.rules[0].cond.protocols, kProtoIrc | kProtoXmpp);
  EXPECT_EQ(b->compiled.rules[1].cond.protocols, 0);
}

TEST(Artifact, EveryFlippedByteOrTruncationIsRejected) {
  std::string bytes = encode_artifact(sample());
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x20);
    EXPECT_FALSE(decode_artifact(bad, "mem").ok()) << "byte " << i;
  }
  for (size_t n : {size_t{0}, size_t{7}, size_t{16}, bytes.size() / 2, bytes.size() - 1}) {
    auto r = decode_artifact(bytes.substr(0, n), "mem");
    ASSERT_FALSE(r.ok()) << n;
    EXPECT_NE(r.error().find("mem: not a valid rule-set artifact"), std::string::npos) << r.error();
  }
}

TEST(Artifact, WriteIsAtomicAndReadNamesThePath) {
  std::string dir = ::testing::TempDir();
  std::string path = dir + "/artifact_test_" + std::to_string(getpid()) + ".imfrules";
  ASSERT_TRUE(write_artifact(path, sample()).ok());
  auto r = read_artifact(path);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->version, 42u);
  std::remove(path.c_str());
  auto missing = read_artifact(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find(path), std::string::npos);
  EXPECT_FALSE(write_artifact("/nonexistent-dir/x.imfrules", sample()).ok());
}

}  // namespace
}  // namespace imf::rules
