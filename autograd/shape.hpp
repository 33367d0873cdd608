/// \file
/// Shape: the sizes (or strides) of a tensor, stored inline (at most 8 dimensions) so that
/// making a small tensor allocates nothing for its shape.
#pragma once

#include "error.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <vector>

namespace chainrule {

/// The sizes (or strides) of a tensor: up to kMaxDims int64 values stored inline, used like a small vector.
class Shape {
 public:
  static constexpr int kMaxDims = 8;  ///< the most dimensions a tensor may have

  Shape() = default;  ///< no dimensions (a scalar's shape)
  Shape(std::initializer_list<int64_t> dims) : Shape(dims.begin(), dims.end()) {}  ///< Shape{2, 3}
  /// From a vector (implicit, so ops accept vectors).
  Shape(const std::vector<int64_t>& dims) : Shape(dims.begin(), dims.end()) {}  // NOLINT: implicit on purpose
  /// From an iterator range of integers.
  template <class It>
  Shape(It first, It last) {
    for (; first != last; ++first) push_back(*first);
  }

  size_t size() const { return size_; }  ///< the number of dimensions
  bool empty() const { return size_ == 0; }  ///< no dimensions
  int64_t& operator[](size_t i) { return dims_[i]; }  ///< dimension i
  int64_t operator[](size_t i) const { return dims_[i]; }  ///< dimension i
  int64_t* begin() { return dims_; }  ///< the first dimension
  int64_t* end() { return dims_ + size_; }  ///< one past the last dimension
  const int64_t* begin() const { return dims_; }  ///< the first dimension
  const int64_t* end() const { return dims_ + size_; }  ///< one past the last dimension
  const int64_t* data() const { return dims_; }  ///< the dimensions as an array
  int64_t back() const { return dims_[size_ - 1]; }  ///< the last dimension

  void push_back(int64_t d) {  ///< appends a dimension (an Error beyond kMaxDims)
    if (size_ == kMaxDims) fail("Shape: at most {} dimensions are supported", kMaxDims);
    dims_[size_++] = d;
  }
  void insert(size_t pos, int64_t d) {  ///< inserts a dimension before position pos
    push_back(0);
    std::copy_backward(dims_ + pos, dims_ + size_ - 1, dims_ + size_);
    dims_[pos] = d;
  }
  void erase(size_t pos) {  ///< removes dimension pos
    std::copy(dims_ + pos + 1, dims_ + size_, dims_ + pos);
    --size_;
  }
  void resize(size_t n, int64_t value = 0) {  ///< keeps the first n dimensions, padding with value
    while (size_ > n) --size_;
    while (size_ < n) push_back(value);
  }

  int64_t numel() const {  ///< the product of the dimensions (1 for a scalar)
    int64_t n = 1;
    for (int64_t d : *this) n *= d;
    return n;
  }
  std::vector<int64_t> vec() const { return {begin(), end()}; }  ///< a copy as std::vector

  /// Same dimensions (a plain loop: std::equal became a call to memcmp, 3% of a small-net step).
  friend bool operator==(const Shape& a, const Shape& b) {
    if (a.size_ != b.size_) return false;
    for (size_t i = 0; i < a.size_; ++i)
      if (a.dims_[i] != b.dims_[i]) return false;
    return true;
  }

 private:
  // Not zeroed: only the first size_ entries are ever read (a Shape is made on every op).
  int64_t dims_[kMaxDims];
  uint8_t size_ = 0;
};

/// Writes the row-major strides of a contiguous tensor of `shape` into `out` (not `shape`
/// itself). In place on purpose: a Shape returned by value, written 8 bytes at a time and
/// copied with 16-byte loads right after, stalls on store-to-load forwarding (40% of
/// kernels::empty in `perf annotate`).
inline void contiguous_strides_into(const Shape& shape, Shape& out) {
  out.resize(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    out[i] = acc;
    acc *= std::max<int64_t>(shape[i], 1);
  }
}

/// Row-major strides of a contiguous tensor of `shape`.
inline Shape contiguous_strides(const Shape& shape) {
  Shape s;
  contiguous_strides_into(shape, s);
  return s;
}

/// Strides that show the elements of a tensor of `shape` and `strides`, in row-major order, as a
/// tensor of `new_shape` (same element count) without copying; none when its layout does not
/// allow it. PyTorch's rule (computeStride): the old dims fall into runs, each contiguous within
/// itself, and the new shape must split into runs of the same element counts. So squeeze and
/// unsqueeze are always views, and reshape of a non-contiguous tensor is one when it only
/// splits or merges dims within a run.
std::optional<Shape> view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape);

/// Wraps a possibly negative dimension index into [0, rank); throws naming `op` otherwise.
int64_t wrap_dim(int64_t dim, int64_t rank, std::string_view op);
/// The same for a dim that an op inserts into `what` ("a tensor", "tensors") of rank `rank`
/// (unsqueeze, stack): [-(rank+1), rank] wraps into [0, rank].
int64_t wrap_new_dim(int64_t dim, int64_t rank, std::string_view op, std::string_view what = "a tensor");

/// NumPy broadcasting of two shapes; throws naming `op` and both shapes when incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op);

/// True when `from` broadcasts to `to`.
bool is_expandable_to(const Shape& from, const Shape& to);

}  // namespace chainrule

// fmt::formatter specialisation (printing with fmt), hidden from the API reference.
/// \cond
template <>
struct fmt::formatter<chainrule::Shape> {
  constexpr auto parse(format_parse_context& ctx) { return ctx.begin(); }
  auto format(const chainrule::Shape& s, format_context& ctx) const {
    return fmt::format_to(ctx.out(), "[{}]", fmt::join(s.begin(), s.end(), ", "));
  }
};
/// \endcond
