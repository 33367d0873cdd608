// Biased reference counting (see ref.hpp): the slow paths, the per-thread queues of objects
// to merge, and what happens to a thread's objects when it exits or the process forks.
#include "ref.hpp"

#include <pthread.h>

#include <mutex>
#include <unordered_map>
#include <vector>

namespace chainrule {

namespace refcount {
thread_local constinit uint32_t t_thread_id = 0;
thread_local constinit std::atomic<bool> t_merge_pending{false};
}  // namespace refcount

namespace {

using refcount::kNoOwner;

struct Owner {
  std::vector<RefCounted*> queued;  // objects whose counts it must merge
  std::atomic<bool>* pending;  // its t_merge_pending
};

// The threads that own objects, with the objects queued for each. Never destroyed: objects
// are still dropped during static destruction.
struct Registry {
  std::mutex mutex;
  std::unordered_map<uint32_t, Owner> owners;
  uint32_t next_id = 1;
};
Registry* g_registry = nullptr;

Registry& registry() {
  static const bool made = [] {
    g_registry = new Registry;
    // A forked child has only the thread that forked: the others' queues would never be merged,
    // so it forgets them (their queued objects leak; later drops of their objects merge at once).
    pthread_atfork([] { g_registry->mutex.lock(); }, [] { g_registry->mutex.unlock(); },
                   [] {
                     std::erase_if(g_registry->owners, [](const auto& e) { return e.first != refcount::t_thread_id; });
                     g_registry->mutex.unlock();
                   });
    return true;
  }();
  (void)made;
  return *g_registry;
}

thread_local constinit bool t_exiting = false;

void merge_all(const std::vector<RefCounted*>& queued) noexcept {
  for (RefCounted* o : queued)
    if (refcount::merge(o, -1) == 0) delete o;  // -1: the queue's reference
}

// At thread exit: merge what was queued for this thread and stop owning. Objects it still owns
// are merged by whichever thread drops them (it finds no owner in the registry); anything this
// thread drops from now on is dropped as by another thread, so that its owner's count, which
// another thread may now merge, is never written again.
struct Reaper {
  bool armed = false;
  ~Reaper() {
    std::vector<RefCounted*> queued;
    {
      Registry& r = registry();
      std::lock_guard lock(r.mutex);
      if (auto it = r.owners.find(refcount::t_thread_id); it != r.owners.end()) {
        queued.swap(it->second.queued);
        r.owners.erase(it);
      }
      refcount::t_thread_id = 0;
      t_exiting = true;
    }
    refcount::t_merge_pending.store(false, std::memory_order_relaxed);
    merge_all(queued);
  }
};
thread_local Reaper t_reaper;

// Queues `o` (whose shared count just became "queued") for its owner; if the owner has
// exited, merges it here. True when that merge found no reference left. Out of memory for the
// queue, the reference stays in the owner's count and the object is never freed: a leak, where
// the exception would have ended the process (this runs inside a noexcept drop). A link inside
// each object would need no memory, but its 8 bytes slowed the 100-link mul/add chain by 4-5%.
bool enqueue(RefCounted* o, uint32_t owner) noexcept {
  if (owner != kNoOwner) {  // (an object born unowned has no queue, and no owner writes its count)
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    if (auto it = r.owners.find(owner); it != r.owners.end()) {
      try {
        it->second.queued.push_back(o);
      } catch (const std::bad_alloc&) {
        return false;
      }
      it->second.pending->store(true, std::memory_order_release);
      return false;
    }
  }
  return refcount::merge(o, -1) == 0;  // the owner is gone: its count is final (the lock ordered it)
}

}  // namespace

namespace refcount {

uint32_t register_thread() noexcept {
  if (t_exiting) return kNoOwner;  // an object made during thread exit belongs to no thread
  try {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    if (r.next_id == kNoOwner) return kNoOwner;  // ids ran out (never reused): objects are born unowned
    const uint32_t id = r.next_id;
    r.owners[id].pending = &t_merge_pending;  // may throw: then nothing has changed
    ++r.next_id;
    t_thread_id = id;
    t_reaper.armed = true;  // constructs it, so that it runs at thread exit
    return id;
  } catch (...) {
    return kNoOwner;  // out of memory: born unowned, as above; the thread's next object tries again
  }
}

void merge_queued() {
  std::vector<RefCounted*> queued;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    t_merge_pending.store(false, std::memory_order_relaxed);
    if (auto it = r.owners.find(t_thread_id); it != r.owners.end()) queued.swap(it->second.queued);
  }
  merge_all(queued);
}

long merge(RefCounted* o, long extra) noexcept {
  const long local = o->local_.load(std::memory_order_relaxed);
  o->local_.store(0, std::memory_order_relaxed);
  o->owner_.store(kNoOwner, std::memory_order_relaxed);
  int64_t s = o->shared_.load(std::memory_order_relaxed);
  long total = 0;
  do {
    total = static_cast<long>(s >> 2) + local + extra;
  } while (!o->shared_.compare_exchange_weak(s, int64_t(total) * RefCounted::kOne | RefCounted::kMerged,
                                              std::memory_order_acq_rel, std::memory_order_relaxed));
  return total;
}

void drop_slow(RefCounted* o) noexcept {
  int64_t s = 0, next = 0;
  if (o->owned_here()) {  // the owner's last reference
    o->local_.store(0, std::memory_order_relaxed);
    s = o->shared_.load(std::memory_order_acquire);
    if (s != 0) {  // other threads hold it (or dropped some of the owner's): give it up to them
      o->owner_.store(kNoOwner, std::memory_order_relaxed);  // before the flag: merged implies unowned
      do {
        next = (s & ~RefCounted::kFlags) | RefCounted::kMerged;
      } while (!o->shared_.compare_exchange_weak(s, next, std::memory_order_acq_rel, std::memory_order_acquire));
      if (next != RefCounted::kMerged) return;  // they still do
    }
  } else {  // another thread's reference, or any once merged
    bool queue = false;
    s = o->shared_.load(std::memory_order_relaxed);
    do {
      // The first drop that would take an unmerged count below zero hands its reference to the
      // owner's queue instead (the owner's count still includes it).
      queue = s == 0;
      next = queue ? RefCounted::kQueued : s - RefCounted::kOne;
    } while (!o->shared_.compare_exchange_weak(s, next, std::memory_order_acq_rel, std::memory_order_relaxed));
    if (queue ? !enqueue(o, o->owner_.load(std::memory_order_relaxed)) : next != RefCounted::kMerged) return;
  }
  delete o;
}

}  // namespace refcount

long RefCounted::ref_count() const noexcept {
  const int64_t s = shared_.load(std::memory_order_acquire);
  long n = static_cast<long>(s >> 2);
  if (!(s & kMerged)) n += static_cast<long>(local_.load(std::memory_order_relaxed)) - (s & kQueued ? 1 : 0);
  return n;
}

bool RefCounted::has_exactly_slow(long n) const noexcept {
  // ref_count() is exact on the owning thread and once merged; elsewhere it is only an estimate
  if (!owned_here() && !(shared_.load(std::memory_order_acquire) & kMerged)) return false;
  return ref_count() == n;
}

}  // namespace chainrule
