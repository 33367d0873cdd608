// Threads for large elementwise loops (kernels::parallel_for): every index covered exactly
// once in aligned pieces (of 64 indices, or of single tasks), more than one thread used when
// asked, nested and concurrent loops, a forked child, OpenBLAS's thread count around
// kernels::SerialBlas sections, and the loops that use it (elementwise ops, in-place ops, the
// SGD momentum step, sums over leading dimensions) giving the same bits on 2 threads as on 1
// and as a plain per-element reference.
#include "helpers.hpp"

#include <cblas.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

namespace K = cr::kernels;

namespace {

// Runs parallel_for over n and checks that the pieces cover [0, n) once, each starting at a
// multiple of 64; returns the ids of the threads that ran pieces.
std::set<std::thread::id> covered_once(int64_t n) {
  std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
  std::mutex m;
  std::set<std::thread::id> ids;
  std::vector<std::pair<int64_t, int64_t>> pieces;
  K::parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
    std::lock_guard lock(m);
    ids.insert(std::this_thread::get_id());
    pieces.emplace_back(begin, end);
  });
  int64_t wrong = 0;
  for (const auto& h : hits) wrong += h.load() != 1;
  CHECK(wrong == 0);
  for (const auto& [begin, end] : pieces) {
    CHECK(begin % 64 == 0);
    CHECK((begin < end || n == 0));
  }
  return ids;
}

std::vector<float> floats(const cr::Tensor& t) { return t.to_vector<float>(); }

}  // namespace

TEST_CASE("parallel_for covers every index once, in pieces that start on multiples of 64") {
  for (int threads : {1, 2, 3}) {
    Threads scope(threads);
    for (int64_t n : {int64_t(0), int64_t(1), int64_t(1000), 2 * K::kParallelGrain - 1, 2 * K::kParallelGrain,
                      5 * K::kParallelGrain + 37}) {
      INFO("threads " << threads << ", n " << n);
      const auto ids = covered_once(n);
      // Below two grains, or on one thread, the caller runs the whole loop.
      if (n > 0 && (n < 2 * K::kParallelGrain || threads == 1)) CHECK(ids == std::set{std::this_thread::get_id()});
      if (n >= 2 * K::kParallelGrain && threads > 1) CHECK(ids.size() == 2u + (threads == 3 && n >= 3 * K::kParallelGrain));
    }
  }
}

TEST_CASE("parallel_for inside a piece, and from two threads at once, runs and covers everything") {
  Threads scope(2);
  const int64_t n = 4 * K::kParallelGrain;
  std::atomic<int64_t> inner_total{0};
  K::parallel_for(n, [&](int64_t begin, int64_t end) {
    K::parallel_for(end - begin, [&](int64_t b, int64_t e) { inner_total += e - b; });  // on this thread
  });
  CHECK(inner_total.load() == n);
  std::thread other([&] {
    for (int r = 0; r < 20; ++r) covered_once(n);
  });
  for (int r = 0; r < 20; ++r) covered_once(n);
  other.join();
}

TEST_CASE("parallel_for with an alignment of 1: pieces of tasks (a convolution's parts of a batch)") {
  Threads scope(2);
  for (int64_t n : {int64_t(2), int64_t(3), int64_t(8)}) {
    CAPTURE(n);
    std::mutex m;
    std::vector<std::pair<int64_t, int64_t>> pieces;
    K::parallel_for(
        n,
        [&](int64_t begin, int64_t end) {
          std::lock_guard lock(m);
          pieces.emplace_back(begin, end);
        },
        K::kParallelGrain, 1);
    std::sort(pieces.begin(), pieces.end());
    REQUIRE(pieces.size() == 2u);  // with the default of 64, 8 tasks were one piece
    CHECK(pieces[0] == std::pair<int64_t, int64_t>(0, (n + 1) / 2));
    CHECK(pieces[1] == std::pair<int64_t, int64_t>((n + 1) / 2, n));
  }
}

TEST_CASE("SerialBlas holds OpenBLAS on one thread and gives back the count asked for: nested, set, concurrent") {
  Threads scope(2);
  {
    const K::SerialBlas outer;
    CHECK(openblas_get_num_threads() == 1);
    CHECK(cr::get_num_threads() == 2);  // the count asked for, which parallel_for splits by
    {
      const K::SerialBlas inner;
      cr::set_num_threads(3);  // takes effect when the last section ends
      CHECK(openblas_get_num_threads() == 1);
      CHECK(cr::get_num_threads() == 3);
    }
    CHECK(openblas_get_num_threads() == 1);  // outer is still running
  }
  CHECK(openblas_get_num_threads() == 3);
  // Two threads entering and leaving sections over each other: restoring "the count before"
  // per section left OpenBLAS on one thread for good.
  cr::set_num_threads(2);
  const auto sections = [] {
    for (int i = 0; i < 2000; ++i) const K::SerialBlas section;
  };
  std::thread other(sections);
  sections();
  other.join();
  CHECK(openblas_get_num_threads() == 2);
  CHECK(cr::get_num_threads() == 2);
}

TEST_CASE("an exception in any piece reaches the caller after every piece has finished; the pool stays usable") {
  // A helper's exception ended the process (std::terminate); the caller's own piece throwing
  // returned while the helper still ran on its stack frame, and left the pool busy for good.
  Threads scope(2);
  const int64_t n = 4 * K::kParallelGrain;
  for (const bool caller_throws : {false, true}) {
    CAPTURE(caller_throws);
    std::atomic<int64_t> done{0};
    const std::thread::id caller = std::this_thread::get_id();
    CHECK_THROWS_WITH(K::parallel_for(n, [&](int64_t begin, int64_t end) {
                        const bool here = std::this_thread::get_id() == caller;
                        if (here == caller_throws) throw std::runtime_error("piece failed");
                        done += end - begin;  // the other piece runs to its end
                      }),
                      "piece failed");
    CHECK(done.load() > 0);
    CHECK(covered_once(n).size() == 2u);  // the helpers serve the next loop
  }
  // through the public API: a make_unary function that throws on a large tensor
  auto f = cr::autograd::make_unary({.name = "picky", .f = [](double x) -> double {
                                       if (x > 0.5) throw std::domain_error("picky: x > 0.5");
                                       return x;
                                     },
                                     .df = [](double) { return 1.0; }});
  CHECK_THROWS_WITH(f(cr::full({n}, 0.75, cr::float64)), "picky: x > 0.5");
  CHECK(values(f(cr::full({n}, 0.25, cr::float64)))[n - 1] == 0.25);
}

TEST_CASE("parallel_for works in a forked child, which starts its own helpers") {
  Threads scope(2);
  covered_once(4 * K::kParallelGrain);  // the parent's helpers exist now
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::atomic<int64_t> total{0};
    std::set<std::thread::id> ids;
    std::mutex m;
    K::parallel_for(4 * K::kParallelGrain, [&](int64_t b, int64_t e) {
      total += e - b;
      std::lock_guard lock(m);
      ids.insert(std::this_thread::get_id());
    });
    ::_exit(total.load() == 4 * K::kParallelGrain && ids.size() == 2 ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("large elementwise, in-place and reduction kernels give the same bits on 2 threads as on 1 and as a reference") {
  const int64_t n = 3 * K::kParallelGrain + 5;
  cr::Generator g(3);
  const cr::Tensor a = cr::randn({n}, cr::float32, &g), b = cr::randn({n}, cr::float32, &g);
  const auto av = floats(a), bv = floats(b);
  auto run = [&](int threads) {
    Threads scope(threads);
    std::vector<std::vector<float>> out;
    out.push_back(floats(cr::exp(a)));               // map, contiguous
    out.push_back(floats(cr::relu(a)));
    out.push_back(floats(a * b));                    // zip, both full
    out.push_back(floats(a + cr::scalar_like(2.5, a)));  // zip, full and one element
    out.push_back(floats(cr::scalar_like(2.5, a) - b));  // zip, one element and full
    cr::Tensor c = a.clone();
    c.mul_(0.75);                                    // in place with a scalar
    out.push_back(floats(c));
    c.mul_(b);                                       // in place with a tensor
    out.push_back(floats(c));
    return out;
  };
  const auto one = run(1), two = run(2);
  REQUIRE(one.size() == two.size());
  for (size_t k = 0; k < one.size(); ++k) {
    INFO("result " << k);
    CHECK(one[k] == two[k]);
  }
  int64_t wrong = 0;
  for (size_t i = 0; i < static_cast<size_t>(n); ++i) {
    const float c = av[i] * 0.75f;
    wrong += two[0][i] != std::exp(av[i]) || two[1][i] != (av[i] > 0 ? av[i] : 0.0f) || two[2][i] != av[i] * bv[i] ||
             two[3][i] != av[i] + 2.5f || two[4][i] != 2.5f - bv[i] || two[5][i] != c || two[6][i] != c * bv[i];
  }
  CHECK(wrong == 0);
}

TEST_CASE("a sum over leading dimensions equals the per-column double sum, on any thread count and layout") {
  cr::Generator g(5);
  const cr::Tensor x = cr::randn({700, 600}, cr::float32, &g);  // 420,000 elements: split over threads
  const auto xv = floats(x);
  std::vector<float> ref(600);
  for (size_t c = 0; c < 600; ++c) {
    double acc = 0;
    for (size_t r = 0; r < 700; ++r) acc += xv[r * 600 + c];
    ref[c] = static_cast<float>(acc);
  }
  for (int threads : {1, 2}) {
    Threads scope(threads);
    INFO("threads " << threads);
    CHECK(floats(cr::sum(x, 0)) == ref);
    CHECK(floats(cr::sum(x.t().contiguous().t(), 0)) == ref);  // strided: the general loop
    CHECK(floats(cr::sum(x.reshape({7, 100, 600}), {0, 1})) == ref);
  }
}

TEST_CASE("SGD's momentum step on a large parameter: the same bits on 2 threads as on 1 and as the written-out update") {
  const int64_t n = 3 * K::kParallelGrain + 11;
  cr::Generator g(9);
  const cr::Tensor start = cr::randn({n}, cr::float32, &g), target = cr::randn({n}, cr::float32, &g);
  auto train = [&](int threads, int steps) {
    Threads scope(threads);
    cr::Tensor p = start.clone().requires_grad_();
    cr::optim::SGD sgd({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.25});
    for (int s = 0; s < steps; ++s) {
      sgd.zero_grad();
      cr::sum((p - target) * (p - target)).backward();  // grad 2 (p - target)
      sgd.step();
    }
    return floats(p);
  };
  const auto two = train(2, 3);
  CHECK(train(1, 3) == two);
  // The update written out in float from the start: the first step takes buf = g and
  // p += buf * -lr (add_), the others buf = buf * m + g * (1 - dampening), p = p + buf * -lr.
  const auto t = floats(target);
  std::vector<float> p = floats(start), buf(p.size());
  for (int s = 0; s < 3; ++s)
    for (size_t i = 0; i < p.size(); ++i) {
      const float g = 2.0f * (p[i] - t[i]);
      buf[i] = s == 0 ? g : buf[i] * 0.9f + g * 0.75f;
      p[i] = p[i] + buf[i] * -0.1f;
    }
  int64_t wrong = 0;
  for (size_t i = 0; i < p.size(); ++i) wrong += p[i] != two[i];
  CHECK(wrong == 0);
}

TEST_CASE("add_ on a large tensor (an optimizer's update): y + x * alpha in the element type, the same bits on 1 and 2 threads") {
  const int64_t n = 3 * K::kParallelGrain + 11;
  for (cr::Dtype d : {cr::float32, cr::float64}) {
    cr::manual_seed(11);
    const cr::Tensor x = cr::randn({n}, d), y0 = cr::randn({n}, d);
    auto update = [&](int threads) {
      Threads scope(threads);
      cr::Tensor y = y0.clone();
      const uint32_t v0 = y.version();
      y.add_(x, 0.37);
      CHECK(y.version() == v0 + 1);
      return y.to_vector<double>();
    };
    const auto one = update(1), two = update(2);
    CHECK(one == two);
    const auto xs = x.to_vector<double>(), ys = y0.to_vector<double>();
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i)
      wrong += d == cr::float32 ? static_cast<float>(ys[i]) + static_cast<float>(xs[i]) * 0.37f != static_cast<float>(two[i])
                                : ys[i] + xs[i] * 0.37 != two[i];
    CHECK(wrong == 0);
    cr::Tensor z = y0.clone();
    z.add_(z, 1.0);  // aliasing: the elementwise loop doubles it exactly
    CHECK(z.to_vector<double>() == (y0 * 2.0).to_vector<double>());
  }
}
