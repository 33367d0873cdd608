/// \file
/// The checkpoint file format: a named list of tensors on disk.
///
///   "CHAINRUL" | u32 format version | u64 payload size | payload | u32 CRC-32 of all before it
///   payload: u64 count, then per tensor: u32 name length, name, u8 dtype, u8 rank,
///            i64 dims[rank], u64 byte count, the elements (little-endian, row-major)
///
/// Writes are atomic: a temporary file in the same directory, fsync, rename, fsync of the
/// directory, so a crash mid-write leaves the previous file intact. Reads validate the magic,
/// version, size, checksum and every field before returning anything.
#pragma once

#include "tensor.hpp"

#include <string>
#include <utility>

namespace chainrule {

/// Thrown for any unreadable checkpoint (truncated, corrupt, wrong version, not a checkpoint)
/// and for checkpoints that do not fit what they are loaded into.
class CheckpointError : public Error {
 public:
  using Error::Error;  ///< an error with a message
};

/// Tensors with names, in order: what checkpoints hold.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

inline constexpr uint32_t kCheckpointVersion = 1;  ///< the checkpoint format version this build writes (and reads)

/// Writes `tensors` to `path` atomically (temporary file, fsync, rename): a crash leaves either
/// the old file or the new one, never half of one. CRC-32 checked.
void save_tensors(const NamedTensors& tensors, const std::string& path);
/// Reads a file save_tensors wrote; a CheckpointError names the file and what is wrong with it.
NamedTensors load_tensors(const std::string& path);

/// The same encoding in memory (what save_tensors writes / load_tensors reads).
std::string encode_tensors(const NamedTensors& tensors);
/// Decodes what encode_tensors produced; `source` names it in errors.
NamedTensors decode_tensors(const std::string& bytes, const std::string& source = "<memory>");

/// Checks `loaded` against `expected` (names, shapes; dtypes convert) and copies every value
/// into the expected tensors, or, if anything is off, throws one CheckpointError that lists
/// every missing key, unexpected key and shape mismatch, having changed nothing.
void assign_tensors(const NamedTensors& expected, const NamedTensors& loaded, const std::string& what);

namespace detail {
/// For crash-safety tests: the next save_tensors on this thread stops after writing `bytes`
/// bytes of its temporary file and throws, as if the process died there (the temporary file
/// is left behind and nothing is renamed, exactly as after a crash). Negative: off.
void inject_save_failure_after(int64_t bytes);
}  // namespace detail

}  // namespace chainrule
