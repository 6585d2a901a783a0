#include "stream/tcp_stream.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "packet_builder.h"

// Segments are written as designated initializers naming only what differs from the defaults.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace imf::dp::stream {
namespace {

using decode::kTcpAck;
using decode::kTcpFin;
using decode::kTcpPsh;
using decode::kTcpRst;
using decode::kTcpSyn;
using test::Bytes;
using test::PacketBuilder;

constexpr uint32_t kClientIsn = 1000, kServerIsn = 50000;
constexpr uint8_t kClientPort = 0, kServerPort = 1;

// One connection client 10.0.0.1:40000 -> server 10.0.0.2:1883 through a tracker. Sequence
// numbers are given relative to each side's ISN + 1 (the first data byte), as tcpdump -S shows
// them; ack relative to the other side's.
class TcpStreamTest : public ::testing::Test {
 protected:
  void make(TrackerConfig cfg = {}) {
    counters_ = Counters{};
    store_ = std::move(ByteStore::create(1 << 20).value());
    tracker_ = std::make_unique<TcpTracker>(cfg, *store_, counters_);
    conn_ = TcpConn{};
  }
  void SetUp() override { make(); }
  void TearDown() override {
    if (tracker_) tracker_->release(conn_);
    EXPECT_EQ(store_->bytes_in_use(), 0u);
  }

  struct Seg {
    uint8_t flags = kTcpAck | kTcpPsh;
    int64_t seq = 0;  // relative
    int64_t ack = 0;  // relative
    std::string data;
    uint16_t window = 65535;
    uint8_t wscale = 0xff;  // SYN option, 0xff: none
    uint8_t port = 0xfe;    // 0xfe: the side's own port
  };

  SegmentPlan client(Seg s) { return send(0, s); }
  SegmentPlan server(Seg s) { return send(1, s); }

  SegmentPlan send(uint8_t side, const Seg& s) {
    uint32_t own = side == 0 ? kClientIsn : kServerIsn;
    uint32_t other = side == 0 ? kServerIsn : kClientIsn;
    uint32_t seq = own + 1 + static_cast<uint32_t>(s.seq);
    if (s.flags & kTcpSyn) seq = own + static_cast<uint32_t>(s.seq);  // SYNs: relative to the ISN itself
    PacketBuilder b;
    if (side == 0) {
      b.ipv4({10, 0, 0, 1}, {10, 0, 0, 2}).tcp(40000, 1883, seq, other + 1 + static_cast<uint32_t>(s.ack), s.flags);
    } else {
      b.ipv4({10, 0, 0, 2}, {10, 0, 0, 1}).tcp(1883, 40000, seq, other + 1 + static_cast<uint32_t>(s.ack), s.flags);
    }
    if (s.wscale != 0xff) b.tcp_options({0x03, 0x03, s.wscale});
    b.tcp_window(s.window).payload(s.data);
    frame_ = b.build();
    decode::PacketMeta m;
    EXPECT_EQ(decode::decode_packet(frame_.data(), static_cast<uint32_t>(frame_.size()), &m),
              decode::DecodeStatus::kOk);
    uint8_t port = s.port != 0xfe ? s.port : side == 0 ? kClientPort : kServerPort;
    if (!opened_) {
      tracker_->open(conn_, m, port);
      opened_ = true;
    }
    return tracker_->track(conn_, side, m, frame_.data() + m.payload_offset, port);
  }

  // SYN, SYN/ACK, ACK with the given windows (unscaled in the SYNs) and scale options.
  void handshake(uint16_t client_window = 65535, uint16_t server_window = 65535, uint8_t client_ws = 0xff,
                 uint8_t server_ws = 0xff) {
    ASSERT_TRUE(forwarded(client({kTcpSyn, 0, -static_cast<int64_t>(kServerIsn) - 1, "", client_window, client_ws})));
    ASSERT_TRUE(forwarded(server({kTcpSyn | kTcpAck, 0, 0, "", server_window, server_ws})));
    ASSERT_TRUE(forwarded(client({kTcpAck, 0, 0, "", client_window})));
    ASSERT_EQ(conn_.state, ConnState::kEstablished);
  }
  static bool forwarded(const SegmentPlan& p) { return p.action == SegmentAction::kForward; }
  static bool dropped(const SegmentPlan& p) { return p.action == SegmentAction::kDrop; }
  uint64_t count(Counter c) const { return counters_.get(c); }

  Counters counters_;
  std::unique_ptr<ByteStore> store_;
  std::unique_ptr<TcpTracker> tracker_;
  TcpConn conn_;
  bool opened_ = false;
  Bytes frame_;
};

TEST_F(TcpStreamTest, InOrderBytesAreNewRepeatsAreCheckedAgainstWhatWasInspected) {
  handshake();
  SegmentPlan p = client({.seq = 0, .data = "hello "});
  ASSERT_TRUE(forwarded(p));
  EXPECT_EQ(p.new_offset, 0u);
  EXPECT_EQ(p.new_len, 6u);
  p = client({.seq = 6, .data = "world"});
  EXPECT_EQ(p.new_len, 5u);
  EXPECT_EQ(conn_.end[0].retained.len, 11u);
  // A retransmission of the same bytes passes, with nothing new.
  p = client({.seq = 0, .data = "hello "});
  ASSERT_TRUE(forwarded(p));
  EXPECT_EQ(p.new_len, 0u);
  EXPECT_EQ(count(Counter::tcp_retransmits), 1u);
  // Overlapping old and new bytes: the old part must match, the new part is new.
  p = client({.seq = 8, .data = "rld!!"});
  ASSERT_TRUE(forwarded(p));
  EXPECT_EQ(p.new_offset, 3u);
  EXPECT_EQ(p.new_len, 2u);
  // Different bytes at inspected sequence numbers never pass, whichever part differs.
  EXPECT_TRUE(dropped(client({.seq = 0, .data = "HELLO "})));
  EXPECT_TRUE(dropped(client({.seq = 10, .data = "D!!?"})));
  EXPECT_EQ(count(Counter::tcp_overlap_mismatch), 2u);
  // Once the server acknowledged bytes, they are released: a later copy cannot reach it anyway.
  ASSERT_TRUE(forwarded(server({.flags = kTcpAck, .ack = 13})));
  EXPECT_EQ(conn_.end[0].retained.len, 0u);
  EXPECT_TRUE(forwarded(client({.seq = 0, .data = "HELLO "})));
}

TEST_F(TcpStreamTest, SegmentsAheadAreDroppedUntilTheGapIsFilled) {
  handshake();
  EXPECT_TRUE(dropped(client({.seq = 5, .data = "later"})));
  EXPECT_EQ(count(Counter::tcp_out_of_order), 1u);
  EXPECT_EQ(client({.seq = 0, .data = "first"}).new_len, 5u);
  EXPECT_EQ(client({.seq = 5, .data = "later"}).new_len, 5u);
}

TEST_F(TcpStreamTest, SegmentsTheReceiverWouldDiscardAreDropped) {
  handshake(65535, 100);
  // Data without ACK, after the handshake (RFC 793: discarded).
  EXPECT_TRUE(dropped(client({.flags = kTcpPsh, .seq = 0, .data = "x"})));
  EXPECT_EQ(count(Counter::tcp_no_ack), 1u);
  // An ACK of data the server never sent, and one older than the window allows.
  EXPECT_TRUE(dropped(client({.seq = 0, .ack = 1, .data = "x"})));
  EXPECT_TRUE(dropped(client({.seq = 0, .ack = -5, .data = "x"})));
  EXPECT_EQ(count(Counter::tcp_bad_ack), 2u);
  // The server's window is 100 bytes: data starting at 100 or beyond is outside it.
  EXPECT_TRUE(dropped(client({.seq = 100, .data = "x"})));
  EXPECT_EQ(count(Counter::tcp_out_of_order), 1u);  // ahead of sequence too; order is checked first
  EXPECT_EQ(client({.seq = 0, .data = std::string(100, 'a')}).new_len, 100u);
  EXPECT_TRUE(dropped(client({.seq = 100, .data = "b"})));
  EXPECT_EQ(count(Counter::tcp_beyond_window), 1u);
  // The window opens with the server's next ACK.
  ASSERT_TRUE(forwarded(server({.flags = kTcpAck, .ack = 100, .window = 100})));
  EXPECT_EQ(client({.seq = 100, .data = "b"}).new_len, 1u);
}

TEST_F(TcpStreamTest, WindowScaleAppliesOnlyWhenBothSynsOfferIt) {
  handshake(65535, 1000, 7, 2);  // the server's windows count in units of 4
  ASSERT_TRUE(forwarded(server({.flags = kTcpAck, .ack = 0, .window = 1000})));
  EXPECT_EQ(client({.seq = 0, .data = std::string(3999, 'a')}).new_len, 3999u);
  EXPECT_EQ(client({.seq = 3999, .data = "b"}).new_len, 1u);
  EXPECT_TRUE(dropped(client({.seq = 4000, .data = "c"})));

  TearDown();
  make();
  opened_ = false;
  handshake(65535, 1000, 0xff, 2);  // the client offered no scale: windows are not scaled
  ASSERT_TRUE(forwarded(server({.flags = kTcpAck, .ack = 0, .window = 1000})));
  EXPECT_EQ(client({.seq = 0, .data = std::string(1000, 'a')}).new_len, 1000u);
  EXPECT_TRUE(dropped(client({.seq = 1000, .data = "c"})));
}

TEST_F(TcpStreamTest, RstCountsOnlyAtTheReceiversNextSequenceNumber) {
  handshake(65535, 1000);
  client({.seq = 0, .data = "0123456789"});
  // Far outside the window: the server ignores it, so it is dropped and changes nothing.
  EXPECT_TRUE(dropped(client({.flags = kTcpRst, .seq = 100000})));
  EXPECT_TRUE(dropped(client({.flags = kTcpRst, .seq = -50})));
  EXPECT_EQ(count(Counter::tcp_rst_out_of_window), 2u);
  // In the window but not where the server expects the next byte: it answers with a challenge
  // ACK (RFC 5961 3.2); forwarded, state kept.
  EXPECT_TRUE(forwarded(client({.flags = kTcpRst, .seq = 500})));
  EXPECT_EQ(count(Counter::tcp_rst_in_window), 1u);
  EXPECT_EQ(conn_.state, ConnState::kEstablished);
  // Between what the server acknowledged and what passed: possibly exact.
  EXPECT_TRUE(forwarded(client({.flags = kTcpRst, .seq = 10})));
  EXPECT_EQ(count(Counter::tcp_rst_accepted), 1u);
  EXPECT_EQ(conn_.state, ConnState::kClosing);
  // Closing is not the end of inspection: if data still comes, it is still judged in order.
  EXPECT_EQ(client({.seq = 10, .data = "more"}).new_len, 4u);
  EXPECT_TRUE(dropped(client({.seq = 0, .data = "ABCDEFGHIJ"})));
}

TEST_F(TcpStreamTest, FinCountsOnlyAtTheEndOfTheInspectedData) {
  handshake();
  client({.seq = 0, .data = "abcdef"});
  // A FIN inside the inspected bytes would cut the stream short at a receiver still missing them.
  EXPECT_TRUE(dropped(client({.flags = kTcpFin | kTcpAck, .seq = 3})));
  EXPECT_FALSE(conn_.end[0].fin);
  // Ahead: out of order.
  EXPECT_TRUE(dropped(client({.flags = kTcpFin | kTcpAck, .seq = 9})));
  EXPECT_TRUE(forwarded(client({.flags = kTcpFin | kTcpAck, .seq = 6})));
  EXPECT_TRUE(conn_.end[0].fin);
  // Nothing after the FIN.
  EXPECT_TRUE(dropped(client({.seq = 6, .data = "x"})));
  EXPECT_EQ(count(Counter::tcp_data_after_fin), 1u);
  EXPECT_TRUE(forwarded(client({.flags = kTcpFin | kTcpAck, .seq = 6})));  // retransmitted FIN
  EXPECT_TRUE(forwarded(server({.flags = kTcpFin | kTcpAck, .seq = 0, .ack = 7})));
  EXPECT_EQ(conn_.state, ConnState::kClosing);
}

TEST_F(TcpStreamTest, ANewIsnChangesNothingUntilTheServerAcceptsIt) {
  handshake();
  client({.seq = 0, .data = "abc"});
  // A SYN with another ISN: the server, still connected, only answers with a challenge ACK.
  EXPECT_TRUE(forwarded(client({.flags = kTcpSyn, .seq = 777777})));
  EXPECT_EQ(count(Counter::tcp_syn_new_isn), 1u);
  EXPECT_EQ(conn_.state, ConnState::kEstablished);
  EXPECT_TRUE(conn_.pending);
  // The old connection's bytes are still checked and sequenced.
  EXPECT_TRUE(dropped(client({.seq = 0, .data = "XYZ"})));
  EXPECT_EQ(client({.seq = 3, .data = "d"}).new_len, 1u);
  // Data on such a SYN cannot be judged against either connection.
  EXPECT_TRUE(dropped(client({.flags = kTcpSyn, .seq = 888888, .data = "hi"})));
  // A SYN/ACK for the old ISN does not restart it; one acknowledging the new ISN does.
  EXPECT_TRUE(forwarded(server({.flags = kTcpSyn | kTcpAck, .seq = 0, .ack = 0})));  // retransmitted
  SegmentPlan p = server({.flags = kTcpSyn | kTcpAck, .seq = 1000, .ack = 777777});  // acks new ISN + 1
  EXPECT_EQ(p.action, SegmentAction::kRestart);
  EXPECT_EQ(conn_.end[0].isn, kClientIsn + 777777);
  EXPECT_EQ(conn_.end[1].isn, kServerIsn + 1000);
  EXPECT_FALSE(conn_.pending);
}

TEST_F(TcpStreamTest, AConnectionClosedBothWaysIsReplacedAtOnce) {
  handshake();
  client({.flags = kTcpFin | kTcpAck, .seq = 0});
  server({.flags = kTcpFin | kTcpAck, .seq = 0, .ack = 1});
  ASSERT_EQ(conn_.state, ConnState::kClosing);
  EXPECT_EQ(client({.flags = kTcpSyn, .seq = 0}).action, SegmentAction::kRestart);
  EXPECT_EQ(conn_.state, ConnState::kSynSent);
}

TEST_F(TcpStreamTest, DataOnTheSynIsInspectedAndHeldToItsBytes) {
  EXPECT_EQ(client({.flags = kTcpSyn, .seq = 0, .data = "early"}).new_len, 5u);
  EXPECT_TRUE(dropped(client({.flags = kTcpSyn, .seq = 0, .data = "EARLY"})));  // retransmitted, changed
  EXPECT_TRUE(forwarded(client({.flags = kTcpSyn, .seq = 0, .data = "early"})));
  // The server did not take the data (acknowledges the SYN only): the client sends it again.
  ASSERT_TRUE(forwarded(server({.flags = kTcpSyn | kTcpAck, .seq = 0, .ack = 0})));
  EXPECT_TRUE(dropped(client({.seq = 0, .data = "EARLY"})));
  EXPECT_EQ(count(Counter::tcp_overlap_mismatch), 2u);
  EXPECT_TRUE(forwarded(client({.seq = 0, .data = "early"})));
}

TEST_F(TcpStreamTest, NothingButTheHandshakeBeforeTheServerAnswers) {
  client({.flags = kTcpSyn, .seq = 0});
  EXPECT_TRUE(dropped(client({.seq = 0, .data = "too soon"})));
  EXPECT_TRUE(dropped(server({.flags = kTcpSyn | kTcpAck, .seq = 0, .ack = 5})));  // acks no SYN of ours
  EXPECT_TRUE(dropped(client({.flags = kTcpSyn, .seq = 0, .port = 1})));           // from the server's side
  EXPECT_EQ(count(Counter::tcp_invalid), 2u);
  EXPECT_EQ(count(Counter::tcp_wrong_side), 1u);
}

TEST_F(TcpStreamTest, EachSidesPacketsMustArriveOnItsPort) {
  handshake();
  // An "ACK from the server" sent from the client's side would release the client's bytes.
  client({.seq = 0, .data = "abc"});
  EXPECT_TRUE(dropped(server({.flags = kTcpAck, .ack = 3, .port = kClientPort})));
  EXPECT_EQ(count(Counter::tcp_wrong_side), 1u);
  EXPECT_EQ(conn_.end[0].retained.len, 3u);
}

TEST_F(TcpStreamTest, RetentionIsBoundedPerDirection) {
  TrackerConfig cfg;
  cfg.retain_cap = 8;
  make(cfg);
  handshake();
  EXPECT_EQ(client({.seq = 0, .data = "12345678"}).new_len, 8u);
  EXPECT_TRUE(dropped(client({.seq = 8, .data = "9"})));
  EXPECT_EQ(count(Counter::tcp_retain_full), 1u);
  server({.flags = kTcpAck, .ack = 8});
  EXPECT_EQ(client({.seq = 8, .data = "9"}).new_len, 1u);
}

TEST_F(TcpStreamTest, WithoutValidationOnlyTheOrderIsKept) {
  TrackerConfig cfg;
  cfg.validate = false;
  make(cfg);
  handshake();
  client({.seq = 0, .data = "abc"});
  EXPECT_TRUE(forwarded(client({.seq = 0, .data = "XYZ"})));
  EXPECT_TRUE(dropped(client({.seq = 10, .data = "ahead"})));
  EXPECT_EQ(conn_.end[0].retained.len, 0u);
}

}  // namespace
}  // namespace imf::dp::stream
