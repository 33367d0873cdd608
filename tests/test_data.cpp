// Data: the IDX reader on files written here (gzip and plain, truncated, corrupt), the
// DataLoader (batching, seeded shuffling, drop_last, transform), the synthetic problems,
// and the plotting module's SVG parsed back as XML.
#include "../examples/common/plot.hpp"
#include "helpers.hpp"

#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <set>

namespace D = cr::nn::data;
namespace fs = std::filesystem;

namespace {

std::string idx_bytes(const std::vector<int>& dims, const std::vector<unsigned char>& data) {
  std::string s = {0, 0, 8, static_cast<char>(dims.size())};
  for (int d : dims) s += std::string{char(d >> 24), char(d >> 16), char(d >> 8), char(d)};
  s.append(data.begin(), data.end());
  return s;
}

std::string write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
  return path;
}

std::string write_plain(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

struct Dir {
  fs::path path = fs::temp_directory_path() / fmt::format("chainrule-data-{}", ::getpid());
  Dir() { fs::create_directories(path); }
  ~Dir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// A small XML well-formedness check: balanced tags, quoted attributes, nothing after the root.
bool well_formed_xml(const std::string& s, std::string& why) {
  std::vector<std::string> stack;
  size_t i = 0;
  bool root_closed = false;
  while ((i = s.find('<', i)) != std::string::npos) {
    const size_t end = s.find('>', i);
    if (end == std::string::npos) return why = "unterminated tag", false;
    const std::string tag = s.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.starts_with("?")) continue;
    if (root_closed) return why = "content after the root element", false;
    size_t quotes = 0;
    for (char c : tag) quotes += c == '"';
    if (quotes % 2) return why = "unbalanced quotes in <" + tag + ">", false;
    if (tag.starts_with("/")) {
      if (stack.empty() || stack.back() != tag.substr(1)) return why = "mismatched </" + tag.substr(1) + ">", false;
      stack.pop_back();
      root_closed = stack.empty();
    } else {
      const std::string name = tag.substr(0, tag.find_first_of(" \n/"));
      if (!tag.ends_with("/")) stack.push_back(name);
    }
  }
  if (!stack.empty()) return why = "unclosed <" + stack.back() + ">", false;
  return true;
}

}  // namespace

TEST_CASE("read_idx: images and labels, gzip or plain") {
  Dir dir;
  std::vector<unsigned char> pixels;
  for (int i = 0; i < 2 * 3 * 2; ++i) pixels.push_back(static_cast<unsigned char>(i * 20));
  const cr::Tensor images = D::read_idx(write_gz(dir / "img.gz", idx_bytes({2, 3, 2}, pixels)), cr::float32);
  CHECK(images.shape() == cr::Shape{2, 3, 2});
  CHECK(values(images)[11] == 220);
  const cr::Tensor labels = D::read_idx(write_plain(dir / "lbl", idx_bytes({3}, {7, 0, 9})));
  CHECK(labels.dtype() == cr::int64);
  CHECK(labels.to_vector<int64_t>() == std::vector<int64_t>{7, 0, 9});
}

TEST_CASE("read_idx: missing, truncated, corrupt and wrong files give errors naming the file") {
  Dir dir;
  const std::string good = idx_bytes({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  check_error([&] { (void)D::read_idx(dir / "nope.gz"); }, {"read_idx: '", "nope.gz' does not exist.", "dataset-fashion-mnist"});
  for (size_t cut : {size_t(2), size_t(6), good.size() - 1}) {
    CAPTURE(cut);
    check_error([&] { (void)D::read_idx(write_gz(dir / "t.gz", good.substr(0, cut))); }, {"t.gz' is truncated"});
  }
  check_error([&] { (void)D::read_idx(write_gz(dir / "x.gz", good + "extra")); }, {"x.gz", "more than"});
  check_error([&] { (void)D::read_idx(write_gz(dir / "m.gz", "\x01\x02\x03\x04" + good.substr(4))); }, {"m.gz", "not an IDX"});
  // a gzip stream with a damaged body
  write_gz(dir / "c.gz", good + std::string(2000, 'z'));
  std::string bytes;
  {
    std::ifstream in(dir / "c.gz", std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  for (size_t k = 12; k < bytes.size() - 8; ++k) bytes[k] = static_cast<char>(bytes[k] ^ 0x5a);
  write_plain(dir / "c.gz", bytes);
  CHECK_THROWS_AS((void)D::read_idx(dir / "c.gz"), cr::Error);
}

TEST_CASE("DataLoader: batches, drop_last, seeded shuffling per epoch, transform") {
  auto ds = std::make_shared<D::TensorDataset>(cr::arange(10, cr::float64).reshape({10, 1}), cr::arange(10, cr::int64));
  D::DataLoader plain(ds, {.batch_size = 4});
  CHECK(plain.batches_per_epoch() == 3);
  std::vector<int64_t> sizes, seen;
  for (const D::Batch& b : plain.epoch(0)) {
    sizes.push_back(b.inputs.size(0));
    for (int64_t t : b.targets.to_vector<int64_t>()) seen.push_back(t);
  }
  CHECK(sizes == std::vector<int64_t>{4, 4, 2});
  CHECK(seen == std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  D::DataLoader dropping(ds, {.batch_size = 4, .drop_last = true});
  CHECK(dropping.batches_per_epoch() == 2);

  D::DataLoader shuffled(ds, {.batch_size = 10, .shuffle = true, .seed = 5});
  const auto e0 = shuffled.batch(0, 0).targets.to_vector<int64_t>();
  CHECK(shuffled.batch(0, 0).targets.to_vector<int64_t>() == e0);  // same epoch, same order
  CHECK(shuffled.batch(1, 0).targets.to_vector<int64_t>() != e0);  // next epoch, new order
  CHECK(std::set<int64_t>(e0.begin(), e0.end()).size() == 10);     // a permutation
  CHECK(e0 != seen);
  D::DataLoader again(ds, {.batch_size = 10, .shuffle = true, .seed = 5});
  CHECK(again.batch(0, 0).targets.to_vector<int64_t>() == e0);  // reproducible from the seed

  D::DataLoader scaled(ds, {.batch_size = 5, .transform = [](D::Batch b) {
                              b.inputs = b.inputs * 2.0;
                              return b;
                            }});
  CHECK(values(scaled.batch(0, 1).inputs) == std::vector<double>{10, 12, 14, 16, 18});
  check_error([&] { (void)plain.batch(0, 3); }, {"DataLoader", "batch 3", "3 batches"});
  check_error([&] { D::DataLoader bad(ds, {.batch_size = 0}); }, {"batch_size"});
  check_error([] { D::TensorDataset bad(cr::zeros({3, 2}), cr::zeros({4})); }, {"TensorDataset", "[3, 2]", "[4]"});
}

TEST_CASE("DistributedSampler: disjoint shards, padding, drop_last, shared seed, the N*B equivalence") {
  // 10 examples over 3 ranks, no shuffle: PyTorch's layout, padded with the first two indices.
  std::vector<std::vector<int64_t>> shards;
  for (int64_t r = 0; r < 3; ++r) {
    const D::DistributedSampler s({.num_replicas = 3, .rank = r, .shuffle = false});
    CHECK(s.num_samples(10) == 4);
    shards.push_back(s.indices(0, 10));
  }
  CHECK(shards[0] == std::vector<int64_t>{0, 3, 6, 9});
  CHECK(shards[1] == std::vector<int64_t>{1, 4, 7, 0});
  CHECK(shards[2] == std::vector<int64_t>{2, 5, 8, 1});
  const D::DistributedSampler dropping({.num_replicas = 3, .rank = 2, .shuffle = false, .drop_last = true});
  CHECK(dropping.num_samples(10) == 3);
  CHECK(dropping.indices(0, 10) == std::vector<int64_t>{2, 5, 8});
  // A dataset smaller than the number of ranks still gives every rank one example.
  CHECK(D::DistributedSampler({.num_replicas = 4, .rank = 3, .shuffle = false}).indices(0, 2) == std::vector<int64_t>{1});

  // Shuffled: every rank draws the same permutation of the shared seed, so the shards are
  // disjoint and cover the dataset; the next epoch reshuffles.
  std::set<int64_t> covered;
  for (int64_t r = 0; r < 4; ++r) {
    const D::DistributedSampler s({.num_replicas = 4, .rank = r, .seed = 7});
    const auto e0 = s.indices(0, 20);
    CHECK(e0.size() == 5);
    covered.insert(e0.begin(), e0.end());
    CHECK(s.indices(0, 20) == e0);
    CHECK(s.indices(1, 20) != e0);
  }
  CHECK(covered.size() == 20);

  // Step k of rank r holds permutation[(k*B + j)*N + r]: the union over ranks of step k is the
  // k-th block of N*B of the permutation, i.e. the k-th batch of one DataLoader of batch N*B.
  auto ds = std::make_shared<D::TensorDataset>(cr::arange(24, cr::float64).reshape({24, 1}), cr::arange(24, cr::int64));
  const int64_t N = 3, B = 2;
  const D::DataLoader single(ds, {.batch_size = N * B, .shuffle = true, .seed = 11});
  std::vector<D::DataLoader> ranks;
  for (int64_t r = 0; r < N; ++r)
    ranks.emplace_back(ds, D::DataLoaderOptions{
                               .batch_size = B,
                               .sampler = std::make_shared<D::DistributedSampler>(
                                   D::DistributedSamplerOptions{.num_replicas = N, .rank = r, .seed = 11})});
  CHECK(single.batches_per_epoch() == 4);
  for (int64_t epoch = 0; epoch < 2; ++epoch)
    for (int64_t k = 0; k < single.batches_per_epoch(); ++k) {
      CHECK(ranks[0].batches_per_epoch() == 4);
      const auto whole = single.batch(epoch, k).targets.to_vector<int64_t>();
      std::multiset<int64_t> union_of_ranks;
      for (const auto& loader : ranks)
        for (int64_t t : loader.batch(epoch, k).targets.to_vector<int64_t>()) union_of_ranks.insert(t);
      CHECK(union_of_ranks == std::multiset<int64_t>(whole.begin(), whole.end()));
    }
  CHECK(D::permutation(24, 11) == D::permutation(24, 11));

  check_error([] { D::DistributedSampler bad({.num_replicas = 2, .rank = 2}); }, {"DistributedSampler", "rank 2", "[0, 2)"});
  check_error([] { D::DistributedSampler bad({.num_replicas = 0}); }, {"DistributedSampler", "num_replicas"});
  check_error([&] {
    D::DataLoader bad(ds, {.shuffle = true, .sampler = std::make_shared<D::DistributedSampler>(D::DistributedSamplerOptions{})});
  }, {"DataLoader", "sampler", "shuffle"});
  // A sampler that breaks its own promise is caught, not read past.
  struct Liar : D::Sampler {
    std::vector<int64_t> indices(int64_t, int64_t) const override { return {0, 1}; }
    int64_t num_samples(int64_t) const override { return 5; }
  };
  const D::DataLoader lied_to(ds, {.batch_size = 2, .sampler = std::make_shared<Liar>()});
  check_error([&] { (void)lied_to.batch(0, 0); }, {"sampler returned 2 indices", "promised 5"});
  // So is a dataset whose size() is negative: it counted -2 batches an epoch and then failed
  // in std::vector ("cannot create std::vector larger than max_size()").
  struct Negative : D::Dataset {
    int64_t size() const override { return -5; }
    D::Batch get_batch(const std::vector<int64_t>&) const override { return {}; }
  };
  const D::DataLoader negative(std::make_shared<Negative>(), {.batch_size = 2});
  check_error([&] { (void)negative.batches_per_epoch(); }, {"DataLoader", "size() is -5"});
  check_error([&] { (void)negative.epoch(0); }, {"DataLoader", "size() is -5"});
}

TEST_CASE("synthetic 2-D problems: shapes, balanced labels, reproducible") {
  cr::Generator g1(3), g2(3);
  const auto a = D::make_moons(100, 0.1, &g1), b = D::make_moons(100, 0.1, &g2);
  CHECK(a.inputs.shape() == cr::Shape{100, 2});
  CHECK(values(a.inputs) == values(b.inputs));
  const auto spirals = D::make_spirals(90, 3, 0.1, &g1);
  CHECK(cr::max(spirals.targets).item<int64_t>() == 2);
  CHECK(cr::sum(D::make_circles(50, 0.0, 0.5, &g1).targets).item<int64_t>() == 25);
  const auto blobs = D::make_xor_blobs(40, 0.0, &g1);
  const auto xy = values(blobs.inputs);
  const auto y = blobs.targets.to_vector<int64_t>();
  for (size_t i = 0; i < y.size(); ++i) CHECK(y[i] == ((xy[2 * i] > 0) != (xy[2 * i + 1] > 0)));
  check_error([] { (void)D::make_spirals(10, 1); }, {"make_spirals", "arms"});
  // The noise is a standard deviation: a negative one was used as is (the same points as its
  // absolute value, mirrored draws), a NaN or infinite one made every point NaN or inf.
  for (double noise : {-0.1, double(NAN), double(INFINITY)}) {
    CAPTURE(noise);
    check_error([&] { (void)D::make_moons(10, noise); }, {"make_moons", "noise", "finite and >= 0"});
    check_error([&] { (void)D::make_circles(10, noise); }, {"make_circles", "noise"});
    check_error([&] { (void)D::make_spirals(10, 2, noise); }, {"make_spirals", "noise"});
    check_error([&] { (void)D::make_xor_blobs(10, noise); }, {"make_xor_blobs", "noise"});
  }
}

TEST_CASE("Fashion-MNIST loads from the Debian package, when installed") {
  if (!fs::exists(fs::path(D::kFashionMnistDir) / "t10k-labels-idx1-ubyte.gz")) {
    MESSAGE("skipped: dataset-fashion-mnist is not installed");
    return;
  }
  const D::FashionMnist m = D::load_fashion_mnist();
  CHECK(m.train_images.shape() == cr::Shape{60000, 784});
  CHECK(m.test_labels.shape() == cr::Shape{10000});
  CHECK(cr::max(m.train_images).item<double>() == 1.0);
  CHECK(cr::max(m.test_labels).item<int64_t>() == 9);
}

TEST_CASE("the plotting module writes well-formed SVG") {
  std::string why;
  const std::string line = plot::svg(plot::LineChart{.title = "a <b> & c", .x_label = "x", .y_label = "y", .log_y = true,
                                                     .series = {{"s", {1, 2, 3}, {1, 0.1, 0.01}}}});
  CHECK(well_formed_xml(line, why));
  CHECK(line.find("a &lt;b&gt; &amp; c") != std::string::npos);
  plot::Heatmap map{.title = "m", .row_labels = {"r1", "r2"}, .col_labels = {"c1"}, .values = {{0.2}, {0.9}},
                    .row_title = "rows", .col_title = "cols"};
  CHECK(well_formed_xml(plot::svg({map, map}, 0, 1, "two"), why));
  plot::ScatterField field{.title = "f", .x0 = 0, .x1 = 1, .y0 = 0, .y1 = 1, .field = {{0, 1}, {1, 0}},
                           .px = {0.5}, .py = {0.5}, .label = {1}};
  const std::string scatter = plot::svg(field);
  CHECK(well_formed_xml(scatter, why));
  INFO(why);
  CHECK_FALSE(well_formed_xml("<svg><g></svg>", why));
  Dir dir;
  plot::write_file(dir / "p.svg", scatter);
  std::ifstream in(dir / "p.svg");
  CHECK(std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()) == scatter);
  CHECK_FALSE(fs::exists(dir / "p.svg.tmp"));
}
