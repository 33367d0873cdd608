/// \file
/// Data: datasets, a DataLoader with batching, seeded shuffling, drop_last and a transform
/// hook; the IDX reader for the MNIST family (gzip through zlib); synthetic 2-D problems.
#pragma once

#include "../autograd/autograd.hpp"

#include <functional>
#include <memory>
#include <string>

namespace chainrule::nn::data {

/// A batch of examples: inputs and targets with the same first dimension.
struct Batch {
  Tensor inputs;   ///< [B, ...]
  Tensor targets;  ///< [B, ...]
};

/// A collection of examples a DataLoader can batch (torch.utils.data.Dataset).
class Dataset {
 public:
  virtual ~Dataset() = default;  ///< virtual: datasets are used through base pointers
  virtual int64_t size() const = 0;  ///< the number of examples
  /// The examples at `indices`, stacked along a new first dimension.
  virtual Batch get_batch(const std::vector<int64_t>& indices) const = 0;
};

/// Examples are rows of two tensors with the same first dimension.
class TensorDataset : public Dataset {
 public:
  /// Example i is (inputs[i], targets[i]); an Error unless the first dimensions agree.
  TensorDataset(Tensor inputs, Tensor targets);
  int64_t size() const override { return inputs_.size(0); }  ///< inputs.size(0)
  Batch get_batch(const std::vector<int64_t>& indices) const override;  ///< index_select of the rows at `indices`
  const Tensor& inputs() const { return inputs_; }  ///< all inputs
  const Tensor& targets() const { return targets_; }  ///< all targets

 private:
  Tensor inputs_, targets_;
};

/// 0, 1, ..., n-1 shuffled by a Fisher-Yates pass driven by Generator(seed): the same order on
/// every platform. The DataLoader's shuffle and DistributedSampler both use it, so N ranks
/// with a DistributedSampler see, step by step, the same examples as one process whose
/// DataLoader has N times the batch.
std::vector<int64_t> permutation(int64_t n, uint64_t seed);

/// Chooses which examples one epoch visits, in order (torch.utils.data.Sampler).
class Sampler {
 public:
  virtual ~Sampler() = default;  ///< virtual: samplers are used through base pointers
  /// The indices for `epoch` into a dataset of `dataset_size` examples.
  virtual std::vector<int64_t> indices(int64_t epoch, int64_t dataset_size) const = 0;
  /// How many indices `indices` returns for that dataset size.
  virtual int64_t num_samples(int64_t dataset_size) const = 0;
};

/// DistributedSampler's options (PyTorch's names).
struct DistributedSamplerOptions {
  int64_t num_replicas = 1;  ///< the number of ranks (distributed::world_size())
  int64_t rank = 0;          ///< this process's rank (distributed::rank())
  bool shuffle = true;  ///< a new permutation every epoch (else the dataset order)
  uint64_t seed = 0;         ///< shared by all ranks; epoch e shuffles with seed + e
  bool drop_last = false;    ///< drop the tail that does not divide evenly (else pad by repeating the start)
};

/// Shards a dataset by rank, as PyTorch's DistributedSampler: every rank draws the same
/// permutation, pads it (or drops its tail) to a multiple of num_replicas, and takes every
/// num_replicas-th index starting at its rank. Ranks see disjoint examples (except padding).
class DistributedSampler : public Sampler {
 public:
  explicit DistributedSampler(DistributedSamplerOptions options);  ///< an Error unless 0 <= rank < num_replicas
  /// This rank's indices for `epoch`.
  std::vector<int64_t> indices(int64_t epoch, int64_t dataset_size) const override;
  /// Ceil(dataset_size / num_replicas), or floor with drop_last.
  int64_t num_samples(int64_t dataset_size) const override;
  const DistributedSamplerOptions& options() const { return options_; }  ///< the options it was made with

 private:
  DistributedSamplerOptions options_;
};

/// DataLoader's options (PyTorch's names).
struct DataLoaderOptions {
  int64_t batch_size = 64;  ///< examples per batch
  bool shuffle = false;  ///< a new permutation every epoch (seeded by seed + epoch)
  bool drop_last = false;  ///< drop the last batch when it is smaller than batch_size
  uint64_t seed = 0;  ///< shuffling of epoch e uses permutation(n, seed + e): every epoch reproducible on its own
  std::function<Batch(Batch)> transform = nullptr;  ///< applied to every batch
  std::shared_ptr<const Sampler> sampler = nullptr;  ///< chooses the indices instead of shuffle (not with shuffle)
};

/// Batches of a Dataset, epoch by epoch, optionally shuffled or sampled; every epoch reproducible on its own.
class DataLoader {
 public:
  /// An Error for batch_size < 1 or a sampler together with shuffle.
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options);
  int64_t batches_per_epoch() const;  ///< the number of batches in one epoch
  /// Batch `index` of epoch `epoch` (random access; an Error when out of range).
  Batch batch(int64_t epoch, int64_t index) const;
  /// Iterates over one epoch: `for (const Batch& b : loader.epoch(3)) ...`; `epoch` selects the shuffle.
  class EpochRange;
  EpochRange epoch(int64_t epoch) const;  ///< the batches of one epoch, for a range-for loop

 private:
  std::vector<int64_t> order(int64_t epoch) const;
  int64_t samples_per_epoch() const;
  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
};

/// The batches of one epoch (the order is drawn once, when the range is made).
class DataLoader::EpochRange {
 public:
  /// An input iterator over the batches.
  struct iterator {
    const DataLoader* loader;  ///< the loader it belongs to
    std::shared_ptr<const std::vector<int64_t>> order;  ///< the epoch's example order
    int64_t index;  ///< the current batch
    Batch operator*() const;  ///< loads the current batch
    iterator& operator++() { ++index; return *this; }  ///< the next batch
    bool operator!=(const iterator& o) const { return index != o.index; }  ///< at a different batch
  };
  iterator begin() const { return {loader_, order_, 0}; }  ///< the first batch
  iterator end() const { return {loader_, order_, loader_->batches_per_epoch()}; }  ///< one past the last batch

 private:
  friend class DataLoader;
  EpochRange(const DataLoader* l, std::vector<int64_t> order)
      : loader_(l), order_(std::make_shared<const std::vector<int64_t>>(std::move(order))) {}
  const DataLoader* loader_;
  std::shared_ptr<const std::vector<int64_t>> order_;
};

// ---------------------------------------------------------------- IDX files

/// Reads an IDX file (optionally gzip-compressed) of unsigned bytes: images [N, rows, cols] or
/// labels [N]. Returns a tensor of `dtype` holding the raw values 0..255. A missing, corrupt or
/// truncated file gives an Error naming the file.
Tensor read_idx(const std::string& path, Dtype dtype = Dtype::int64);

/// The four Fashion-MNIST tensors.
struct FashionMnist {
  Tensor train_images;  ///< [60000, 784] float32 in [0, 1]
  Tensor train_labels;  ///< [60000] int64 in 0..9
  Tensor test_images;   ///< [10000, 784] float32 in [0, 1]
  Tensor test_labels;   ///< [10000] int64 in 0..9
};
/// Where Debian's dataset-fashion-mnist installs the files.
inline const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";
/// Loads the four files from `dir` (Debian package dataset-fashion-mnist by default).
FashionMnist load_fashion_mnist(const std::string& dir = kFashionMnistDir);
/// The class names, by label.
inline const char* kFashionMnistClasses[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                               "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

// ---------------------------------------------------------------- synthetic 2-D problems
// Each takes n >= 1 points and `noise`, the standard deviation of the Gaussian noise added to
// every coordinate (finite, >= 0; an Error otherwise); the global generator when gen is null.

/// Two interleaving half circles, as scikit-learn's: n points [n, 2] (float64) with int64 labels [n].
Batch make_moons(int64_t n, double noise = 0.1, Generator* gen = nullptr);
/// Two concentric circles (inner radius factor) with Gaussian noise: n points [n, 2], labels 0/1.
Batch make_circles(int64_t n, double noise = 0.05, double factor = 0.5, Generator* gen = nullptr);
/// `arms` interleaved spirals: n points [n, 2], labels 0..arms-1.
Batch make_spirals(int64_t n, int64_t arms = 2, double noise = 0.1, Generator* gen = nullptr);
/// Four Gaussian blobs at (+-1, +-1) labelled by XOR of the signs: n points [n, 2].
Batch make_xor_blobs(int64_t n, double noise = 0.2, Generator* gen = nullptr);

}  // namespace chainrule::nn::data
