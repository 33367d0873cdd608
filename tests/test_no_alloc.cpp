// Reference counting does not end the process when memory runs out in the paths that run inside
// noexcept code: another thread's drop queued for the object's owner (the object is leaked
// instead), a thread's first object registering the thread (the object is born unowned). A
// program of its own, because it replaces the global operator new with one that fails on request.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <chainrule.hpp>
#include <doctest/doctest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

namespace cr = chainrule;

namespace {
thread_local bool t_fail_new = false;  // operator new throws on this thread while set
std::atomic<long> g_refused{0};        // how many times it did

std::atomic<int> g_alive{0};
struct Probe : cr::RefCounted {
  Probe() { ++g_alive; }
  ~Probe() override { --g_alive; }
};
}  // namespace

// (GCC takes the replacement's free for a mismatch with the operator new it replaces.)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t n) {
  if (t_fail_new) {
    ++g_refused;
    throw std::bad_alloc();
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

TEST_CASE("a drop that cannot queue its object for the owner keeps it alive instead of ending the process") {
  const int before = g_alive.load();
  constexpr int kCount = 100;
  // Reachable from here to the end (never destroyed), so that LeakSanitizer accepts the leak
  // this test makes on purpose.
  static auto* leaked = new std::vector<Probe*>;
  std::vector<cr::Ref<Probe>> mine, handed;
  for (int i = 0; i < kCount; ++i) {
    mine.push_back(cr::make_ref<Probe>());
    handed.push_back(mine.back());  // counted by this thread, the owner
    leaked->push_back(mine.back().get());
  }
  const long refused = g_refused.load();
  std::thread([&] {
    t_fail_new = true;  // every allocation on this thread fails from here
    handed.clear();     // each drop would queue its object for the owner
    t_fail_new = false;
  }).join();
  CHECK(g_refused.load() > refused);  // the queue was refused memory, and the process lives on
  mine.clear();                        // the owner's count still holds what could not be queued
  { auto merge_now = cr::make_ref<Probe>(); }  // making an object merges whatever was queued
  CHECK(g_alive.load() == before + kCount);    // leaked, never freed early

  // With memory, the same drops are queued and merged as usual.
  for (int i = 0; i < kCount; ++i) {
    mine.push_back(cr::make_ref<Probe>());
    handed.push_back(mine.back());
  }
  std::thread([&] { handed.clear(); }).join();
  mine.clear();
  CHECK(g_alive.load() == before + 2 * kCount);
  { auto merge_now = cr::make_ref<Probe>(); }
  CHECK(g_alive.load() == before + kCount);
}

TEST_CASE("a thread whose registration cannot allocate makes its objects unowned, and they work") {
  const int before = g_alive.load();
  long refused = 0;
  cr::Ref<Probe> made_there;
  std::thread([&] {
    t_fail_new = true;
    const long r0 = g_refused.load();
    auto p = cr::make_ref<Probe>();  // the thread's first object: registering it fails
    auto q = p;
    q.reset();
    made_there = std::move(p);
    refused = g_refused.load() - r0;
    t_fail_new = false;
  }).join();
  CHECK(refused >= 1);  // registration was refused memory
  CHECK(g_alive.load() == before + 1);
  CHECK(made_there.use_count() == 1);  // unowned objects count in the shared count: exact anywhere
  made_there.reset();
  CHECK(g_alive.load() == before);
}
