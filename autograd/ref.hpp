/// \file
/// Ref<T>: the reference-counted handle behind a Tensor, its storage and the graph's nodes.
///
/// Biased reference counting (Choi, Shull and Torrellas, PACT 2018; CPython's free-threaded
/// build counts the same way): an object is owned by the thread that made it, which counts its
/// own references with plain loads and stores (`local`); other threads count theirs atomically
/// (`shared`). A std::shared_ptr counts every copy with a locked instruction as soon as the
/// process has a second thread, and OpenBLAS starts its threads when it loads: the 100-link
/// tanh chain of bench/ops_overhead ran at 112 ns/op against 100 in a process without them.
///
/// The two counts meet when the owner's count reaches zero: the owner then gives the object up
/// (`merged`: from there on every count is shared) and frees it if no other thread holds it.
/// When another thread drops a reference that the owner counted, the shared count would go
/// negative; the first such drop instead queues the object for its owner, which merges the two
/// counts the next time it makes an object (or when it exits). Objects of a thread that has
/// exited are merged by whichever thread drops them.
#pragma once

#include "pool.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace chainrule {

class RefCounted;

namespace refcount {
/// This thread's id, 0 until it first makes a counted object (ids are never reused).
extern thread_local constinit uint32_t t_thread_id;
/// Set by another thread that queued an object for this thread to merge.
extern thread_local constinit std::atomic<bool> t_merge_pending;
constexpr uint32_t kNoOwner = 0xffffffffu;  ///< the owner of a merged object: no thread
/// Gives this thread its id (the first time it makes an object); kNoOwner when the registry
/// cannot take it (out of memory): the object is then born unowned, every count shared.
uint32_t register_thread() noexcept;
void merge_queued();  ///< merges the objects other threads queued for this thread
/// Drops a reference that is the owner's last or another thread's, deleting the object when no
/// reference is left.
void drop_slow(RefCounted* o) noexcept;
/// Folds the owner's count (plus `extra`) into the shared one, so that from now on every count
/// is shared; returns the total. Called by the owner, or by anyone once the owner has exited.
long merge(RefCounted* o, long extra) noexcept;
}  // namespace refcount

/// Pooled operator new and delete for the counted classes: `new T` and `delete p` draw on the
/// pool, with the size of the most derived class (virtual destructors pass it).
struct PoolAllocated {
  static void* operator new(std::size_t n) { return pool::allocate(n); }  ///< from the pool
  static void* operator new(std::size_t n, std::align_val_t) { return pool::allocate(n); }  ///< 64-byte aligned
  static void operator delete(void* p, std::size_t n) noexcept { pool::deallocate(p, n); }  ///< to the pool
  static void operator delete(void* p, std::size_t n, std::align_val_t) noexcept { pool::deallocate(p, n); }  ///< to the pool
};

/// The counts of an object that Ref<T> handles point to. An object is born with one
/// reference, owned by the thread that made it (Ref<T>::adopt takes it over). The destructor is
/// virtual, so that a Ref can delete an object whose class is only declared where it is dropped
/// (a TensorImpl's grad_fn is a Node, which tensor.hpp does not define).
class RefCounted : public PoolAllocated {
 public:
  RefCounted() noexcept : owner_(owner_id()) {}  ///< one reference, owned by this thread
  /// A copy is a new object: its own single reference (the counts are never copied).
  RefCounted(const RefCounted&) noexcept : RefCounted() {}
  RefCounted& operator=(const RefCounted&) noexcept { return *this; }  ///< leaves the counts alone
  virtual ~RefCounted() = default;  ///< deletes the most derived object (with its size, to the pool)

  /// The number of references: exact on the owning thread and for a shared object, an
  /// estimate (as std::shared_ptr::use_count is under threads) otherwise.
  long ref_count() const noexcept;
  /// Exactly one reference (the caller's): false when that cannot be known for certain.
  bool only_reference() const noexcept { return has_exactly(1); }
  /// Exactly n references: false when that cannot be known for certain.
  bool has_exactly(long n) const noexcept {
    if (owned_here() && shared_.load(std::memory_order_acquire) == 0)  // all the owner's: exact
      return local_.load(std::memory_order_relaxed) == static_cast<uint32_t>(n);
    return has_exactly_slow(n);
  }

 private:
  template <class T>
  friend class Ref;
  friend void refcount::drop_slow(RefCounted*) noexcept;
  friend long refcount::merge(RefCounted*, long) noexcept;

  bool has_exactly_slow(long n) const noexcept;
  static uint32_t owner_id() noexcept {
    const uint32_t id = refcount::t_thread_id;
    return id ? id : refcount::register_thread();
  }
  bool owned_here() const noexcept { return owner_.load(std::memory_order_relaxed) == refcount::t_thread_id; }
  void retain() const noexcept {
    if (owned_here())
      local_.store(local_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    else
      shared_.fetch_add(kOne, std::memory_order_relaxed);
  }

  static constexpr int64_t kQueued = 1, kMerged = 2, kFlags = 3, kOne = 4;  // shared_: count * 4 | flags
  mutable std::atomic<uint32_t> owner_;        // the owning thread's id; kNoOwner once merged
  mutable std::atomic<uint32_t> local_{1};     // the owner's references (only the owner writes it)
  mutable std::atomic<int64_t> shared_{0};     // everyone else's, and the flags
};

/// A counted reference to a T (which derives from RefCounted), like std::shared_ptr without the
/// control block and the weak count: 8 bytes, and no locked instruction for the owning thread.
/// It holds the RefCounted base, so that copying and dropping it need only T's declaration.
template <class T>
class Ref {
 public:
  constexpr Ref() noexcept = default;  ///< null
  constexpr Ref(std::nullptr_t) noexcept {}  ///< null  // NOLINT: implicit, as for pointers
  Ref(const Ref& o) noexcept : p_(o.p_) {  ///< another reference to the same object
    if (p_) p_->retain();
  }
  Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}  ///< takes o's reference; o is null
  /// Another reference to o's object, as a base class (implicit, as for pointers).
  template <class U>
    requires std::is_convertible_v<U*, T*>
  Ref(const Ref<U>& o) noexcept : p_(o.counted()) {  // NOLINT: implicit upcast, as for pointers
    if (p_) p_->retain();
  }
  /// Takes o's reference, as a base class (implicit, as for pointers); o is null.
  template <class U>
    requires std::is_convertible_v<U*, T*>
  Ref(Ref<U>&& o) noexcept : p_(o.release_counted()) {}  // NOLINT: implicit upcast, as for pointers
  ~Ref() { drop(p_); }  ///< drops the reference (deleting the object if it was the last)
  Ref& operator=(const Ref& o) noexcept {  ///< now refers to o's object
    Ref(o).swap(*this);
    return *this;
  }
  Ref& operator=(Ref&& o) noexcept {  ///< takes o's reference
    Ref(std::move(o)).swap(*this);
    return *this;
  }
  Ref& operator=(std::nullptr_t) noexcept {  ///< drops the reference
    reset();
    return *this;
  }
  void reset() noexcept { drop(std::exchange(p_, nullptr)); }  ///< drops the reference; null afterwards
  void swap(Ref& o) noexcept { std::swap(p_, o.p_); }  ///< exchanges the two references

  /// Takes over the reference a new object is born with (`Ref<T>::adopt(new T(...))`).
  static Ref adopt(T* p) noexcept {
    Ref r;
    r.p_ = p;
    return r;
  }
  /// Another reference to an object that something else holds alive (a raw pointer to a counted
  /// object, as a leaf's accumulator); null for null.
  static Ref share(T* p) noexcept {
    Ref r;
    r.p_ = p;
    if (p) p->retain();
    return r;
  }

  T* get() const noexcept { return static_cast<T*>(p_); }  ///< the object (null if none)
  T* operator->() const noexcept { return get(); }  ///< the object
  T& operator*() const noexcept { return *get(); }  ///< the object
  explicit operator bool() const noexcept { return p_ != nullptr; }  ///< refers to an object
  /// The number of references (see RefCounted::ref_count); 0 when null.
  long use_count() const noexcept { return p_ ? p_->ref_count() : 0; }

  template <class U>
  bool operator==(const Ref<U>& o) const noexcept { return p_ == o.counted(); }  ///< the same object
  bool operator==(std::nullptr_t) const noexcept { return p_ == nullptr; }  ///< null

  RefCounted* counted() const noexcept { return p_; }  ///< the object's counted base (for conversions)
  RefCounted* release_counted() noexcept { return std::exchange(p_, nullptr); }  ///< gives up the reference undropped

 private:
  // Inline only the owner's drop of a reference that is not its last; the rest (the last one,
  // another thread's, deleting) is out of line.
  static void drop(RefCounted* p) noexcept {
    if (!p) return;
    if (p->owned_here()) {
      const uint32_t left = p->local_.load(std::memory_order_relaxed) - 1;
      if (left != 0) {
        p->local_.store(left, std::memory_order_relaxed);
        return;
      }
    }
    refcount::drop_slow(p);
  }
  RefCounted* p_ = nullptr;
};

namespace refcount {
/// Merges the objects other threads queued for this thread, if any: called before making an
/// object (make_ref, TensorImpl::make), so that a queue never grows without bound.
inline void merge_pending() {
  if (t_merge_pending.load(std::memory_order_relaxed)) [[unlikely]]
    merge_queued();
}
}  // namespace refcount

/// A new T in pooled memory, held by a Ref (the counterpart of std::make_shared).
template <class T, class... Args>
Ref<T> make_ref(Args&&... args) {
  refcount::merge_pending();
  return Ref<T>::adopt(new T(std::forward<Args>(args)...));
}

}  // namespace chainrule
