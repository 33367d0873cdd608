#include "data.hpp"

#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <numbers>

namespace chainrule::nn::data {

// ---------------------------------------------------------------- datasets

TensorDataset::TensorDataset(Tensor inputs, Tensor targets) : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  if (inputs_.dim() == 0 || targets_.dim() == 0 || inputs_.size(0) != targets_.size(0))
    fail("TensorDataset: inputs {} and targets {} need the same first dimension", describe(inputs_), describe(targets_));
}

Batch TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  const Tensor idx = tensor(std::vector<double>(indices.begin(), indices.end()), {static_cast<int64_t>(indices.size())},
                            Dtype::int64);
  return {index_select(inputs_, 0, idx), index_select(targets_, 0, idx)};
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  if (!dataset_) fail("DataLoader: no dataset");
  if (options_.batch_size < 1) fail("DataLoader: batch_size must be >= 1, got {}", options_.batch_size);
  if (options_.sampler && options_.shuffle)
    fail("DataLoader: sampler and shuffle = true exclude each other; the sampler decides the order (a "
         "DistributedSampler shuffles by its own options)");
}

int64_t DataLoader::samples_per_epoch() const {
  const int64_t n = dataset_->size();  // a user's Dataset: size() is not known to be sane
  if (n < 0) fail("DataLoader: the dataset's size() is {}; it must be >= 0", n);
  return options_.sampler ? options_.sampler->num_samples(n) : n;
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = samples_per_epoch(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

namespace {
std::vector<int64_t> iota(int64_t n) {
  std::vector<int64_t> idx(static_cast<size_t>(n));
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i);
  return idx;
}
}  // namespace

std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
  if (n < 0) fail("permutation: n must be >= 0, got {}", n);
  std::vector<int64_t> idx = iota(n);
  Generator gen(seed);
  for (size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[static_cast<size_t>(gen.integer(0, static_cast<int64_t>(i)))]);
  return idx;
}

std::vector<int64_t> DataLoader::order(int64_t epoch) const {
  const int64_t n = samples_per_epoch(), size = dataset_->size();  // n == size without a sampler
  if (options_.sampler) {
    std::vector<int64_t> idx = options_.sampler->indices(epoch, size);
    if (static_cast<int64_t>(idx.size()) != n)
      fail("DataLoader: the sampler returned {} indices for epoch {} but num_samples() promised {}", idx.size(), epoch, n);
    for (int64_t i : idx)
      if (i < 0 || i >= size) fail("DataLoader: the sampler returned index {} for a dataset of {} examples", i, size);
    return idx;
  }
  return options_.shuffle ? permutation(size, options_.seed + static_cast<uint64_t>(epoch)) : iota(size);
}

DistributedSampler::DistributedSampler(DistributedSamplerOptions options) : options_(options) {
  if (options_.num_replicas < 1) fail("DistributedSampler: num_replicas must be >= 1, got {}", options_.num_replicas);
  if (options_.rank < 0 || options_.rank >= options_.num_replicas)
    fail("DistributedSampler: rank {} is not in [0, {}) (num_replicas = {})", options_.rank, options_.num_replicas,
         options_.num_replicas);
}

int64_t DistributedSampler::num_samples(int64_t dataset_size) const {
  const int64_t r = options_.num_replicas;
  return options_.drop_last ? dataset_size / r : (dataset_size + r - 1) / r;
}

std::vector<int64_t> DistributedSampler::indices(int64_t epoch, int64_t dataset_size) const {
  std::vector<int64_t> all =
      options_.shuffle ? permutation(dataset_size, options_.seed + static_cast<uint64_t>(epoch)) : iota(dataset_size);
  const int64_t per_rank = num_samples(dataset_size), total = per_rank * options_.num_replicas;
  all.reserve(static_cast<size_t>(total));
  if (!all.empty())  // pad by repeating the start (several times for a dataset smaller than num_replicas)
    for (size_t i = 0; static_cast<int64_t>(all.size()) < total; ++i) {
      const int64_t repeat = all[i];
      all.push_back(repeat);
    }
  std::vector<int64_t> mine;
  mine.reserve(static_cast<size_t>(per_rank));
  for (int64_t i = options_.rank; i < total; i += options_.num_replicas) mine.push_back(all[static_cast<size_t>(i)]);
  return mine;
}

namespace {
Batch make_batch(const Dataset& ds, const std::vector<int64_t>& order, int64_t index, const DataLoaderOptions& o) {
  const int64_t start = index * o.batch_size;
  const int64_t end = std::min<int64_t>(start + o.batch_size, static_cast<int64_t>(order.size()));
  Batch b = ds.get_batch(std::vector<int64_t>(order.begin() + start, order.begin() + end));
  return o.transform ? o.transform(std::move(b)) : b;
}
}  // namespace

Batch DataLoader::batch(int64_t epoch, int64_t index) const {
  if (index < 0 || index >= batches_per_epoch())
    fail("DataLoader: batch {} is out of range ({} batches per epoch)", index, batches_per_epoch());
  return make_batch(*dataset_, order(epoch), index, options_);
}

DataLoader::EpochRange DataLoader::epoch(int64_t e) const { return EpochRange(this, order(e)); }

Batch DataLoader::EpochRange::iterator::operator*() const {
  return make_batch(*loader->dataset_, *order, index, loader->options_);
}

// ---------------------------------------------------------------- IDX

namespace {

[[noreturn]] void idx_fail(const std::string& path, const std::string& what) {
  fail("read_idx: '{}' {}. Fashion-MNIST comes with the Debian package dataset-fashion-mnist "
       "(apt-get install dataset-fashion-mnist), or pass the folder that holds the files",
       path, what);
}

// Reads exactly n bytes, or fails saying the file is truncated or corrupt.
void read_exactly(gzFile f, void* out, size_t n, const std::string& path, const char* what) {
  size_t done = 0;
  while (done < n) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(n - done, 1u << 30));
    const int got = gzread(f, static_cast<char*>(out) + done, chunk);
    if (got < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      idx_fail(path, fmt::format("cannot be decompressed in {} ({})", what, msg ? msg : "zlib error"));
    }
    if (got == 0) idx_fail(path, fmt::format("is truncated: it ends inside {} ({} of {} bytes)", what, done, n));
    done += static_cast<size_t>(got);
  }
}

}  // namespace

Tensor read_idx(const std::string& path, Dtype dtype) {
  if (!std::filesystem::exists(path)) idx_fail(path, "does not exist");
  gzFile f = gzopen(path.c_str(), "rb");  // reads plain files too
  if (!f) idx_fail(path, fmt::format("cannot be opened ({})", std::strerror(errno)));
  struct Closer {
    gzFile f;
    ~Closer() { gzclose(f); }
  } closer{f};
  unsigned char magic[4];
  read_exactly(f, magic, 4, path, "the header");
  if (magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] < 1 || magic[3] > 4)
    idx_fail(path, fmt::format("is not an IDX file of unsigned bytes (magic {:02x} {:02x} {:02x} {:02x})", magic[0],
                               magic[1], magic[2], magic[3]));
  Shape shape;
  int64_t n = 1;
  for (int d = 0; d < magic[3]; ++d) {
    unsigned char b[4];
    read_exactly(f, b, 4, path, "the header");
    const int64_t dim = (int64_t(b[0]) << 24) | (int64_t(b[1]) << 16) | (int64_t(b[2]) << 8) | b[3];
    if (dim <= 0 || dim > (1 << 24)) idx_fail(path, fmt::format("has an implausible dimension {}", dim));
    shape.push_back(dim);
    n *= dim;
    if (n > (int64_t(1) << 32)) idx_fail(path, "declares more than 4 GiB of data");
  }
  std::vector<unsigned char> bytes(static_cast<size_t>(n));
  read_exactly(f, bytes.data(), bytes.size(), path, "the data");
  unsigned char extra;
  if (gzread(f, &extra, 1) > 0) idx_fail(path, fmt::format("is corrupt: it holds more than the {} bytes its header declares", n));
  Tensor out = empty(shape, dtype);
  dispatch(dtype, [&]<class T>() {
    T* p = out.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(bytes[static_cast<size_t>(i)]);
  });
  return out;
}

FashionMnist load_fashion_mnist(const std::string& dir) {
  auto file = [&](const char* name) { return (std::filesystem::path(dir) / name).string(); };
  FashionMnist m;
  m.train_images = read_idx(file("train-images-idx3-ubyte.gz"), Dtype::float32).reshape({-1, 784}) / 255.0;
  m.train_labels = read_idx(file("train-labels-idx1-ubyte.gz"), Dtype::int64);
  m.test_images = read_idx(file("t10k-images-idx3-ubyte.gz"), Dtype::float32).reshape({-1, 784}) / 255.0;
  m.test_labels = read_idx(file("t10k-labels-idx1-ubyte.gz"), Dtype::int64);
  if (m.train_images.size(0) != m.train_labels.size(0) || m.test_images.size(0) != m.test_labels.size(0))
    fail("load_fashion_mnist: image and label counts differ in '{}'", dir);
  return m;
}

// ---------------------------------------------------------------- synthetic

namespace {
Batch from_points(const std::vector<double>& xy, const std::vector<double>& labels) {
  const int64_t n = static_cast<int64_t>(labels.size());
  return {tensor(xy, {n, 2}, Dtype::float64), tensor(labels, {n}, Dtype::int64)};
}
void check_n_noise(int64_t n, double noise, const char* op) {
  if (n < 1) fail("{}: n must be >= 1, got {}", op, n);
  require_finite_non_negative(op, "noise", noise);  // a standard deviation: NaN or inf would reach every point
}
}  // namespace

Batch make_moons(int64_t n, double noise, Generator* gen) {
  check_n_noise(n, noise, "make_moons");
  std::vector<double> xy, y;
  with_generator(gen, [&](Generator& g) {  // the global one under its lock
    for (int64_t i = 0; i < n; ++i) {
      const int64_t label = i % 2;
      const double t = std::numbers::pi * g.uniform();
      const double x0 = label == 0 ? std::cos(t) : 1 - std::cos(t), x1 = label == 0 ? std::sin(t) : 0.5 - std::sin(t);
      xy.push_back(x0 + noise * g.normal());
      xy.push_back(x1 + noise * g.normal());
      y.push_back(static_cast<double>(label));
    }
  });
  return from_points(xy, y);
}

Batch make_circles(int64_t n, double noise, double factor, Generator* gen) {
  check_n_noise(n, noise, "make_circles");
  if (!(factor > 0 && factor < 1)) fail("make_circles: factor must be in (0, 1), got {}", factor);
  std::vector<double> xy, y;
  with_generator(gen, [&](Generator& g) {  // the global one under its lock
    for (int64_t i = 0; i < n; ++i) {
      const int64_t label = i % 2;
      const double t = 2 * std::numbers::pi * g.uniform(), r = label == 0 ? 1.0 : factor;
      xy.push_back(r * std::cos(t) + noise * g.normal());
      xy.push_back(r * std::sin(t) + noise * g.normal());
      y.push_back(static_cast<double>(label));
    }
  });
  return from_points(xy, y);
}

Batch make_spirals(int64_t n, int64_t arms, double noise, Generator* gen) {
  check_n_noise(n, noise, "make_spirals");
  if (arms < 2) fail("make_spirals: needs at least 2 arms, got {}", arms);
  std::vector<double> xy, y;
  with_generator(gen, [&](Generator& g) {  // the global one under its lock
    for (int64_t i = 0; i < n; ++i) {
      const int64_t label = i % arms;
      const double r = g.uniform();
      const double t = 3.5 * r * std::numbers::pi + 2 * std::numbers::pi * static_cast<double>(label) / static_cast<double>(arms);
      xy.push_back(r * std::cos(t) + noise * r * g.normal());
      xy.push_back(r * std::sin(t) + noise * r * g.normal());
      y.push_back(static_cast<double>(label));
    }
  });
  return from_points(xy, y);
}

Batch make_xor_blobs(int64_t n, double noise, Generator* gen) {
  check_n_noise(n, noise, "make_xor_blobs");
  std::vector<double> xy, y;
  with_generator(gen, [&](Generator& g) {  // the global one under its lock
    for (int64_t i = 0; i < n; ++i) {
      const int64_t a = i % 2, b = (i / 2) % 2;
      xy.push_back((a ? 1.0 : -1.0) + noise * g.normal());
      xy.push_back((b ? 1.0 : -1.0) + noise * g.normal());
      y.push_back(static_cast<double>(a ^ b));
    }
  });
  return from_points(xy, y);
}

}  // namespace chainrule::nn::data
