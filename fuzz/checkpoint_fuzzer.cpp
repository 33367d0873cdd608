// libFuzzer target for the checkpoint loader: any byte string must either decode or throw
// CheckpointError — never crash, hang, leak or throw anything else. Each input is tried as
// is (exercising the header and checksum checks) and with its size field and CRC-32 fixed
// up (so mutations reach the parser of the entries behind the checksum). Built and run by
// scripts/fuzz-checkpoint (clang, -fsanitize=fuzzer,address,undefined).
#include <chainrule.hpp>

#include <zlib.h>

#include <cstdlib>
#include <cstring>

namespace {
void decode(const std::string& bytes) {
  try {
    const auto tensors = chainrule::decode_tensors(bytes);
    if (chainrule::encode_tensors(tensors) != bytes) std::abort();  // what decodes re-encodes identically
  } catch (const chainrule::CheckpointError&) {
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  decode(bytes);
  if (bytes.size() >= 24) {
    const uint64_t payload = bytes.size() - 24;
    std::memcpy(bytes.data() + 12, &payload, 8);
    const uint32_t crc = static_cast<uint32_t>(::crc32(0, reinterpret_cast<const Bytef*>(bytes.data()),
                                                       static_cast<uInt>(bytes.size() - 4)));
    std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
    decode(bytes);
  }
  return 0;
}
