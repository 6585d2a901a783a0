#include "proto/json.h"

#include <gtest/gtest.h>

namespace imf::json {
namespace {

TEST(Json, ParsesEveryKindAndKeepsMemberOrder) {
  auto v = parse(R"( {"b":true,"a":[1,-2,3.5,"x",null,{}],"n":false,"big":12345678901234,"e":1e3} )");
  ASSERT_TRUE(v.ok()) << v.error();
  ASSERT_TRUE(v->is_object());
  const Object& o = v->as_object();
  ASSERT_EQ(o.size(), 5u);
  EXPECT_EQ(o[0].first, "b");
  EXPECT_EQ(o[1].first, "a");
  EXPECT_TRUE(v->find("b")->as_bool());
  const Array& a = v->find("a")->as_array();
  ASSERT_EQ(a.size(), 6u);
  EXPECT_EQ(a[0].as_int(), 1);
  EXPECT_EQ(a[1].as_int(), -2);
  EXPECT_EQ(a[2].type(), Type::kDouble);
  EXPECT_DOUBLE_EQ(a[2].as_double(), 3.5);
  EXPECT_EQ(a[3].as_string(), "x");
  EXPECT_TRUE(a[4].is_null());
  EXPECT_TRUE(a[5].is_object());
  EXPECT_EQ(v->find("big")->as_int(), 12345678901234);
  EXPECT_EQ(v->find("e")->type(), Type::kDouble);
  EXPECT_EQ(v->find("missing"), nullptr);
}

TEST(Json, WriterRoundTripsExactly) {
  const char* text = R"({"s":"a\"b\\c\n\t\u0001","i":-9223372036854775807,"d":0.1,"a":[[],{}],"t":true,"z":null})";
  auto v = parse(text);
  ASSERT_TRUE(v.ok()) << v.error();
  EXPECT_EQ(to_string(v.value()), text);
}

TEST(Json, DecodesEscapesAndSurrogatePairsToUtf8) {
  auto v = parse(R"("\u00e9\u20ac\ud83d\ude00\/")");
  ASSERT_TRUE(v.ok()) << v.error();
  EXPECT_EQ(v->as_string(), "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80/");
}

TEST(Json, PassesRawBytesThroughBothWays) {
  std::string raw = "caf\xe9 \xff\xfe";  // not UTF-8: a rule file's bytes must survive
  std::string out;
  write_string(out, raw);
  EXPECT_EQ(out, "\"" + raw + "\"");
  auto v = parse(out);
  ASSERT_TRUE(v.ok()) << v.error();
  EXPECT_EQ(v->as_string(), raw);
}

TEST(Json, WriterEscapesEveryControlCharacterSoNoRawNewlineLeaks) {
  std::string all;
  for (int c = 0; c < 0x20; ++c) all.push_back(static_cast<char>(c));
  std::string out = to_string(Value(all));
  for (char c : out) EXPECT_GE(static_cast<unsigned char>(c), 0x20);
  auto back = parse(out);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->as_string(), all);
}

TEST(Json, UnsignedBeyondInt64BecomesDouble) {
  Value v(uint64_t{18446744073709551615u});
  EXPECT_EQ(v.type(), Type::kDouble);
  EXPECT_EQ(Value(uint64_t{42}).as_int(), 42);
  auto p = parse("18446744073709551616");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->type(), Type::kDouble);
}

struct Bad {
  const char* text;
  const char* error;  // expected substring
};

class JsonMalformed : public ::testing::TestWithParam<Bad> {};

TEST_P(JsonMalformed, SaysWhereAndWhat) {
  auto v = parse(GetParam().text);
  ASSERT_FALSE(v.ok()) << GetParam().text;
  EXPECT_EQ(v.error().rfind("malformed JSON at byte ", 0), 0u) << v.error();
  EXPECT_NE(v.error().find(GetParam().error), std::string::npos) << v.error();
}

INSTANTIATE_TEST_SUITE_P(
    All, JsonMalformed,
    ::testing::Values(Bad{"", "unexpected end of input"}, Bad{"{", "member name"}, Bad{"{\"a\" 1}", "expected ':'"},
                      Bad{"{\"a\":1,}", "member name"}, Bad{"{\"a\":1 \"b\":2}", "expected ',' or '}'"},
                      Bad{"[1,2", "expected ',' or ']'"}, Bad{"[1,]", "expected a value"},
                      Bad{"\"abc", "unterminated string"}, Bad{"\"a\nb\"", "control character"},
                      Bad{"\"\\q\"", "unknown escape"}, Bad{"\"\\u12g4\"", "four hex digits"},
                      Bad{"\"\\ud800x\"", "low surrogate"}, Bad{"\"\\udc00\"", "lone low surrogate"},
                      Bad{"01", "leading zero"}, Bad{"1.", "digits after '.'"}, Bad{"1e", "exponent"},
                      Bad{"-", "expected a value"}, Bad{"tru", "expected a value"}, Bad{"nul", "expected a value"},
                      Bad{"{} {}", "unexpected bytes after the value"}, Bad{"{\"a\":1,\"a\":2}", "given twice"},
                      Bad{"1e999", "out of range"}, Bad{"'a'", "expected a value"}));

TEST(Json, RefusesDuplicateKeysInLargeObjectsToo) {
  std::string text = "{";
  for (int i = 0; i < 100; ++i) text += "\"k" + std::to_string(i) + "\":" + std::to_string(i) + ",";
  text += "\"k57\":0}";
  auto v = parse(text);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().find("member \"k57\" given twice"), std::string::npos) << v.error();
}

TEST(Json, NestingBeyondTheLimitIsAnErrorNotACrash) {
  std::string deep(64, '[');
  deep += std::string(64, ']');
  EXPECT_TRUE(parse(deep).ok());
  std::string too_deep(65, '[');
  too_deep += std::string(65, ']');
  auto v = parse(too_deep);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().find("nesting deeper than 64 levels"), std::string::npos) << v.error();
  std::string huge(1000000, '{');  // would overflow the stack without the limit
  EXPECT_FALSE(parse(huge).ok());
  EXPECT_FALSE(parse("{\"a\":[{\"b\":[1]}]}", ParseLimits{3}).ok());
  EXPECT_TRUE(parse("{\"a\":[{\"b\":[1]}]}", ParseLimits{4}).ok());
}

TEST(Json, LargeStringsParseInOnePass) {
  std::string csv;
  for (int i = 0; i < 200000; ++i) csv += "account" + std::to_string(i) + ",marker\n";
  std::string text;
  write_string(text, csv);
  auto v = parse(text);
  ASSERT_TRUE(v.ok()) << v.error();
  EXPECT_EQ(v->as_string(), csv);
}

TEST(Json, SetReplacesOrAppends) {
  Value o;
  o.set("a", 1);
  o.set("b", "x");
  o.set("a", 2);
  EXPECT_EQ(to_string(o), R"({"a":2,"b":"x"})");
}

}  // namespace
}  // namespace imf::json
