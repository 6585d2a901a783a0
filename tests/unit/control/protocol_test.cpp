#include "proto/protocol.h"

#include <gtest/gtest.h>

namespace imf::proto {
namespace {

TEST(Protocol, ParsesAFullRequestAndEchoesItsId) {
  json::Value id;
  auto r = parse_request(R"({"v":1,"id":"req-7","cmd":"rules.show","args":{"version":3}})", &id);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(id.as_string(), "req-7");
  EXPECT_EQ(r->cmd, "rules.show");
  EXPECT_EQ(get_int(r->args, "version"), 3);
  EXPECT_EQ(ok_line(id, json::Object{}), "{\"v\":1,\"id\":\"req-7\",\"ok\":true,\"result\":{}}\n");
}

TEST(Protocol, IdAndArgsAreOptional) {
  json::Value id;
  auto r = parse_request(R"({"v":1,"cmd":"health"})", &id);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_TRUE(id.is_null());
  EXPECT_TRUE(r->args.is_object());
  EXPECT_EQ(error_line(id, "x"), "{\"v\":1,\"id\":null,\"ok\":false,\"error\":\"x\"}\n");
  EXPECT_EQ(progress_line(42, "compiling"), "{\"v\":1,\"id\":42,\"progress\":\"compiling\"}\n");
}

struct Bad {
  const char* line;
  const char* error;
  bool id_known;
};

class ProtocolBadRequest : public ::testing::TestWithParam<Bad> {};

TEST_P(ProtocolBadRequest, NamesTheProblem) {
  json::Value id;
  auto r = parse_request(GetParam().line, &id);
  ASSERT_FALSE(r.ok()) << GetParam().line;
  EXPECT_NE(r.error().find(GetParam().error), std::string::npos) << r.error();
  EXPECT_EQ(!id.is_null(), GetParam().id_known) << json::to_string(id);
}

INSTANTIATE_TEST_SUITE_P(
    All, ProtocolBadRequest,
    ::testing::Values(Bad{"{\"v\":1,\"cmd\":", "malformed JSON at byte 13", false},
                      Bad{"[1]", "request must be a JSON object, not an array", false},
                      Bad{R"({"id":1,"cmd":"health"})", "missing field 'v'", true},
                      Bad{R"({"v":2,"id":1,"cmd":"health"})", "unsupported protocol version 2 (this daemon speaks 1)",
                          true},
                      Bad{R"({"v":"1","cmd":"health"})", "unsupported protocol version \"1\"", false},
                      Bad{R"({"v":1,"id":"a"})", "missing field 'cmd'", true},
                      Bad{R"({"v":1,"cmd":7})", "field 'cmd' must be a string", false},
                      Bad{R"({"v":1,"cmd":"health","args":[]})", "field 'args' must be an object", false},
                      Bad{R"({"v":1,"cmd":"health","arg":{}})", "unknown field 'arg' in request", false},
                      Bad{R"({"v":1,"id":[1],"cmd":"health"})", "field 'id' must be a string or a number", false}));

TEST(Protocol, CheckArgsNamesCommandFieldAndType) {
  auto args = json::parse(R"({"table":"t","key":5})");
  ASSERT_TRUE(args.ok());
  Status s =
      check_args("table.get", args.value(), {{"table", json::Type::kString, true}, {"key", json::Type::kString, true}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "table.get: args.key must be a string, not an integer");

  s = check_args("table.get", json::Object{}, {{"table", json::Type::kString, true}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "table.get: missing args.table");

  auto extra = json::parse(R"({"txt":"x"})");
  s = check_args("rules.load", extra.value(),
                 {{"text", json::Type::kString, false}, {"path", json::Type::kString, false}});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "rules.load: unknown field 'txt' in args (allowed: text, path)");

  s = check_args("stats", extra.value(), {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error(), "stats: unknown field 'txt' in args (this command takes none)");
}

TEST(Protocol, RequestLineIsOneLine) {
  json::Value args = json::Object{};
  args.set("text", "a\nb\n");
  std::string line = request_line(1, "rules.load", args);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  json::Value id;
  auto r = parse_request(std::string_view(line).substr(0, line.size() - 1), &id);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(*get_string(r->args, "text"), "a\nb\n");
}

}  // namespace
}  // namespace imf::proto
