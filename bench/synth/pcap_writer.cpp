#include "pcap_writer.h"

#include <cstring>

namespace imf::bench::synth {

namespace {

struct PcapFileHeader {
  uint32_t magic;
  uint16_t version_major;
  uint16_t version_minor;
  int32_t thiszone;
  uint32_t sigfigs;
  uint32_t snaplen;
  uint32_t linktype;
};
static_assert(sizeof(PcapFileHeader) == 24);

struct PcapRecordHeader {
  uint32_t ts_sec;
  uint32_t ts_usec;
  uint32_t incl_len;
  uint32_t orig_len;
};
static_assert(sizeof(PcapRecordHeader) == 16);

}  // namespace

Result<std::unique_ptr<PcapWriter>> PcapWriter::create(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return make_error(path + ": cannot create capture file");
  std::unique_ptr<PcapWriter> w(new PcapWriter(path, f));
  PcapFileHeader h{0xa1b2c3d4, 2, 4, 0, 0, 65535, 1};
  std::memcpy(w->buf_.get(), &h, sizeof(h));
  w->used_ = sizeof(h);
  return w;
}

PcapWriter::~PcapWriter() {
  if (f_) std::fclose(f_);
}

void PcapWriter::commit(uint32_t len, uint64_t ts_us) {
  PcapRecordHeader r{static_cast<uint32_t>(ts_us / 1000000), static_cast<uint32_t>(ts_us % 1000000), len, len};
  std::memcpy(buf_.get() + used_, &r, sizeof(r));
  used_ += kRecordHeader + len;
}

void PcapWriter::flush() {
  if (used_ && !failed_ && std::fwrite(buf_.get(), 1, used_, f_) != used_) failed_ = true;
  used_ = 0;
}

Status PcapWriter::close() {
  flush();
  bool failed = failed_ || std::ferror(f_);
  failed = std::fclose(f_) != 0 || failed;
  f_ = nullptr;
  if (failed) return make_error(path_ + ": write error");
  return Ok{};
}

}  // namespace imf::bench::synth
