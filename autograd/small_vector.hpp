/// \file
/// SmallVector: a vector whose first N elements live inside the object. A graph node's edges,
/// saved tensors and input shapes, and the gradients a backward rule returns, are almost
/// always one or two: keeping them inline saves three allocations per recorded op.
#pragma once

#include "pool.hpp"

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace chainrule {

/// A vector of T with room for N elements inline; beyond N, the elements move to a pooled heap
/// block. Slots are raw memory until an element is pushed: making an empty SmallVector
/// constructs (and zeroes) nothing, which matters because every recorded op makes several.
template <class T, size_t N>
class SmallVector {
 public:
  using value_type = T;            ///< the element type
  using iterator = T*;             ///< a pointer into the elements
  using const_iterator = const T*;  ///< a pointer into the elements

  SmallVector() noexcept {}  ///< empty (user-provided, so value-initialisation does not zero the inline slots)
  /// The listed elements, moved in when they are temporaries: `return {g * b, Tensor()};` in
  /// a backward rule makes no handle copies (an initializer_list would copy every element out
  /// of its const array: two reference-count updates per gradient).
  template <class... A>
    requires(sizeof...(A) > 0 && (std::is_constructible_v<T, A&&> && ...) &&
             !(sizeof...(A) == 1 && (std::is_same_v<std::remove_cvref_t<A>, SmallVector> || ...)))
  SmallVector(A&&... elements) {  // NOLINT: implicit, so that `return {a, b};` works
    guarded([&] {
      reserve(sizeof...(A));
      (push_back(T(std::forward<A>(elements))), ...);
    });
  }
  /// The elements of [first, last).
  template <std::input_iterator It>
  SmallVector(It first, It last) {
    guarded([&] { append(first, last); });
  }
  SmallVector(const SmallVector& o) {  ///< a copy
    guarded([&] { append(o.begin(), o.end()); });
  }
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
      release_heap();
      take(o);
    }
    return *this;
  }
  ~SmallVector() {  ///< destroys the elements and returns a heap block to the pool
    clear();
    release_heap();
  }

  size_t size() const { return size_; }                      ///< the number of elements
  bool empty() const { return size_ == 0; }                  ///< no elements
  T* begin() { return data_; }                               ///< the first element
  T* end() { return data_ + size_; }                         ///< one past the last element
  const T* begin() const { return data_; }                   ///< the first element
  const T* end() const { return data_ + size_; }             ///< one past the last element
  T& operator[](size_t i) { return data_[i]; }               ///< element i (unchecked)
  const T& operator[](size_t i) const { return data_[i]; }   ///< element i (unchecked)
  T& back() { return data_[size_ - 1]; }                     ///< the last element
  /// Element i; std::out_of_range when i >= size().
  const T& at(size_t i) const {
    if (i >= size_) throw std::out_of_range("SmallVector::at");
    return data_[i];
  }

  /// Appends v (moving everything to the heap when the inline slots are full).
  void push_back(T v) { emplace_back(std::move(v)); }
  /// Appends T(args...) made in place (no temporary to move from), T{args...} for an aggregate
  /// (clang before 16 has no parenthesised aggregate initialisation); args must not refer to
  /// this vector's elements, which growing moves.
  template <class... A>
  T& emplace_back(A&&... args) {
    if (size_ == capacity_) grow(2 * std::size_t(capacity_));
    void* slot = data_ + size_;
    T* p;
    if constexpr (std::is_aggregate_v<T>)
      p = ::new (slot) T{std::forward<A>(args)...};
    else
      p = ::new (slot) T(std::forward<A>(args)...);
    ++size_;
    return *p;
  }
  /// Removes the last element.
  void pop_back() {
    --size_;
    data_[size_].~T();
  }
  /// Makes room for n elements without reallocating.
  void reserve(size_t n) {
    if (n > capacity_) grow(n);
  }
  /// Destroys the elements (a heap block is kept for reuse).
  void clear() {
    std::destroy(data_, data_ + size_);
    size_ = 0;
  }

 private:
  // A constructor that throws part-way destroys what it built (the destructor will not run).
  template <class F>
  void guarded(F&& build) {
    try {
      build();
    } catch (...) {
      clear();
      release_heap();
      throw;
    }
  }
  template <class It>
  void append(It first, It last) {
    for (; first != last; ++first) push_back(*first);
  }
  T* inline_data() { return std::launder(reinterpret_cast<T*>(inline_)); }
  bool on_heap() const { return data_ != reinterpret_cast<const T*>(inline_); }
  void grow(size_t capacity) {
    if (capacity > UINT32_MAX) throw std::length_error("SmallVector: more than 2^32 - 1 elements");
    T* block = static_cast<T*>(pool::allocate(capacity * sizeof(T)));
    for (size_t i = 0; i < size_; ++i) {
      ::new (static_cast<void*>(block + i)) T(std::move(data_[i]));
      data_[i].~T();
    }
    release_heap();
    data_ = block;
    capacity_ = static_cast<uint32_t>(capacity);
  }
  void release_heap() noexcept {
    if (on_heap()) pool::deallocate(data_, capacity_ * sizeof(T));
    data_ = inline_data();
    capacity_ = N;
  }
  void take(SmallVector& o) noexcept {
    if (o.on_heap()) {  // steal the block
      data_ = o.data_;
      capacity_ = o.capacity_;
      size_ = o.size_;
      o.data_ = o.inline_data();
      o.capacity_ = N;
      o.size_ = 0;
      return;
    }
    for (size_t i = 0; i < o.size_; ++i) ::new (static_cast<void*>(inline_data() + i)) T(std::move(o.data_[i]));
    size_ = o.size_;
    o.clear();
  }

  alignas(T) unsigned char inline_[N * sizeof(T)];
  T* data_ = inline_data();
  uint32_t size_ = 0;  // 32-bit counts: 8 bytes less in every node's edge and saved lists
  uint32_t capacity_ = N;
};

}  // namespace chainrule
