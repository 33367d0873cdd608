// Reliability: every bad input is a typed Error naming op and shapes (one table); numerical
// stability at extremes; checkpoints survive interrupted saves, truncation and bit flips;
// graphs and memory stay flat over long training, also when exceptions fly mid-graph;
// threads train independently and bit-identically.
#include "helpers.hpp"

#include <malloc.h>
#include <zlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <algorithm>
#include <thread>

namespace F = cr::nn::functional;
namespace fs = std::filesystem;

TEST_CASE("bad input: a table of misuses, each a typed Error naming the op and the shapes") {
  const cr::Tensor a = cr::zeros({2, 3}), b = cr::zeros({4}), i64 = cr::zeros({2}, cr::int64);
  cr::Tensor leaf = cr::ones({2}, cr::float64).requires_grad_();
  struct Row {
    const char* what;
    std::function<void()> body;
    std::initializer_list<std::string> fragments;
  };
  const std::vector<Row> table = {
      {"add shapes", [&] { (void)(a + b); }, {"add", "[2, 3]", "[4]"}},
      {"sub shapes", [&] { (void)(a - b); }, {"sub", "[2, 3]", "[4]"}},
      {"mul shapes", [&] { (void)(a * b); }, {"mul", "[2, 3]", "[4]"}},
      {"div shapes", [&] { (void)(a / b); }, {"div", "[2, 3]", "[4]"}},
      {"pow shapes", [&] { (void)cr::pow(a, b); }, {"pow", "[2, 3]", "[4]"}},
      {"maximum shapes", [&] { (void)cr::maximum(a, b); }, {"maximum", "[2, 3]", "[4]"}},
      {"where shapes", [&] { (void)cr::where(a, a, b); }, {"where", "[2, 3]", "[4]"}},
      {"matmul inner", [&] { (void)cr::matmul(a, cr::zeros({4, 2})); }, {"matmul", "[2, 3]", "[4, 2]"}},
      {"matmul dtypes", [&] { (void)cr::matmul(a, cr::zeros({3, 2}, cr::float64)); }, {"matmul", "float32", "float64"}},
      {"cat shapes", [&] { (void)cr::cat({a, b}); }, {"cat", "[2, 3]", "[4]"}},  // dtypes promote, as in PyTorch
      {"int64 requires grad", [&] { cr::Tensor(i64).requires_grad_(); }, {"requires_grad_", "int64", "[2]"}},
      {"backward on non-scalar", [&] { (leaf * 2.0).backward(); }, {"backward", "[2] float64"}},
      {"backward twice", [&] { cr::Tensor y = (leaf * leaf).sum(); y.backward(); y.backward(); }, {"second time", "retain_graph"}},
      {"saved tensor modified", [&] {
         cr::Tensor h = leaf * 1.0;
         cr::Tensor y = (h * h).sum();  // mul saves h
         h.add_(1.0);
         y.backward();
       }, {"'mul'", "in-place", "version"}},
      {"gather index range", [&] { (void)cr::gather(a, 1, cr::tensor({3, 0}, {1, 2}, cr::int64)); }, {"gather", "index 3", "[2, 3]"}},
      {"index_select range", [&] { (void)cr::index_select(a, 0, cr::tensor({2}, cr::int64)); }, {"index_select", "index 2"}},
      {"cross_entropy target", [&] { (void)F::cross_entropy(a, cr::tensor({0, 5}, cr::int64)); }, {"cross_entropy", "target 5", "[2, 3]"}},
      {"NaN with anomaly mode", [&] {
         cr::autograd::set_detect_anomaly(true);
         struct Off { ~Off() { cr::autograd::set_detect_anomaly(false); } } off;
         cr::Tensor z = cr::zeros({2}, cr::float64).requires_grad_();
         cr::sqrt(z).sum().backward();
       }, {"anomaly", "'sqrt'", "[2]"}},
      {"optimizer lr", [&] { cr::optim::SGD s({leaf}, {.lr = -1}); }, {"SGD", "-1"}},
      {"optimizer betas", [&] { cr::optim::Adam s({leaf}, {.betas = {1.5, 0.9}}); }, {"Adam", "1.5"}},
      {"module options", [&] { cr::nn::Linear l(0, 2); }, {"Linear", "positive"}},
      {"module input", [&] { cr::nn::Linear l(3, 2); (void)l(cr::zeros({2, 4})); }, {"Linear", "[2, 4]"}},
      {"zero-size max", [&] { (void)cr::max(cr::zeros({0, 3})); }, {"max", "empty", "[0, 3]"}},
      {"zero-size reshape", [&] { (void)cr::zeros({0, 3}).reshape({-1, 0}); }, {"reshape", "[0, 3]"}},
      {"item of many", [&] { (void)a.item<float>(); }, {"item", "[2, 3]"}},
      {"view of non-contiguous", [&] { (void)a.t().view({6}); }, {"view", "[3, 2]"}},
  };
  for (const Row& row : table) {
    CAPTURE(row.what);
    check_error(row.body, row.fragments);
  }
  // and where zero-size tensors are legal, they work
  CHECK((cr::zeros({0, 3}) + cr::ones({3})).shape() == cr::Shape{0, 3});
  CHECK(cr::matmul(cr::zeros({0, 3}), cr::zeros({3, 2})).shape() == cr::Shape{0, 2});
  CHECK(cr::sum(cr::zeros({0})).item<float>() == 0);
  CHECK(cr::softmax(cr::zeros({0, 3}), 1).shape() == cr::Shape{0, 3});
}

TEST_CASE("an Error names the function the user called, not the one it calls") {
  // amax and logsumexp named "max"; zeros, ones, full, rand, randn, randint named "empty"; eye
  // named "zeros", and narrow "size"
  const auto caller = [](const std::function<void()>& body) {
    try {
      body();
    } catch (const cr::Error& e) {
      const std::string what = e.what();
      return what.substr(0, what.find(':'));
    }
    return std::string("no Error");
  };
  const cr::Tensor x = cr::ones({2, 3}), none = cr::empty({0});
  CHECK(caller([&] { (void)cr::amax(x, cr::Shape{1, 1}); }) == "amax");
  CHECK(caller([&] { (void)cr::amin(x, cr::Shape{0, -2}); }) == "amin");
  CHECK(caller([&] { (void)cr::amax(none, cr::Shape{0}); }) == "amax");
  CHECK(caller([&] { (void)cr::max(none); }) == "max");
  CHECK(caller([&] { (void)cr::min(none); }) == "min");
  CHECK(caller([&] { (void)cr::logsumexp(x, cr::Shape{1, 1}); }) == "logsumexp");
  CHECK(caller([&] { (void)cr::logsumexp(x, 2); }) == "logsumexp");
  CHECK(caller([&] { (void)cr::empty({-1, 2}); }) == "empty");
  CHECK(caller([&] { (void)cr::zeros({-1, 2}); }) == "zeros");
  CHECK(caller([&] { (void)cr::ones({2, -3}); }) == "ones");
  CHECK(caller([&] { (void)cr::full({-2}, 1.0); }) == "full");
  CHECK(caller([&] { (void)cr::rand({-2}); }) == "rand");
  CHECK(caller([&] { (void)cr::randn({-2}); }) == "randn");
  CHECK(caller([&] { (void)cr::randint(0, 3, {-2}); }) == "randint");
  CHECK(caller([&] { (void)cr::eye(-1); }) == "eye");
  CHECK(caller([&] { (void)x.narrow(2, 0, 1); }) == "narrow");
  check_error([&] { (void)cr::zeros({-1, 2}); }, {"zeros", "negative", "[-1, 2]"});
}

TEST_CASE("numerical stability at the extremes, float32 and float64") {
  const std::vector<double> xs = {-1e4, -710, -88, -20, -1, -1e-8, 0, 1e-8, 1, 20, 88, 710, 1e4};
  for (auto dtype : {cr::float32, cr::float64}) {
    CAPTURE(dtype);
    cr::Tensor x = cr::tensor(std::vector<double>(xs), {13}, dtype).requires_grad_();
    const cr::Tensor y = cr::full({13}, 1.0, dtype);
    const std::vector<std::pair<const char*, std::function<cr::Tensor()>>> fns = {
        {"sigmoid", [&] { return cr::sigmoid(x); }},
        {"softplus", [&] { return F::softplus(x); }},
        {"log_sigmoid", [&] { return F::log_sigmoid(x); }},
        {"logsumexp", [&] { return cr::logsumexp(x, 0); }},
        {"log_softmax", [&] { return cr::log_softmax(x, 0); }},
        {"bce_with_logits", [&] { return F::binary_cross_entropy_with_logits(x, y, F::Reduction::none); }},
        {"cross_entropy", [&] { return F::cross_entropy(x.reshape({1, 13}), cr::tensor({3}, cr::int64)); }},
    };
    for (const auto& entry : fns) {
      const auto& name = entry.first;  // (not a structured binding: CAPTURE captures it)
      const auto& fn = entry.second;
      CAPTURE(name);
      x.set_grad({});
      const cr::Tensor out = fn();
      for (double v : values(out)) CHECK(std::isfinite(v));
      cr::sum(out).backward();
      for (double g : values(x.grad())) CHECK(std::isfinite(g));
    }
  }
  CHECK(cr::logsumexp(cr::tensor({1000.0, 1000.0}, cr::float64), 0).item<double>() == 1000 + std::numbers::ln2);
}

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("chainrule-rel-{}", ::getpid());
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& n) const { return (path / n).string(); }
};

std::string slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

cr::NamedTensors sample_state(double shift) {
  cr::Generator g(1);
  return {{"w", cr::randn({16, 8}, cr::float64, &g) + shift}, {"b", cr::randn({8}, cr::float32, &g) + shift},
          {"step", cr::tensor(3.0, cr::int64)}};
}

}  // namespace

TEST_CASE("checkpoints: a save interrupted at any of 100 byte offsets leaves the previous file intact") {
  TempDir dir;
  const std::string path = dir.file("ckpt");
  cr::save_tensors(sample_state(0), path);
  const std::string before = slurp(path);
  const int64_t size = static_cast<int64_t>(cr::encode_tensors(sample_state(1)).size());
  cr::Generator g(9);
  for (int k = 0; k < 100; ++k) {
    const int64_t offset = g.integer(0, size);
    cr::detail::inject_save_failure_after(offset);
    CHECK_THROWS_AS(cr::save_tensors(sample_state(1), path), cr::CheckpointError);
    REQUIRE(slurp(path) == before);  // bit-identical, and it loads
    const auto loaded = cr::load_tensors(path);
    CHECK(values(loaded[0].second) == values(sample_state(0)[0].second));
  }
  // a real crash: a child killed while saving in a loop
  for (int k = 0; k < 3; ++k) {
    const pid_t child = ::fork();
    if (child == 0) {
      for (;;) cr::save_tensors(sample_state(k + 2.0), path);
    }
    ::usleep(2000 + 3000 * k);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    CHECK(cr::load_tensors(path).size() == 3);  // whichever complete version was last renamed in
  }
}

TEST_CASE("checkpoints: a zero-size tensor with huge other dimensions is rejected (a fuzzer find)") {
  std::string bytes = cr::encode_tensors({{"t", cr::zeros({0, 2, 2}, cr::float64)}});
  // patch dims 1 and 2 to 2^40 (after magic, version, size, count, name length, "t", dtype, rank, dim 0):
  // 0 elements, but strides of 2^80
  const int64_t huge = int64_t(1) << 40;
  const size_t dim1 = 8 + 4 + 8 + 8 + 4 + 1 + 1 + 1 + 8;
  std::memcpy(bytes.data() + dim1, &huge, 8);
  std::memcpy(bytes.data() + dim1 + 8, &huge, 8);
  const uint32_t crc = static_cast<uint32_t>(
      ::crc32(0, reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<unsigned>(bytes.size() - 4)));
  std::memcpy(bytes.data() + bytes.size() - 4, &crc, 4);
  check_error([&] { (void)cr::decode_tensors(bytes); }, {"checkpoint", "implausible shape"});
}

TEST_CASE("checkpoints: every truncation and 10,000 random bit flips give CheckpointError, never a crash") {
  const std::string good = cr::encode_tensors(sample_state(0));
  for (size_t n = 0; n < good.size(); ++n)
    CHECK_THROWS_AS((void)cr::decode_tensors(good.substr(0, n)), cr::CheckpointError);
  cr::Generator g(5);
  int64_t typed = 0;
  for (int k = 0; k < 10000; ++k) {
    std::string bad = good;
    const int64_t bit = g.integer(0, static_cast<int64_t>(bad.size()) * 8);
    bad[bit / 8] = static_cast<char>(bad[bit / 8] ^ (1 << (bit % 8)));
    try {
      (void)cr::decode_tensors(bad);
    } catch (const cr::CheckpointError&) {
      ++typed;
    }
  }
  CHECK(typed == 10000);
}

namespace {
double train_steps(int steps, uint64_t seed) {
  cr::Generator g(seed);
  const cr::Tensor x = cr::randn({32, 4}, cr::float64, &g), y = cr::randn({32, 1}, cr::float64, &g);
  cr::nn::MLP mlp({4, 16, 1}, {.activation = std::string("tanh"), .dtype = cr::float64, .generator = &g});
  cr::optim::Adam adam(mlp.parameters(), {.lr = 0.01});
  double loss = 0;
  for (int i = 0; i < steps; ++i) {
    adam.zero_grad();
    const cr::Tensor l = F::mse_loss(mlp(x), y);
    l.backward();
    adam.step();
    loss = l.item<double>();
  }
  return loss;
}
}  // namespace

TEST_CASE("threads: two models trained at once equal the same two trained one after the other, bit for bit") {
  const double a = train_steps(300, 1), b = train_steps(300, 2);
  double ta = 0, tb = 0;
  std::thread t1([&] { ta = train_steps(300, 1); });
  std::thread t2([&] { tb = train_steps(300, 2); });
  t1.join();
  t2.join();
  CHECK(ta == a);
  CHECK(tb == b);
  bool grad_mode_other = false;
  {
    cr::NoGradGuard off;
    std::thread t([&] { grad_mode_other = cr::grad_mode_enabled(); });
    t.join();
  }
  CHECK(grad_mode_other);
}

TEST_CASE("threads: the global generator is shared in turns, each fill whole") {
  // Two threads drawing from the global generator at once raced on the Mersenne Twister's
  // state (undefined behaviour; repeated or corrupted draws). Each fill now holds its lock, so
  // the fills of both threads, together, are the serial stream's fills in some order.
  constexpr int kFills = 200;
  constexpr int64_t kSize = 500;  // even: Box-Muller's spare value does not cross fills
  cr::manual_seed(42);
  std::vector<std::vector<double>> serial;
  for (int i = 0; i < 2 * kFills; ++i) serial.push_back(values(cr::randn({kSize}, cr::float64)));
  cr::manual_seed(42);
  std::vector<std::vector<double>> fills[2];
  auto draw = [&](int t) {
    for (int i = 0; i < kFills; ++i) fills[t].push_back(values(cr::randn({kSize}, cr::float64)));
  };
  std::thread t0(draw, 0), t1(draw, 1);
  t0.join();
  t1.join();
  std::vector<std::vector<double>> together = fills[0];
  together.insert(together.end(), fills[1].begin(), fills[1].end());
  std::sort(together.begin(), together.end());
  std::sort(serial.begin(), serial.end());
  CHECK(together == serial);
  cr::manual_seed(0x5eed);
}

TEST_CASE("no leaks: node count and heap stay flat over 10,000 training steps; exceptions mid-graph leak nothing") {
  const int64_t before = cr::autograd::live_nodes();
  {
    cr::Generator g(3);
    const cr::Tensor x = cr::randn({16, 4}, cr::float64, &g), y = cr::randn({16, 1}, cr::float64, &g);
    cr::nn::MLP mlp({4, 8, 1}, {.activation = std::string("tanh"), .dtype = cr::float64, .generator = &g});
    cr::optim::SGD sgd(mlp.parameters(), {.lr = 0.01, .momentum = 0.9});
    [[maybe_unused]] size_t heap_at_warmup = 0;  // read only without ASan
    int64_t max_nodes = 0;
    for (int step = 0; step < 10000; ++step) {
      sgd.zero_grad();
      F::mse_loss(mlp(x), y).backward();
      sgd.step();
      max_nodes = std::max(max_nodes, cr::autograd::live_nodes() - before);
      if (step == 1000) heap_at_warmup = mallinfo2().uordblks;
    }
    // every graph is gone once its step ends: what stays is each parameter's accumulator
    CHECK(max_nodes == static_cast<int64_t>(mlp.parameters().size()));
#if !defined(__SANITIZE_ADDRESS__)
    const double grown = static_cast<double>(mallinfo2().uordblks) - static_cast<double>(heap_at_warmup);
    CHECK(grown < 64 * 1024);  // flat: no per-step growth
#endif
  }
  {
    cr::Tensor w = cr::ones({3}, cr::float64).requires_grad_();
    try {  // mid-forward: a shape error after part of a graph was built
      cr::Tensor h = cr::tanh(w * 2.0);
      (void)(h + cr::zeros({4}, cr::float64));
    } catch (const cr::Error&) {
    }
    try {  // mid-backward: a version error thrown inside the traversal
      cr::Tensor h = w * 1.0;
      cr::Tensor loss = (cr::exp(h) + cr::sin(h)).sum();
      h.mul_(2.0);
      loss.backward();
    } catch (const cr::Error&) {
    }
    try {  // mid-backward with create_graph
      cr::Tensor loss = cr::sum(cr::pow(w, 3));
      auto g1 = cr::autograd::grad({loss}, {w}, {}, true, true);
      cr::autograd::set_detect_anomaly(true);
      (cr::sum(cr::sqrt(g1[0] - g1[0]))).backward();
    } catch (const cr::Error&) {
    }
    cr::autograd::set_detect_anomaly(false);
  }
  CHECK(cr::autograd::live_nodes() == before);
}
