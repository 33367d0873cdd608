// Data: datasets, a DataLoader with batching, seeded shuffling, drop_last and a transform
// hook; the IDX reader for the MNIST family (gzip through zlib); synthetic 2-D problems.
#pragma once

#include "../autograd/autograd.hpp"

#include <functional>
#include <memory>
#include <string>

namespace chainrule::nn::data {

struct Batch {
  Tensor inputs;   // [B, ...]
  Tensor targets;  // [B, ...]
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // The examples at `indices`, stacked along a new first dimension.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const = 0;
};

// Examples are rows of two tensors with the same first dimension.
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor inputs, Tensor targets);
  int64_t size() const override { return inputs_.size(0); }
  Batch get_batch(const std::vector<int64_t>& indices) const override;
  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_, targets_;
};

// 0, 1, ..., n-1 shuffled by a Fisher-Yates pass driven by Generator(seed): the same order on
// every platform. The DataLoader's shuffle and DistributedSampler both use it, so N ranks
// with a DistributedSampler see, step by step, the same examples as one process whose
// DataLoader has N times the batch.
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

// Chooses which examples one epoch visits, in order (torch.utils.data.Sampler).
class Sampler {
 public:
  virtual ~Sampler() = default;
  // The indices for `epoch` into a dataset of `dataset_size` examples.
  virtual std::vector<int64_t> indices(int64_t epoch, int64_t dataset_size) const = 0;
  // How many indices `indices` returns for that dataset size.
  virtual int64_t num_samples(int64_t dataset_size) const = 0;
};

struct DistributedSamplerOptions {
  int64_t num_replicas = 1;  // the number of ranks (distributed::world_size())
  int64_t rank = 0;          // this process's rank (distributed::rank())
  bool shuffle = true;
  uint64_t seed = 0;         // shared by all ranks; epoch e shuffles with seed + e
  bool drop_last = false;    // drop the tail that does not divide evenly (else pad by repeating the start)
};

// Shards a dataset by rank, as PyTorch's DistributedSampler: every rank draws the same
// permutation, pads it (or drops its tail) to a multiple of num_replicas, and takes every
// num_replicas-th index starting at its rank. Ranks see disjoint examples (except padding).
class DistributedSampler : public Sampler {
 public:
  explicit DistributedSampler(DistributedSamplerOptions options);
  std::vector<int64_t> indices(int64_t epoch, int64_t dataset_size) const override;
  int64_t num_samples(int64_t dataset_size) const override;
  const DistributedSamplerOptions& options() const { return options_; }

 private:
  DistributedSamplerOptions options_;
};

struct DataLoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = false;
  bool drop_last = false;
  uint64_t seed = 0;  // shuffling of epoch e uses permutation(n, seed + e): every epoch reproducible on its own
  std::function<Batch(Batch)> transform = nullptr;  // applied to every batch
  std::shared_ptr<const Sampler> sampler = nullptr;  // chooses the indices instead of shuffle (not with shuffle)
};

class DataLoader {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options);
  // The batches of one epoch, in order; `epoch` selects the shuffle.
  int64_t batches_per_epoch() const;
  Batch batch(int64_t epoch, int64_t index) const;
  // Iterates over one epoch: for (const Batch& b : loader.epoch(3)) ...
  class EpochRange;
  EpochRange epoch(int64_t epoch) const;

 private:
  std::vector<int64_t> order(int64_t epoch) const;
  int64_t samples_per_epoch() const;
  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
};

class DataLoader::EpochRange {
 public:
  struct iterator {
    const DataLoader* loader;
    std::shared_ptr<const std::vector<int64_t>> order;
    int64_t index;
    Batch operator*() const;
    iterator& operator++() { ++index; return *this; }
    bool operator!=(const iterator& o) const { return index != o.index; }
  };
  iterator begin() const { return {loader_, order_, 0}; }
  iterator end() const { return {loader_, order_, loader_->batches_per_epoch()}; }

 private:
  friend class DataLoader;
  EpochRange(const DataLoader* l, std::vector<int64_t> order)
      : loader_(l), order_(std::make_shared<const std::vector<int64_t>>(std::move(order))) {}
  const DataLoader* loader_;
  std::shared_ptr<const std::vector<int64_t>> order_;
};

// ---------------------------------------------------------------- IDX files

// Reads an IDX file (optionally gzip-compressed) of unsigned bytes: images [N, rows, cols] or
// labels [N]. Returns a tensor of `dtype` holding the raw values 0..255. A missing, corrupt or
// truncated file gives an Error naming the file.
Tensor read_idx(const std::string& path, Dtype dtype = Dtype::int64);

struct FashionMnist {
  Tensor train_images, train_labels, test_images, test_labels;  // images [N, 784] float32 in [0, 1]
};
inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
// Loads the four files from `dir` (Debian package dataset-fashion-mnist by default).
FashionMnist load_fashion_mnist(const std::string& dir = kFashionMnistDir);
inline const char* kFashionMnistClasses[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                               "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// ---------------------------------------------------------------- synthetic 2-D problems

// n points [n, 2] (float64) with int64 labels [n].
Batch make_moons(int64_t n, double noise = 0.1, Generator* gen = nullptr);
Batch make_circles(int64_t n, double noise = 0.05, double factor = 0.5, Generator* gen = nullptr);
Batch make_spirals(int64_t n, int64_t arms = 2, double noise = 0.1, Generator* gen = nullptr);
Batch make_xor_blobs(int64_t n, double noise = 0.2, Generator* gen = nullptr);

}  // namespace chainrule::nn::data
