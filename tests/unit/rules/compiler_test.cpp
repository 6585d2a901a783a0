#include "rules/compiler.h"

#include <gtest/gtest.h>

#include "rules/hs_handles.h"
#include "rules/rule_parser.h"

namespace imf::rules {
namespace {

RuleSet parse(const char* text) {
  auto r = parse_rules(text, "t.rules");
  EXPECT_TRUE(r.ok()) << r.error();
  return r.value();
}

TEST(Compiler, CompilesLiteralsAndRegexesIntoOneStreamingDatabase) {
  auto c = compile_rules(parse("a drop payload \"a.b\"\nb alert payload,topic /x+y/i\n"));
  ASSERT_TRUE(c.ok()) << c.error();
  ASSERT_EQ(c->rules.size(), 2u);
  EXPECT_EQ(c->rules[0].id, "a");
  EXPECT_EQ(c->rules[1].scope, kScopePayload | kScopeTopic);
  hs_database_t* db = nullptr;
  ASSERT_EQ(hs_deserialize_database(c->database.data(), c->database.size(), &db), HS_SUCCESS);
  HsDatabase owned(db);
  char* info = nullptr;
  ASSERT_EQ(hs_database_info(db, &info), HS_SUCCESS);
  EXPECT_NE(std::string(info).find("STREAM"), std::string::npos) << info;
  free(info);
}

TEST(Compiler, LiteralMetacharactersAreEscaped) {
  Rule r;
  r.literal = true;
  r.pattern = "a.b*(c)\n";
  EXPECT_EQ(hs_expression(r), "a\\x2eb\\x2a\\x28c\\x29\\x0a");
}

TEST(Compiler, Utf8LiteralMatchesItsCharactersNotLatin1CodePoints) {
  auto c = compile_rules(parse("cafe alert payload \"caf\xc3\xa9 au lait\"u\n"));
  ASSERT_TRUE(c.ok()) << c.error();
  hs_database_t* db = nullptr;
  ASSERT_EQ(hs_deserialize_database(c->database.data(), c->database.size(), &db), HS_SUCCESS);
  HsDatabase owned(db);
  hs_scratch_t* s = nullptr;
  ASSERT_EQ(hs_alloc_scratch(db, &s), HS_SUCCESS);
  HsScratch scratch(s);
  auto count = [&](const std::string& text) {
    int hits = 0;
    hs_stream_t* st = nullptr;
    EXPECT_EQ(hs_open_stream(db, 0, &st), HS_SUCCESS);
    auto on_match = [](unsigned, unsigned long long, unsigned long long, unsigned, void* ctx) {
      ++*static_cast<int*>(ctx);
      return 0;
    };
    hs_scan_stream(st, text.data(), static_cast<unsigned>(text.size()), 0, s, on_match, &hits);
    hs_close_stream(st, s, on_match, &hits);
    return hits;
  };
  EXPECT_EQ(count("un caf\xc3\xa9 au lait"), 1);
  EXPECT_EQ(count("un caf\xe9 au lait"), 0);
}

TEST(Compiler, FlagsMapToHyperscan) {
  Rule r;
  r.flags = kFlagCaseless | kFlagDotAll | kFlagMultiline | kFlagUtf8;
  unsigned f = hs_flags(r);
  EXPECT_TRUE(f & HS_FLAG_SINGLEMATCH);
  EXPECT_TRUE(f & HS_FLAG_CASELESS);
  EXPECT_TRUE(f & HS_FLAG_DOTALL);
  EXPECT_TRUE(f & HS_FLAG_MULTILINE);
  EXPECT_TRUE(f & HS_FLAG_UTF8);
  EXPECT_TRUE(f & HS_FLAG_UCP);
}

TEST(Compiler, NamesEveryRejectedRule) {
  auto c =
      compile_rules(parse("ok drop payload \"fine\"\n"
                          "backref drop payload /(a)\\1/\n"
                          "lookbehind alert payload /(?<=a)b/\n"
                          "empty alert payload /a*/\n"));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().find("t.rules:2: rule 'backref': pattern rejected by Hyperscan"), std::string::npos) << c.error();
  EXPECT_NE(c.error().find("t.rules:3: rule 'lookbehind': pattern rejected by Hyperscan"), std::string::npos)
      << c.error();
  EXPECT_NE(c.error().find("t.rules:4: rule 'empty': pattern can match an empty message"), std::string::npos)
      << c.error();
  EXPECT_EQ(c.error().find("'ok'"), std::string::npos);
}

TEST(Compiler, ExampleRuleSetCompiles) {
  auto set = load_rules_file(IMF_SOURCE_ROOT "/config/rules/example.rules");
  ASSERT_TRUE(set.ok()) << set.error();
  auto c = compile_rules(set.value());
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->rules.size(), set->rules.size());
}

}  // namespace
}  // namespace imf::rules
