// Checks the construction imf-synth's benchmarks rely on, with the real engine: every trigger
// matches exactly its own rule, corpus bodies match none, a planted body matches once; the
// frame checksums against a plain reference; and that a fragmented capture reassembles into
// exactly the segments of the capture without fragmentation.
#include <gtest/gtest.h>
#include <hs/hs.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "clean_text.h"
#include "corpus.h"
#include "frame.h"
#include "messages.h"
#include "rule_generator.h"
#include "rules/compiler.h"
#include "rules/rule_parser.h"
#include "traffic.h"

namespace imf::bench::synth {
namespace {

std::string rule_id(size_t i) {
  std::string id = "r";
  return id.append(std::to_string(i));
}

// A block-mode database of generated rules, and the rule ids one string matches.
class Engine {
 public:
  explicit Engine(const std::vector<GeneratedRule>& gen) {
    std::string text;
    for (size_t i = 0; i < gen.size(); ++i)
      text.append(rule_id(i)).append(" alert payload ").append(gen[i].pattern) += '\n';
    auto set = rules::parse_rules(text, "gen.rules");
    EXPECT_TRUE(set.ok()) << set.error();
    std::vector<std::string> exprs;
    std::vector<const char*> ptrs;
    std::vector<unsigned> flags, ids;
    for (size_t i = 0; i < set->rules.size(); ++i) {
      exprs.push_back(rules::hs_expression(set->rules[i]));
      flags.push_back(rules::hs_flags(set->rules[i]));
      ids.push_back(static_cast<unsigned>(i));
    }
    for (const std::string& e : exprs) ptrs.push_back(e.c_str());
    hs_compile_error_t* err = nullptr;
    EXPECT_EQ(hs_compile_multi(ptrs.data(), flags.data(), ids.data(), static_cast<unsigned>(ptrs.size()), HS_MODE_BLOCK,
                               nullptr, &db_, &err),
              HS_SUCCESS)
        << (err ? err->message : "");
    if (err) hs_free_compile_error(err);
    EXPECT_EQ(hs_alloc_scratch(db_, &scratch_), HS_SUCCESS);
  }
  ~Engine() {
    hs_free_scratch(scratch_);
    hs_free_database(db_);
  }

  std::vector<unsigned> matches(std::string_view s) {
    std::vector<unsigned> out;
    auto on_match = [](unsigned id, unsigned long long, unsigned long long, unsigned, void* ctx) {
      static_cast<std::vector<unsigned>*>(ctx)->push_back(id);
      return 0;
    };
    EXPECT_EQ(hs_scan(db_, s.data(), static_cast<unsigned>(s.size()), 0, scratch_, on_match, &out), HS_SUCCESS);
    return out;
  }

 private:
  hs_database_t* db_ = nullptr;
  hs_scratch_t* scratch_ = nullptr;
};

std::vector<GeneratedRule> generate(size_t n, uint64_t seed) {
  RuleGenerator g(seed);
  std::vector<GeneratedRule> out;
  for (size_t i = 0; i < n; ++i) out.push_back(g.next(i));
  return out;
}

// Plain English with the traps natural text holds: digits, dotted words, a marker that must go.
constexpr const char* kCorpusText =
    "The quick brown fox jumps over the lazy dog near Iraq. Xerxes was a king.\n%\n"
    "Call me at 555 1234 or at 0800 123 456 between 9 and 17 o'clock; it is 3.14159 past noon.\n%\n"
    "Jack and Jill went up the hill to fetch a pail of water. Jack fell down and broke his crown,\n"
    "and Jill came tumbling after. Version 2.6.32-5 of the kernel fixed it in 2011.\n%\n"
    "This text holds an Iraqi quiz of sorts: qxz so it is dropped.\n%\n"
    "Your lucky number is 3552664958674928. Watch for it everywhere.\n%\n"
    "A well-known proverb: all that glitters is not gold, and every cloud has a silver lining.\n";

class CorpusFile {
 public:
  CorpusFile() {
    char tmpl[] = "/tmp/imf-synth-test-XXXXXX";
    int fd = mkstemp(tmpl);
    path_ = tmpl;
    FILE* f = fdopen(fd, "w");
    std::fputs(kCorpusText, f);
    std::fclose(f);
  }
  ~CorpusFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(CleanText, FindsMarkersAcrossOneSeparatorOnly) {
  EXPECT_EQ(profile_text("aqxb").markers, 1u);
  EXPECT_EQ(profile_text("aQ.Xb").markers, 1u);
  EXPECT_EQ(profile_text("aq. xb").markers, 0u);
  EXPECT_EQ(profile_text("box quiz jazz").markers, 0u);
  EXPECT_EQ(profile_text("+44 (123) 456-7890 12").longest_digit_run, 14u);  // the gap " " joins "12"
  EXPECT_EQ(profile_text("+44 (123) 456-7890; 12").longest_digit_run, 12u);
  EXPECT_EQ(profile_text("+44 (123) 456 / 7890").longest_digit_run, 8u);
}

TEST(RuleGenerator, SameSeedSameRulesAndTheDocumentedMix) {
  auto a = generate(500, 9), b = generate(500, 9);
  size_t per_kind[5] = {};
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].pattern, b[i].pattern);
    EXPECT_EQ(a[i].trigger, b[i].trigger);
    ++per_kind[static_cast<size_t>(a[i].kind)];
  }
  EXPECT_EQ(per_kind[static_cast<size_t>(RuleKind::kWord)], 200u);
  EXPECT_EQ(per_kind[static_cast<size_t>(RuleKind::kPhrase)], 100u);
  EXPECT_EQ(per_kind[static_cast<size_t>(RuleKind::kUrl)], 50u);
  EXPECT_EQ(per_kind[static_cast<size_t>(RuleKind::kPhone)], 50u);
  EXPECT_EQ(per_kind[static_cast<size_t>(RuleKind::kObfuscated)], 100u);
}

TEST(RuleGenerator, EachTriggerMatchesExactlyItsOwnRule) {
  auto gen = generate(3000, 42);
  Engine engine(gen);
  for (size_t i = 0; i < gen.size(); ++i) {
    std::vector<unsigned> m = engine.matches(gen[i].trigger);
    ASSERT_EQ(m.size(), 1u) << gen[i].trigger << " (" << gen[i].pattern << ")";
    EXPECT_EQ(m[0], i) << gen[i].trigger;
  }
}

TEST(BodyMaker, CorpusBodiesMatchNothingAndPlantedBodiesMatchOnce) {
  auto gen = generate(1000, 7);
  Engine engine(gen);
  std::vector<Trigger> triggers;
  for (size_t i = 0; i < gen.size(); ++i) {
    triggers.push_back(Trigger{rule_id(i), gen[i].trigger, profile_text(gen[i].trigger)});
  }
  CorpusFile file;
  auto corpus = Corpus::load({file.path()}, 1, 4096);
  ASSERT_TRUE(corpus.ok()) << corpus.error();
  EXPECT_EQ(corpus->texts(), 4u);
  EXPECT_EQ(corpus->dropped(), 2u);  // the marker and the 16-digit number

  BodyMaker bodies(corpus.value(), triggers);
  Rng rng(3);
  for (int i = 0; i < 4000; ++i) {
    bool plant = i % 2 == 1;
    auto size = static_cast<uint32_t>(1 + rng.below(600));
    std::string body(bodies.make(rng, size, plant));
    EXPECT_EQ(engine.matches(body).size(), plant ? 1u : 0u) << body;
  }
}

// RFC 1071 the slow way: big-endian 16-bit words.
uint16_t reference_checksum(const std::vector<uint8_t>& b) {
  uint32_t sum = 0;
  for (size_t i = 0; i < b.size(); i += 2) sum += (b[i] << 8) | (i + 1 < b.size() ? b[i + 1] : 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

TEST(Frame, TcpAndIpChecksumsVerify) {
  for (uint32_t len : {0u, 1u, 7u, 100u, 1459u, 1460u}) {
    std::vector<uint8_t> payload(len);
    for (uint32_t i = 0; i < len; ++i) payload[i] = static_cast<uint8_t>(i * 37 + 11);
    uint8_t frame[kMaxFrame];
    L4Addr a{0x0a010203, 0x0a020001, 40000, 1883, true};
    uint32_t n = write_tcp_frame(frame, a, TcpFields{0x11223344, 0x55667788, kTcpAck | kTcpPsh, len == 0}, 7,
                                 payload.data(), len);
    EXPECT_EQ(n, std::max(kMinFrame, kEthHeader + kIpHeader + kTcpHeader + (len == 0 ? 4 : 0) + len));
    const uint8_t* ip = frame + kEthHeader;
    EXPECT_EQ(reference_checksum(std::vector<uint8_t>(ip, ip + kIpHeader)), 0);
    uint32_t l4 = ((ip[2] << 8) | ip[3]) - kIpHeader;
    std::vector<uint8_t> pseudo(ip + 12, ip + 20);
    pseudo.insert(pseudo.end(), {0, 6, static_cast<uint8_t>(l4 >> 8), static_cast<uint8_t>(l4)});
    pseudo.insert(pseudo.end(), ip + kIpHeader, ip + kIpHeader + l4);
    EXPECT_EQ(reference_checksum(pseudo), 0) << "payload " << len;
  }
}

// --- Fragmentation (imf-synth traffic --fragment)

using Frame = std::vector<uint8_t>;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The frames of a classic pcap file as imf-synth writes it (little-endian host).
std::vector<Frame> read_pcap(const std::string& path) {
  std::string bytes = read_file(path);
  std::vector<Frame> frames;
  EXPECT_GE(bytes.size(), 24u) << path;
  for (size_t at = 24; at + 16 <= bytes.size();) {
    uint32_t len;
    std::memcpy(&len, bytes.data() + at + 8, 4);
    at += 16;
    EXPECT_LE(at + len, bytes.size()) << path;
    if (at + len > bytes.size()) break;
    frames.emplace_back(bytes.begin() + static_cast<ptrdiff_t>(at), bytes.begin() + static_cast<ptrdiff_t>(at + len));
    at += len;
  }
  return frames;
}

// A number in imf-synth's summary JSON.
uint64_t json_number(const std::string& json, const std::string& key) {
  size_t at = json.find("\"" + key + "\": ");
  EXPECT_NE(at, std::string::npos) << key;
  return at == std::string::npos ? 0 : std::strtoull(json.c_str() + at + key.size() + 4, nullptr, 10);
}

uint16_t get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/imf-synth-test-XXXXXX";
    path_ = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A frame reduced to what fragmentation must keep: Ethernet header, IPv4 header without the
// flags (DF differs) and the header checksum, and the IP payload, without Ethernet padding.
Frame segment_bytes(const Frame& f) {
  const uint8_t* ip = f.data() + kEthHeader;
  Frame out(f.begin(), f.begin() + kEthHeader + get16(ip + 2));
  uint8_t* oip = out.data() + kEthHeader;
  oip[6] = oip[7] = oip[10] = oip[11] = 0;
  return out;
}

// Reassembles the IPv4 fragments of `frames` as a receiver would, checking on the way what
// imf-synth promises: every IPv4 header checksum verifies and DF is clear; a datagram's fragments
// are consecutive frames in offset order under one id, each at most `size` payload bytes and all
// but the last a multiple of 8 (here: exactly `size`); only segments with data whose IP payload
// exceeds `size` are fragmented. Returns the datagrams as unfragmented frames, in capture order.
struct Reassembled {
  std::vector<Frame> datagrams;
  uint64_t fragmented = 0, fragments = 0, max_per_datagram = 0;
};
Reassembled reassemble(const std::vector<Frame>& frames, uint32_t size) {
  Reassembled r;
  Frame pending;  // Ethernet + IPv4 header of the first fragment, then the payload so far
  uint64_t pending_n = 0;
  for (const Frame& f : frames) {
    const uint8_t* ip = f.data() + kEthHeader;
    EXPECT_EQ(reference_checksum(Frame(ip, ip + kIpHeader)), 0);
    uint16_t flags = get16(ip + 6);
    EXPECT_EQ(flags & 0x4000, 0) << "DF set in a capture that fragments";
    uint32_t offset = (flags & 0x1fffu) * 8, payload = get16(ip + 2) - kIpHeader;
    bool more = flags & 0x2000;
    if (!more && offset == 0) {
      EXPECT_TRUE(pending.empty()) << "a datagram's fragments are interleaved with another frame";
      uint32_t data = payload - (ip[kIpHeader + 12] >> 4) * 4;
      EXPECT_TRUE(data == 0 || payload <= size) << "a segment of " << payload << " B went unfragmented";
      r.datagrams.push_back(f);
      continue;
    }
    EXPECT_LE(payload, size);
    if (more) {
      EXPECT_EQ(payload, size);
    }
    if (offset == 0) {
      EXPECT_TRUE(pending.empty());
      pending.assign(f.begin(), f.begin() + kEthHeader + kIpHeader);
      pending_n = 0;
    } else {
      EXPECT_FALSE(pending.empty()) << "a fragment without its first";
      if (pending.empty()) continue;
      const uint8_t* first = pending.data() + kEthHeader;
      EXPECT_EQ(std::memcmp(first + 4, ip + 4, 2), 0) << "ids differ";
      EXPECT_EQ(std::memcmp(first + 9, ip + 9, 1), 0) << "protocols differ";
      EXPECT_EQ(std::memcmp(first + 12, ip + 12, 8), 0) << "addresses differ";
      EXPECT_EQ(offset, pending.size() - kEthHeader - kIpHeader) << "fragments out of order";
    }
    pending.insert(pending.end(), ip + kIpHeader, ip + kIpHeader + payload);
    ++pending_n;
    if (!more) {
      uint8_t* dip = pending.data() + kEthHeader;
      uint32_t total = static_cast<uint32_t>(pending.size() - kEthHeader);
      dip[2] = static_cast<uint8_t>(total >> 8);
      dip[3] = static_cast<uint8_t>(total);
      dip[6] = dip[7] = 0;
      r.datagrams.push_back(std::move(pending));
      pending.clear();
      ++r.fragmented;
      r.fragments += pending_n;
      r.max_per_datagram = std::max(r.max_per_datagram, pending_n);
    }
  }
  EXPECT_TRUE(pending.empty()) << "the capture ends inside a datagram";
  return r;
}

TEST(Traffic, FragmentedCaptureReassemblesIntoTheSameSegments) {
  CorpusFile corpus;
  TempDir dir;
  auto generate_capture = [&](const std::string& name, uint32_t fragment) {
    TrafficOptions o;
    o.profile = Profile::kMixed;
    o.flows = 24;
    o.messages = 600;
    o.corpus = {corpus.path()};
    o.seed = 5;
    o.out = dir.path() + "/" + name;
    o.fragment = fragment;
    Status s = run_traffic(o);
    EXPECT_TRUE(s.ok()) << s.error();
  };
  generate_capture("plain", 0);
  std::vector<Frame> plain = read_pcap(dir.path() + "/plain.pcap");
  ASSERT_GT(plain.size(), 1000u);
  EXPECT_EQ(json_number(read_file(dir.path() + "/plain.json"), "fragments"), 0u);
  for (uint32_t size : {24u, 192u}) {
    SCOPED_TRACE("--fragment " + std::to_string(size));
    std::string name = "frag" + std::to_string(size);
    generate_capture(name, size);
    EXPECT_EQ(read_file(dir.path() + "/" + name + ".mlog"), read_file(dir.path() + "/plain.mlog"));
    std::vector<Frame> frames = read_pcap(dir.path() + "/" + name + ".pcap");
    Reassembled r = reassemble(frames, size);
    ASSERT_EQ(r.datagrams.size(), plain.size());
    for (size_t i = 0; i < plain.size(); ++i) {
      ASSERT_EQ(segment_bytes(r.datagrams[i]), segment_bytes(plain[i])) << "datagram " << i;
    }
    EXPECT_GT(r.fragmented, 0u);
    std::string json = read_file(dir.path() + "/" + name + ".json");
    EXPECT_EQ(json_number(json, "packets"), frames.size());
    EXPECT_EQ(json_number(json, "fragment"), size);
    EXPECT_EQ(json_number(json, "fragmented_datagrams"), r.fragmented);
    EXPECT_EQ(json_number(json, "fragments"), r.fragments);
    EXPECT_EQ(json_number(json, "max_fragments_per_datagram"), r.max_per_datagram);
  }
}

}  // namespace
}  // namespace imf::bench::synth
