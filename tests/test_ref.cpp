// Ref<T> and its biased reference counts (autograd/ref.hpp): the owning thread counts without
// atomics, other threads count atomically, and an object is deleted exactly once, by whichever
// thread drops the last reference: the owner, another thread, the owner merging what others
// queued for it, the owner at its exit, or anyone after the owner has exited. Then what the
// engine built on it: a leaf's accumulator shared between threads, retain_grad's slot.
#include "helpers.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

namespace {

std::atomic<int> g_alive{0};

struct Probe : cr::RefCounted {
  int value;
  explicit Probe(int v = 0) : value(v) { ++g_alive; }
  ~Probe() override { --g_alive; }
};

using ProbeRef = cr::Ref<Probe>;

}  // namespace

TEST_CASE("Ref: copies and drops on the owning thread; use_count is exact there; the last drop deletes") {
  const int before = g_alive.load();
  {
    ProbeRef a = cr::make_ref<Probe>(7);
    CHECK(g_alive.load() == before + 1);
    CHECK(a.use_count() == 1);
    CHECK(a->only_reference());
    ProbeRef b = a;
    CHECK(a.use_count() == 2);
    CHECK_FALSE(a->only_reference());
    ProbeRef c = std::move(b);
    CHECK(b == nullptr);
    CHECK(a.use_count() == 2);
    cr::Ref<cr::RefCounted> base = c;  // upcast
    CHECK(a.use_count() == 3);
    CHECK(base == a);
    c.reset();
    base = nullptr;
    CHECK(a.use_count() == 1);
    CHECK(a->value == 7);
  }
  CHECK(g_alive.load() == before);
}

TEST_CASE("Ref: another thread's copies count apart; whoever drops last deletes") {
  const int before = g_alive.load();
  ProbeRef a = cr::make_ref<Probe>(1);
  ProbeRef held;
  std::thread([&] {
    held = a;  // a copy made on another thread
    ProbeRef more = held;
    CHECK(more.use_count() >= 3);  // from a thread that does not own it: an estimate, never below the truth here
  }).join();
  CHECK(a.use_count() == 2);  // exact on the owner: its own and the other thread's
  a.reset();  // the owner's last: it gives the object up to the shared count
  CHECK(g_alive.load() == before + 1);
  CHECK(held.use_count() == 1);  // merged: exact anywhere
  CHECK(held->only_reference());
  std::thread([&] { held.reset(); }).join();  // the last reference, dropped on another thread
  CHECK(g_alive.load() == before);
}

TEST_CASE("Ref: a reference the owner counted, dropped on another thread, is merged when the owner next makes an object") {
  const int before = g_alive.load();
  ProbeRef a = cr::make_ref<Probe>(2);
  ProbeRef moved = a;  // counted by the owner
  std::thread([m = std::move(moved)]() mutable { m.reset(); }).join();  // dropped elsewhere: queued for the owner
  CHECK(a.use_count() == 1);  // still exact
  CHECK(a->only_reference());
  a.reset();  // the owner's count still includes the queued reference
  CHECK(g_alive.load() == before + 1);
  { ProbeRef other = cr::make_ref<Probe>(3); }  // making an object merges the queue first
  CHECK(g_alive.load() == before);
}

TEST_CASE("Ref: objects queued for a thread are merged when it exits; objects it still owns outlive it") {
  const int before = g_alive.load();
  ProbeRef kept, handed;
  std::atomic<int> stage{0};
  std::thread worker([&] {
    kept = cr::make_ref<Probe>(4);     // counted by the worker, held by the main thread
    handed = cr::make_ref<Probe>(5);   // likewise, dropped below while the worker still runs
    stage = 1;
    while (stage.load() != 2) std::this_thread::yield();
  });
  while (stage.load() != 1) std::this_thread::yield();
  handed.reset();  // queued for the worker, which makes no more objects
  CHECK(g_alive.load() == before + 2);
  stage = 2;
  worker.join();  // at exit it merges its queue: `handed` goes
  CHECK(g_alive.load() == before + 1);
  CHECK(kept->value == 4);
  CHECK(kept.use_count() == 1);
  kept.reset();  // its owner is gone: merged and deleted here
  CHECK(g_alive.load() == before);
}

TEST_CASE("Ref: a reference moved out of an exited thread is merged by the thread that drops it") {
  const int before = g_alive.load();
  ProbeRef moved_out;
  std::thread([&] { moved_out = cr::make_ref<Probe>(6); }).join();  // counted by the worker, which is gone
  CHECK(g_alive.load() == before + 1);
  CHECK(moved_out->value == 6);
  moved_out.reset();
  CHECK(g_alive.load() == before);
}

TEST_CASE("Ref: an object made while its thread exits belongs to no thread and is deleted once") {
  const int before = g_alive.load();
  static ProbeRef handed_over;
  struct MakesAtExit {
    ~MakesAtExit() { handed_over = cr::make_ref<Probe>(8); }  // runs after the thread's reference-count state is gone
  };
  std::thread([] {
    static thread_local MakesAtExit at_exit;  // constructed before the thread makes any object: destroyed after
    (void)&at_exit;
    ProbeRef during = cr::make_ref<Probe>(9);
  }).join();
  REQUIRE(handed_over);
  CHECK(handed_over->value == 8);
  CHECK(handed_over.use_count() == 1);
  handed_over.reset();
  CHECK(g_alive.load() == before);
}

TEST_CASE("Ref: threads copying and dropping one object concurrently; deleted exactly once") {
  const int before = g_alive.load();
  ProbeRef shared = cr::make_ref<Probe>(10);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([copy = shared] {
      for (int i = 0; i < 20000; ++i) {
        ProbeRef a = copy;
        ProbeRef b = a;
        std::vector<ProbeRef> many(4, b);
      }
    });
  for (int i = 0; i < 20000; ++i) {
    ProbeRef a = shared;
    ProbeRef b = std::move(a);
  }
  for (auto& t : threads) t.join();
  CHECK(shared.use_count() == 1);
  shared.reset();
  // The captured copies were counted by this thread and dropped by the others: the first drop
  // that found the shared count at zero queued the object here, so it goes when this thread
  // next makes an object.
  CHECK(g_alive.load() == before + 1);
  { ProbeRef next = cr::make_ref<Probe>(0); }
  CHECK(g_alive.load() == before);
}

TEST_CASE("Ref: a forked child drops objects of threads it does not have") {
  ProbeRef from_worker;
  std::thread([&] { from_worker = cr::make_ref<Probe>(11); }).join();
  ProbeRef mine = cr::make_ref<Probe>(12);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int before = g_alive.load();
    ProbeRef copy = mine;
    from_worker.reset();
    copy.reset();
    mine.reset();
    { ProbeRef fresh = cr::make_ref<Probe>(13); }
    ::_exit(g_alive.load() == before - 2 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("tensors made on one thread and freed on another: graphs, gradients and leaves") {
  const int64_t nodes_before = cr::autograd::live_nodes();
  cr::Tensor w = cr::tensor({1.0, 2.0, 3.0}, cr::float64).requires_grad_();
  cr::Tensor loss;
  std::thread([&] { loss = (cr::tanh(w * 2.0) * w).sum(); }).join();  // the graph's objects belong to the exited thread
  loss.backward();
  const auto expected = [](double v) { return std::tanh(2 * v) + 2 * v * (1 - std::tanh(2 * v) * std::tanh(2 * v)); };
  const auto g = w.grad().to_vector<double>();
  for (int i = 0; i < 3; ++i) CHECK(g[i] == doctest::Approx(expected(i + 1.0)).epsilon(1e-14));
  cr::Tensor grad_copy = w.grad();
  std::thread([&] { grad_copy = cr::Tensor(); }).join();
  loss = cr::Tensor();
  CHECK(cr::autograd::live_nodes() == nodes_before + 1);  // w's accumulator, made on the exited thread
  std::thread([&] { w = cr::Tensor(); }).join();
  CHECK(cr::autograd::live_nodes() == nodes_before);
}

TEST_CASE("a leaf's accumulator is shared safely by threads recording and freeing graphs on the leaf") {
  const int64_t nodes_before = cr::autograd::live_nodes();
  cr::Tensor w = cr::tensor({0.5, -1.0}, cr::float64).requires_grad_();
  std::atomic<int> same_accumulator{0};
  auto work = [&] {
    for (int i = 0; i < 2000; ++i) {
      cr::Tensor a = w * 3.0, b = w + 1.0;  // one accumulator for both: the leaf's, made once
      const auto& ea = a.grad_fn()->next[0].node;
      const auto& eb = b.grad_fn()->next[0].node;
      same_accumulator += ea == eb;
    }
  };
  std::thread t1(work), t2(work);
  t1.join();
  t2.join();
  CHECK(same_accumulator.load() == 4000);
  CHECK(cr::autograd::live_nodes() == nodes_before + 1);  // the accumulator, kept by w
  (w * w).sum().backward();  // the leaf still works afterwards
  CHECK(w.grad().to_vector<double>() == std::vector<double>{1.0, -2.0});
}

TEST_CASE("retain_grad keeps the gradient in a slot the graph shares: idempotent, and safe when the tensor goes first") {
  cr::Tensor x = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  cr::Tensor h = x * 3.0;
  h.retain_grad();
  h.retain_grad();  // a second call adds nothing (the gradient is not counted twice)
  cr::Tensor loss = (h * h).sum();
  loss.backward(cr::Tensor(), true);
  CHECK(h.grad().to_vector<double>() == std::vector<double>{6.0, 12.0});
  h.set_grad(cr::Tensor());
  CHECK_FALSE(h.grad().defined());
  h = cr::Tensor();  // the tensor goes; its node (and the hook) live on in the graph
  loss.backward();  // the hook fills a slot no tensor reads any more
  CHECK(x.grad().to_vector<double>() == std::vector<double>{36.0, 72.0});
}
