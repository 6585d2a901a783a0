#include "daemon/config.h"

#include <gtest/gtest.h>

#include "temp_dir.h"

namespace imf::control {
namespace {

TEST(Config, DefaultsWhenEmpty) {
  auto c = parse_config("# nothing but a comment\n\n", "c.conf");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->socket, "/run/imf/control.sock");
  EXPECT_EQ(c->keep_versions, 10u);
  EXPECT_EQ(c->max_request_bytes, 64ull << 20);
  EXPECT_TRUE(c->group.empty());
  EXPECT_TRUE(c->metrics_listen.empty());
}

TEST(Config, ParsesEveryKey) {
  auto c = parse_config(
      "socket = /run/x/c.sock\n"
      "  group=root  \n"
      "state_dir = /var/lib/x\n"
      "keep_versions = 3\n"
      "dataplane_socket = /run/x/dp.sock\n"
      "metrics_listen = 127.0.0.1:9477\n"
      "max_request_bytes = 2M\n"
      "resync_interval = 7\n",
      "c.conf");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->socket, "/run/x/c.sock");
  EXPECT_EQ(c->group, "root");
  EXPECT_EQ(c->gid, 0u);
  EXPECT_EQ(c->state_dir, "/var/lib/x");
  EXPECT_EQ(c->keep_versions, 3u);
  EXPECT_EQ(c->dataplane_socket, "/run/x/dp.sock");
  EXPECT_EQ(c->metrics.host, "127.0.0.1");
  EXPECT_EQ(c->metrics.port, 9477);
  EXPECT_EQ(c->max_request_bytes, 2ull << 20);
  EXPECT_EQ(c->resync_interval_s, 7u);
}

struct Bad {
  const char* text;
  const char* error;  // the whole message
};

class ConfigErrors : public ::testing::TestWithParam<Bad> {};

TEST_P(ConfigErrors, NameFileLineAndKey) {
  auto c = parse_config(GetParam().text, "c.conf");
  ASSERT_FALSE(c.ok()) << GetParam().text;
  EXPECT_EQ(c.error(), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    All, ConfigErrors,
    ::testing::Values(
        Bad{"socket = /a\nsokket = /b\n",
            "c.conf:2: unknown key 'sokket' (known: socket, group, state_dir, keep_versions, dataplane_socket, "
            "metrics_listen, max_request_bytes, resync_interval, appliance_id, policy_file, digest_key_file, "
            "records_dir, dataplane_records_dir, records_rotate_bytes, records_rotate_seconds, "
            "records_retention_days, records_fsync_every)"},
        Bad{"appliance_id = box one\n",
            "c.conf:1: appliance_id: 'box one' holds a character other than printable ASCII (no spaces, quotes, "
            "backslashes)"},
        Bad{"records_rotate_bytes = 2G\n", "c.conf:1: records_rotate_bytes: '2G': must be between 1K and 1G"},
        Bad{"records_rotate_seconds = 10\n",
            "c.conf:1: records_rotate_seconds: '10' is not a number of seconds from 60 to 31622400"},
        Bad{"records_retention_days = -1\n",
            "c.conf:1: records_retention_days: '-1' is not a number of days from 0 to 36500"},
        Bad{"records_fsync_every = 0\n", "c.conf:1: records_fsync_every: '0' is not a number from 1 to 1000000"},
        Bad{"records_dir = /a\nrecords_dir = /b\n", "c.conf:2: records_dir: given twice"},
        Bad{"\n\njust words\n", "c.conf:3: expected 'key = value'"}, Bad{"= 3\n", "c.conf:1: expected 'key = value'"},
        Bad{"socket =\n", "c.conf:1: socket: empty value"},
        Bad{"keep_versions = 0\n", "c.conf:1: keep_versions: '0' is not a number from 1 to 10000"},
        Bad{"keep_versions = ten\n", "c.conf:1: keep_versions: 'ten' is not a number from 1 to 10000"},
        Bad{"keep_versions = 2\nkeep_versions = 3\n", "c.conf:2: keep_versions: given twice"},
        Bad{"group = no-such-group-imf\n", "c.conf:1: group: no such group 'no-such-group-imf'"},
        Bad{"metrics_listen = 0.0.0.0:9477\n",
            "c.conf:1: metrics_listen: 0.0.0.0 is not a loopback address (metrics are served on loopback only)"},
        Bad{"metrics_listen = 10.1.2.3:80\n",
            "c.conf:1: metrics_listen: 10.1.2.3 is not a loopback address (metrics are served on loopback only)"},
        Bad{"metrics_listen = [::]:9477\n",
            "c.conf:1: metrics_listen: :: is not a loopback address (metrics are served on loopback only)"},
        Bad{"metrics_listen = 9477\n", "c.conf:1: metrics_listen: '9477' is not HOST:PORT"},
        Bad{"metrics_listen = 127.0.0.1:99999\n", "c.conf:1: metrics_listen: '99999' is not a port number"},
        Bad{"metrics_listen = example.com:80\n",
            "c.conf:1: metrics_listen: 'example.com' is not a numeric address or localhost"},
        Bad{"max_request_bytes = 12\n", "c.conf:1: max_request_bytes: '12': must be between 1K and 1G"},
        Bad{"max_request_bytes = 2T\n",
            "c.conf:1: max_request_bytes: '2T': not a size (bytes, or a number with K, M or G)"},
        Bad{"max_request_bytes = 99999999999999G\n",
            "c.conf:1: max_request_bytes: '99999999999999G': must be between "
            "1K and 1G"},
        Bad{"resync_interval = 0\n", "c.conf:1: resync_interval: '0' is not a number of seconds from 1 to 3600"}));

TEST(Config, AccountsAndRecordsKeys) {
  auto c = parse_config(
      "state_dir = /var/lib/x\n"
      "appliance_id = edge-7.example\n"
      "policy_file = /etc/imf/policy.conf\n"
      "records_dir = /srv/records\n"
      "records_rotate_bytes = 16M\n"
      "records_rotate_seconds = 3600\n"
      "records_retention_days = 0\n"
      "records_fsync_every = 100\n",
      "c.conf");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->appliance_id, "edge-7.example");
  EXPECT_EQ(c->policy_file, "/etc/imf/policy.conf");
  EXPECT_EQ(c->records_rotate_bytes, 16ull << 20);
  EXPECT_EQ(c->records_rotate_seconds, 3600u);
  EXPECT_EQ(c->records_retention_days, 0u);
  EXPECT_EQ(c->records_fsync_every, 100u);
  ControlConfig r = c.value();
  resolve_default_paths(&r);
  EXPECT_EQ(r.records_dir, "/srv/records");
  EXPECT_EQ(r.digest_key_file, "/var/lib/x/digest.key");
  EXPECT_EQ(r.dataplane_records_dir, "/var/lib/x/dataplane-records");
  EXPECT_EQ(r.appliance_id, "edge-7.example");

  auto d = parse_config("", "c.conf");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->records_rotate_bytes, 64ull << 20);
  EXPECT_EQ(d->records_rotate_seconds, 86400u);
  EXPECT_EQ(d->records_retention_days, 365u);
  EXPECT_EQ(d->records_fsync_every, 1u);
  EXPECT_TRUE(d->policy_file.empty());
  ControlConfig dr = d.value();
  resolve_default_paths(&dr);
  EXPECT_EQ(dr.records_dir, "/var/lib/imf/records");
  EXPECT_FALSE(dr.appliance_id.empty());  // the host name
}

TEST(Config, LoopbackAddressesAreAccepted) {
  for (const char* ok : {"127.0.0.1:0", "127.1.2.3:9477", "[::1]:9477", "localhost:9477"}) {
    auto a = parse_loopback_listen(ok);
    EXPECT_TRUE(a.ok()) << ok << ": " << a.error();
  }
  EXPECT_TRUE(parse_loopback_listen("[::1]:1")->ipv6);
}

TEST(Config, LoadConfigNamesAMissingFile) {
  testing::TempDir dir;
  auto c = load_config(dir / "absent.conf");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error(), dir / "absent.conf" + ": cannot open configuration file");
  testing::write_file(dir / "c.conf", "keep_versions = 4\n");
  auto ok = load_config(dir / "c.conf");
  ASSERT_TRUE(ok.ok()) << ok.error();
  EXPECT_EQ(ok->keep_versions, 4u);
}

TEST(Config, TheShippedExampleParses) {
  auto c = load_config(std::string(IMF_SOURCE_ROOT) + "/config/control.conf");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->metrics_listen, "127.0.0.1:9477");
  EXPECT_EQ(c->keep_versions, 10u);
}

}  // namespace
}  // namespace imf::control
