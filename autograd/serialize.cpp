#include "serialize.hpp"

#include "engine.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <utility>

namespace chainrule {

namespace {

constexpr char kMagic[8] = {'C', 'H', 'A', 'I', 'N', 'R', 'U', 'L'};
constexpr size_t kHeader = 8 + 4 + 8;

uint32_t crc32(const char* data, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ static_cast<uint8_t>(data[i])) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

template <class T>
void put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // x86-64 and every platform we build on are little-endian
  out.append(b, sizeof(T));
}

struct Reader {
  const std::string& bytes;
  size_t pos;
  size_t end;
  const std::string& source;

  template <class T>
  T get(const char* field) {
    if (end - pos < sizeof(T)) fail_at(fmt::format("truncated while reading {}", field));
    T v;
    std::memcpy(&v, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string get_bytes(size_t n, const char* field) {
    if (end - pos < n) fail_at(fmt::format("truncated while reading {} ({} bytes)", field, n));
    std::string s = bytes.substr(pos, n);
    pos += n;
    return s;
  }
  [[noreturn]] void fail_at(const std::string& what) const {
    throw CheckpointError(fmt::format("checkpoint {}: {} at byte {}", source, what, pos));
  }
};

}  // namespace

std::string encode_tensors(const NamedTensors& tensors) {
  std::string payload;
  put<uint64_t>(payload, tensors.size());
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    if (!names.insert(name).second) fail("save: the name '{}' appears twice", name);
    if (!t.defined()) fail("save: the tensor named '{}' is undefined", name);
    put<uint32_t>(payload, static_cast<uint32_t>(name.size()));
    payload += name;
    put<uint8_t>(payload, static_cast<uint8_t>(t.dtype()));
    put<uint8_t>(payload, static_cast<uint8_t>(t.dim()));
    for (int64_t d : t.shape()) put<int64_t>(payload, d);
    const Tensor c = t.detach().contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(c.numel()) * dtype_size(c.dtype());
    put<uint64_t>(payload, nbytes);
    payload.append(static_cast<const char*>(c.raw_data()), nbytes);
  }
  std::string out(kMagic, 8);
  put<uint32_t>(out, kCheckpointVersion);
  put<uint64_t>(out, payload.size());
  out += payload;
  put<uint32_t>(out, crc32(out.data(), out.size()));
  return out;
}

NamedTensors decode_tensors(const std::string& bytes, const std::string& source) {
  Reader r{bytes, 0, bytes.size(), source};
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kMagic, 8) != 0)
    r.fail_at("is not a chainrule checkpoint (bad magic number)");
  r.pos = 8;
  const uint32_t version = r.get<uint32_t>("the format version");
  if (version != kCheckpointVersion)
    r.fail_at(fmt::format("has format version {}, this build reads version {}", version, kCheckpointVersion));
  const uint64_t payload = r.get<uint64_t>("the payload size");
  if (payload > bytes.size() || bytes.size() - kHeader < payload + 4 || bytes.size() - kHeader - 4 != payload)
    r.fail_at(fmt::format("is truncated or has trailing bytes: {} bytes, the header promises {}", bytes.size(),
                          kHeader + payload + 4));
  uint32_t stored;
  std::memcpy(&stored, bytes.data() + kHeader + payload, 4);
  if (stored != crc32(bytes.data(), kHeader + payload))
    r.fail_at("is corrupt: its CRC-32 checksum does not match its contents");

  r.end = kHeader + payload;
  NamedTensors out;
  const uint64_t count = r.get<uint64_t>("the tensor count");
  std::set<std::string> names;
  for (uint64_t i = 0; i < count; ++i) {
    const uint32_t name_len = r.get<uint32_t>("a name length");
    std::string name = r.get_bytes(name_len, "a name");
    if (!names.insert(name).second) r.fail_at(fmt::format("repeats the name '{}'", name));
    const uint8_t dtype = r.get<uint8_t>("a dtype");
    if (dtype > static_cast<uint8_t>(Dtype::int64)) r.fail_at(fmt::format("has an unknown dtype code {}", dtype));
    const uint8_t rank = r.get<uint8_t>("a rank");
    if (rank > Shape::kMaxDims) r.fail_at(fmt::format("has rank {} for '{}'", rank, name));
    Shape shape;
    uint64_t numel = 1, extent = 1;  // extent: the product of max(dim, 1), which strides need
    for (uint8_t d = 0; d < rank; ++d) {
      const int64_t dim = r.get<int64_t>("a dimension");
      if (dim < 0 || dim > (int64_t(1) << 40)) r.fail_at(fmt::format("has an invalid dimension {} for '{}'", dim, name));
      shape.push_back(dim);
      const uint64_t factor = static_cast<uint64_t>(std::max<int64_t>(dim, 1));
      if (factor > (uint64_t(1) << 40) / extent)  // checked before multiplying, so nothing wraps
        r.fail_at(fmt::format("has an implausible shape {} for '{}'", shape, name));
      extent *= factor;
      numel *= static_cast<uint64_t>(dim);
    }
    const uint64_t nbytes = r.get<uint64_t>("a byte count");
    if (nbytes != numel * dtype_size(static_cast<Dtype>(dtype)))
      r.fail_at(fmt::format("says '{}' {} holds {} bytes", name, shape, nbytes));
    const std::string data = r.get_bytes(nbytes, "tensor data");
    Tensor t = empty(shape, static_cast<Dtype>(dtype));
    std::memcpy(t.raw_data(), data.data(), nbytes);
    out.emplace_back(std::move(name), std::move(t));
  }
  if (r.pos != r.end) r.fail_at("has bytes after its last tensor");
  return out;
}

namespace {
thread_local int64_t g_fail_after = -1;
}
void detail::inject_save_failure_after(int64_t bytes) { g_fail_after = bytes; }

namespace {
[[noreturn]] void io_fail(const std::string& what, const std::string& path) {
  throw CheckpointError(fmt::format("save: {} '{}': {}", what, path, std::strerror(errno)));
}
}  // namespace

void save_tensors(const NamedTensors& tensors, const std::string& path) {
  const std::string bytes = encode_tensors(tensors);
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  // Not mkstemp: its file is private (0600), and the checkpoint would stay so after the rename.
  // open applies the umask, as for any new file (0644 under the usual 022); a checkpoint that
  // replaces another keeps that file's permissions.
  struct stat existing {};
  const bool replaces = ::stat(path.c_str(), &existing) == 0 && S_ISREG(existing.st_mode);
  static std::atomic<uint64_t> counter{0};
  std::string tmpl;
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 100; ++attempt) {
    const uint64_t unique = counter.fetch_add(1) ^ static_cast<uint64_t>(
                                std::chrono::steady_clock::now().time_since_epoch().count());
    tmpl = (dir / fmt::format("{}.tmp-{}-{:x}", target.filename().string(), ::getpid(), unique & 0xffffffffu)).string();
    fd = ::open(tmpl.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) io_fail("cannot create a temporary file next to", path);
  if (replaces) (void)::fchmod(fd, existing.st_mode & 07777);
  size_t written = 0;
  const int64_t fail_after = std::exchange(g_fail_after, -1);
  while (written < bytes.size()) {
    size_t chunk = bytes.size() - written;
    if (fail_after >= 0) {
      if (written >= static_cast<size_t>(fail_after)) {
        ::close(fd);  // the simulated crash: the temporary file stays, nothing is renamed
        throw CheckpointError(fmt::format("save: injected failure after {} bytes of '{}'", written, tmpl));
      }
      chunk = std::min(chunk, static_cast<size_t>(fail_after) - written);
    }
    const ssize_t n = ::write(fd, bytes.data() + written, chunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      ::unlink(tmpl.c_str());
      io_fail("cannot write", tmpl);
    }
    written += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmpl.c_str());
    io_fail("cannot flush", tmpl);
  }
  if (::rename(tmpl.c_str(), path.c_str()) != 0) {
    ::unlink(tmpl.c_str());
    io_fail("cannot rename the temporary file onto", path);
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);  // make the rename itself durable
    ::close(dfd);
  }
}

NamedTensors load_tensors(const std::string& path) {
  // POSIX reads, so that every failure (a directory reads as EISDIR) is a CheckpointError with
  // its reason; an ifstream threw std::ios_base::failure for a directory.
  auto load_fail = [&](const char* what) {
    throw CheckpointError(fmt::format("load: cannot {} checkpoint '{}': {}", what, path, std::strerror(errno)));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) load_fail("open");
  std::string bytes;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int saved = errno;
      ::close(fd);
      errno = saved;
      load_fail("read");
    }
    bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return decode_tensors(bytes, "'" + path + "'");
}

void assign_tensors(const NamedTensors& expected, const NamedTensors& loaded, const std::string& what) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : loaded) by_name[name] = &t;
  std::vector<std::string> problems;
  std::set<std::string> seen;
  for (const auto& [name, t] : expected) {
    seen.insert(name);
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      problems.push_back(fmt::format("missing key '{}' (expected {})", name, describe(t)));
    } else if (it->second->shape() != t.shape()) {
      problems.push_back(fmt::format("shape mismatch for '{}': checkpoint has {}, {} has {}", name,
                                     it->second->shape(), what, t.shape()));
    } else if (is_floating(it->second->dtype()) != is_floating(t.dtype())) {
      problems.push_back(fmt::format("dtype mismatch for '{}': checkpoint has {}, {} has {}", name,
                                     it->second->dtype(), what, t.dtype()));
    }
  }
  for (const auto& [name, t] : loaded)
    if (!seen.count(name)) problems.push_back(fmt::format("unexpected key '{}' ({})", name, describe(t)));
  if (!problems.empty())
    throw CheckpointError(fmt::format("load: the checkpoint does not fit {} ({} problems):\n  {}", what,
                                      problems.size(), fmt::join(problems, "\n  ")));
  NoGradGuard no_grad;
  for (const auto& [name, t] : expected) Tensor(t).copy_(*by_name[name]);
}

}  // namespace chainrule
