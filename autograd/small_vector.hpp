/// \file
/// SmallVector: a vector whose first N elements live inside the object. A graph node's edges,
/// saved tensors and input shapes, and the gradients a backward rule returns, are almost
/// always one or two: keeping them inline saves three allocations per recorded op.
#pragma once

#include "pool.hpp"

#include <array>
#include <initializer_list>
#include <stdexcept>
#include <vector>

namespace chainrule {

/// A vector of T with room for N elements inline; beyond N, all elements move to a pooled heap
/// vector. T must be default-constructible (the inline slots hold default values when unused).
template <class T, size_t N>
class SmallVector {
 public:
  using value_type = T;            ///< the element type
  using iterator = T*;             ///< a pointer into the elements
  using const_iterator = const T*;  ///< a pointer into the elements

  SmallVector() = default;  ///< empty
  SmallVector(std::initializer_list<T> init) { append(init.begin(), init.end()); }  ///< the listed elements
  /// The elements of [first, last).
  template <class It>
  SmallVector(It first, It last) {
    append(first, last);
  }
  SmallVector(const SmallVector& o) { append(o.begin(), o.end()); }  ///< a copy
  SmallVector(SmallVector&& o) noexcept { take(o); }                 ///< takes o's elements; o is left empty
  /// Replaces the elements by copies of o's.
  SmallVector& operator=(const SmallVector& o) {
    if (this != &o) {
      clear();
      append(o.begin(), o.end());
    }
    return *this;
  }
  /// Takes o's elements; o is left empty.
  SmallVector& operator=(SmallVector&& o) noexcept {
    if (this != &o) {
      clear();
      take(o);
    }
    return *this;
  }

  size_t size() const { return on_heap_ ? heap_.size() : small_; }  ///< the number of elements
  bool empty() const { return size() == 0; }                          ///< no elements
  T* begin() { return on_heap_ ? heap_.data() : inline_.data(); }      ///< the first element
  T* end() { return begin() + size(); }                               ///< one past the last element
  const T* begin() const { return on_heap_ ? heap_.data() : inline_.data(); }  ///< the first element
  const T* end() const { return begin() + size(); }                           ///< one past the last element
  T& operator[](size_t i) { return begin()[i]; }                              ///< element i (unchecked)
  const T& operator[](size_t i) const { return begin()[i]; }                  ///< element i (unchecked)
  T& back() { return end()[-1]; }                                             ///< the last element
  /// Element i; std::out_of_range when i >= size().
  const T& at(size_t i) const {
    if (i >= size()) throw std::out_of_range("SmallVector::at");
    return begin()[i];
  }

  /// Appends v.
  void push_back(T v) {
    if (!on_heap_ && small_ < N) {
      inline_[small_++] = std::move(v);
      return;
    }
    if (!on_heap_) spill(N + 1);
    heap_.push_back(std::move(v));
  }
  /// Makes room for n elements without further allocation.
  void reserve(size_t n) {
    if (n <= N) return;
    if (on_heap_) heap_.reserve(n);
    else spill(n);
  }
  /// Removes every element (inline slots are reset, so held resources are released).
  void clear() {
    for (size_t i = 0; i < small_; ++i) inline_[i] = T();
    small_ = 0;
    heap_.clear();
    on_heap_ = false;
  }

 private:
  template <class It>
  void append(It first, It last) {
    for (; first != last; ++first) push_back(*first);
  }
  void spill(size_t capacity) {
    heap_.reserve(capacity);
    for (size_t i = 0; i < small_; ++i) {
      heap_.push_back(std::move(inline_[i]));
      inline_[i] = T();
    }
    small_ = 0;
    on_heap_ = true;
  }
  void take(SmallVector& o) {
    for (size_t i = 0; i < o.small_; ++i) inline_[i] = std::move(o.inline_[i]);
    small_ = o.small_;
    heap_ = std::move(o.heap_);
    on_heap_ = o.on_heap_;
    o.clear();
  }

  std::array<T, N> inline_{};
  std::vector<T, pool::Allocator<T>> heap_;
  size_t small_ = 0;
  bool on_heap_ = false;
};

}  // namespace chainrule
