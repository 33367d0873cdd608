// Checkpoints: bit-identical round trips of modules and optimizers, resuming training equals
// not stopping, and every kind of bad file gives a CheckpointError and leaves the model as it was.
#include "helpers.hpp"

#include <filesystem>
#include <fstream>

#include <sys/stat.h>

namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / fmt::format("chainrule-test-{}", ::getpid());
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
void write_file(const std::string& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary);
  out << bytes;
}

std::vector<std::vector<double>> snapshot(const cr::nn::Module& m) {
  std::vector<std::vector<double>> out;
  for (const auto& p : m.parameters()) out.push_back(values(p));
  return out;
}

// A small regression problem and one training step.
struct Problem {
  cr::Tensor x, y;
  Problem() {
    cr::Generator g(3);
    x = cr::randn({16, 3}, cr::float64, &g);
    y = cr::sin(cr::sum(x, 1, true));
  }
  void step(cr::nn::Module& m, cr::optim::Optimizer& o) const {
    o.zero_grad();
    cr::nn::functional::mse_loss(m(x), y).backward();
    o.step();
  }
};

std::unique_ptr<cr::nn::MLP> make_model(uint64_t seed) {
  cr::Generator g(seed);
  return std::make_unique<cr::nn::MLP>(std::vector<int64_t>{3, 8, 1},
                                       cr::nn::MLPOptions{.activation = std::string("tanh"), .dtype = cr::float64,
                                                          .generator = &g});
}

}  // namespace

TEST_CASE("module and optimizer round trips are bit-identical") {
  TempDir dir;
  auto model = make_model(1);
  cr::optim::Adam adam(model->parameters(), {.lr = 0.01});
  Problem pb;
  for (int i = 0; i < 3; ++i) pb.step(*model, adam);
  cr::nn::save(*model, dir.file("m.ckpt"));
  cr::optim::save(adam, dir.file("o.ckpt"));
  auto other = make_model(2);
  CHECK(snapshot(*other) != snapshot(*model));
  cr::nn::load(*other, dir.file("m.ckpt"));
  CHECK(snapshot(*other) == snapshot(*model));
  cr::optim::Adam adam2(other->parameters(), {.lr = 0.5});
  cr::optim::load(adam2, dir.file("o.ckpt"));
  CHECK(adam2.lr() == 0.01);
  const auto a = adam.state_dict(), b = adam2.state_dict();
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].first == b[i].first);
    CHECK(values(a[i].second) == values(b[i].second));
  }
  // no temporary files left behind
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file();
  CHECK(files == 2);
}

TEST_CASE("100 steps, save, load into a fresh model, 100 more equals 200 uninterrupted, bit for bit") {
  TempDir dir;
  Problem pb;
  auto straight = make_model(7);
  cr::optim::SGD sgd_straight(straight->parameters(), {.lr = 0.05, .momentum = 0.9, .nesterov = true});
  for (int i = 0; i < 200; ++i) pb.step(*straight, sgd_straight);

  for (int kind = 0; kind < 2; ++kind) {
    CAPTURE(kind);
    auto first = make_model(7);
    std::unique_ptr<cr::optim::Optimizer> opt1, opt2;
    if (kind == 0)
      opt1 = std::make_unique<cr::optim::SGD>(first->parameters(), cr::optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
    else
      opt1 = std::make_unique<cr::optim::Adam>(first->parameters(), cr::optim::AdamOptions{.lr = 0.01});
    for (int i = 0; i < 100; ++i) pb.step(*first, *opt1);
    cr::nn::save(*first, dir.file("model"));
    cr::optim::save(*opt1, dir.file("optim"));
    for (int i = 0; i < 100; ++i) pb.step(*first, *opt1);

    auto resumed = make_model(99);
    if (kind == 0)
      opt2 = std::make_unique<cr::optim::SGD>(resumed->parameters(), cr::optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .nesterov = true});
    else
      opt2 = std::make_unique<cr::optim::Adam>(resumed->parameters(), cr::optim::AdamOptions{.lr = 0.01});
    cr::nn::load(*resumed, dir.file("model"));
    cr::optim::load(*opt2, dir.file("optim"));
    for (int i = 0; i < 100; ++i) pb.step(*resumed, *opt2);
    CHECK(snapshot(*resumed) == snapshot(*first));
    if (kind == 0) CHECK(snapshot(*resumed) == snapshot(*straight));
  }
}

TEST_CASE("bad checkpoints: typed errors, and the model is left untouched") {
  TempDir dir;
  auto model = make_model(1);
  cr::nn::save(*model, dir.file("good"));
  const std::string good = read_file(dir.file("good"));
  auto target = make_model(5);
  const auto before = snapshot(*target);
  auto expect_rejected = [&](const std::string& bytes, std::initializer_list<std::string> fragments) {
    write_file(dir.file("bad"), bytes);
    try {
      cr::nn::load(*target, dir.file("bad"));
      FAIL("expected CheckpointError");
    } catch (const cr::CheckpointError& e) {
      const std::string what = e.what();
      for (const auto& f : fragments) {
        INFO(what);
        CHECK(what.find(f) != std::string::npos);
      }
    }
    CHECK(snapshot(*target) == before);
  };
  SUBCASE("truncated at many lengths") {
    for (size_t n : {size_t(0), size_t(5), size_t(12), size_t(20), good.size() / 2, good.size() - 1})
      expect_rejected(good.substr(0, n), {"checkpoint"});
  }
  SUBCASE("flipped bytes anywhere") {
    for (size_t pos = 0; pos < good.size(); pos += 7) {
      std::string bad = good;
      bad[pos] = static_cast<char>(bad[pos] ^ 0x10);
      expect_rejected(bad, {"checkpoint"});
    }
  }
  SUBCASE("wrong version") {
    std::string bad = good;
    bad[8] = 7;
    expect_rejected(bad, {"version 7", "reads version 1"});
  }
  SUBCASE("not a checkpoint") { expect_rejected("hello, world, this is text", {"not a chainrule checkpoint"}); }
  SUBCASE("missing, unexpected and mis-shaped keys are all listed at once") {
    cr::NamedTensors state = model->named_parameters();
    state.erase(state.begin());                                        // missing layers.0.weight
    state.emplace_back("extra.weight", cr::zeros({2}, cr::float64));  // unexpected
    state[0].second = cr::zeros({3}, cr::float64);                     // layers.0.bias has shape [8]
    cr::save_tensors(state, dir.file("keys"));
    expect_rejected(read_file(dir.file("keys")), {"3 problems", "missing key 'layers.0.weight'",
                                                  "unexpected key 'extra.weight'", "shape mismatch for 'layers.0.bias'"});
  }
  SUBCASE("missing file") {
    CHECK_THROWS_AS(cr::nn::load(*target, dir.file("nope")), cr::CheckpointError);
    CHECK(snapshot(*target) == before);
  }
}

TEST_CASE("a failed save leaves the previous file intact") {
  TempDir dir;
  auto model = make_model(1);
  cr::nn::save(*model, dir.file("ckpt"));
  const std::string before = read_file(dir.file("ckpt"));
  CHECK_THROWS_AS(cr::nn::save(*model, dir.file("no-such-dir/ckpt")), cr::CheckpointError);
  CHECK(read_file(dir.file("ckpt")) == before);
}

TEST_CASE("an optimizer's state is checked for what that optimizer can use") {
  // Each of these loaded silently before: an SGD state into Adam (its step count without its
  // moments: the bias correction of a later step on zero moments), a NaN or negative learning
  // rate, a negative step count (Adam's 1 - beta^0 = 0 made every parameter NaN).
  Problem pb;
  auto model = make_model(1);
  cr::optim::SGD sgd(model->parameters(), {.lr = 0.05, .momentum = 0.9});
  pb.step(*model, sgd);
  const cr::NamedTensors sgd_state = sgd.state_dict();
  cr::optim::Adam adam(model->parameters(), {.lr = 0.01});
  pb.step(*model, adam);
  const cr::NamedTensors adam_state = adam.state_dict();
  auto expect_rejected = [&](cr::optim::Optimizer& o, const cr::NamedTensors& state,
                             std::initializer_list<std::string> fragments) {
    const cr::NamedTensors before = o.state_dict();
    try {
      o.load_state_dict(state);
      FAIL("expected CheckpointError");
    } catch (const cr::CheckpointError& e) {
      const std::string what = e.what();
      INFO(what);
      for (const auto& f : fragments) CHECK(what.find(f) != std::string::npos);
    }
    const cr::NamedTensors after = o.state_dict();  // nothing changed
    REQUIRE(after.size() == before.size());
    for (size_t i = 0; i < after.size(); ++i) CHECK(values(after[i].second) == values(before[i].second));
  };
  expect_rejected(adam, sgd_state,
                  {"Adam keeps no buffer 'momentum_buffer'", "exp_avg, exp_avg_sq, max_exp_avg_sq", "state.0.momentum_buffer"});
  expect_rejected(sgd, adam_state, {"SGD keeps no buffer 'exp_avg'", "unexpected key 'state.3.exp_avg_sq'"});
  auto with = [](cr::NamedTensors state, const std::string& key, cr::Tensor value) {
    for (auto& [k, t] : state)
      if (k == key) t = value;
    return state;
  };
  expect_rejected(adam, with(adam_state, "state.0.step", cr::tensor(-1.0, cr::int64)), {"'state.0.step'", "whole number >= 0"});
  expect_rejected(adam, with(adam_state, "state.0.step", cr::tensor(1.5, cr::float64)), {"'state.0.step'"});
  expect_rejected(adam, with(adam_state, "state.0.step", cr::ones({3}, cr::int64)), {"'state.0.step'", "[3] int64"});
  expect_rejected(adam, with(adam_state, "group.0.lr", cr::tensor(NAN, cr::float64)), {"'group.0.lr'", "finite number >= 0"});
  expect_rejected(adam, with(adam_state, "group.0.lr", cr::tensor(-0.1, cr::float64)), {"1 problems", "'group.0.lr'"});
  // what state_dict wrote still loads, into a fresh optimizer of the same kind
  cr::optim::Adam adam2(model->parameters(), {.lr = 0.5});
  adam2.load_state_dict(adam_state);
  CHECK(adam2.lr() == 0.01);
  // and set_lr refuses NaN as the constructors do
  CHECK_THROWS_WITH_AS(adam2.set_lr(NAN), doctest::Contains("invalid learning rate"), cr::Error);
  CHECK(adam2.lr() == 0.01);
}

TEST_CASE("checkpoint files: a new one has the permissions of any new file, a replaced one keeps its own") {
  TempDir dir;
  const cr::NamedTensors state = {{"a", cr::ones({2})}};
  const ::mode_t mask = ::umask(022);  // a known umask for the test, restored below
  cr::save_tensors(state, dir.file("new"));
  struct stat st {};
  REQUIRE(::stat(dir.file("new").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);  // was 0600 (mkstemp's private temporary file, renamed)
  REQUIRE(::chmod(dir.file("new").c_str(), 0640) == 0);
  cr::save_tensors(state, dir.file("new"));
  REQUIRE(::stat(dir.file("new").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  ::umask(mask);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir.path)) files += e.is_regular_file();
  CHECK(files == 1);  // no temporary file left behind
}

TEST_CASE("checkpoint misuse: a directory to load, an undefined tensor to save") {
  TempDir dir;
  // a directory: std::ios_base::failure from the stream before, not a CheckpointError
  CHECK_THROWS_WITH_AS(cr::load_tensors(dir.path.string()), doctest::Contains("Is a directory"), cr::CheckpointError);
  CHECK_THROWS_WITH_AS(cr::save_tensors({{"w", cr::Tensor()}}, dir.file("u")),
                       doctest::Contains("'w' is undefined"), cr::Error);
  CHECK_FALSE(fs::exists(dir.file("u")));
}
