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

struct DataLoaderOptions {
  int64_t batch_size = 64;
  bool shuffle = false;
  bool drop_last = false;
  uint64_t seed = 0;  // shuffling of epoch e uses seed + e: every epoch reproducible on its own
  std::function<Batch(Batch)> transform = nullptr;  // applied to every batch
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
