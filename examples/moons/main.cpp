// micrograd's demo, done properly: small MLPs on two moons and on three spirals, trained with
// Adam on cross-entropy, each with a picture of its decision boundary (the plane shaded by
// predicted class, the points on top).
#include "../common/cli.hpp"
#include "../common/plot.hpp"

#include <chainrule.hpp>

#include <filesystem>

namespace cr = chainrule;
namespace D = cr::nn::data;

namespace {

struct Result {
  double accuracy;
  plot::ScatterField picture;
};

Result fit(const std::string& title, const D::Batch& data, int64_t classes, int steps, uint64_t seed) {
  cr::Generator gen(seed);
  cr::nn::MLP mlp({2, 32, 32, classes}, {.activation = std::string("relu"), .dtype = cr::float64, .generator = &gen});
  cr::optim::Adam adam(mlp.parameters(), {.lr = 0.01});
  for (int step = 0; step < steps; ++step) {
    adam.zero_grad();
    cr::nn::functional::cross_entropy(mlp(data.inputs), data.targets).backward();
    adam.step();
  }
  cr::NoGradGuard no_grad;
  const auto pred = cr::argmax(mlp(data.inputs), 1).to_vector<int64_t>(), truth = data.targets.to_vector<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == truth[i];

  const auto xy = data.inputs.to_vector<double>();
  Result r{static_cast<double>(correct) / static_cast<double>(pred.size()), {}};
  plot::ScatterField& p = r.picture;
  p.x0 = p.y0 = 1e9;
  p.x1 = p.y1 = -1e9;
  for (size_t i = 0; i < xy.size(); i += 2) {
    p.x0 = std::min(p.x0, xy[i]), p.x1 = std::max(p.x1, xy[i]);
    p.y0 = std::min(p.y0, xy[i + 1]), p.y1 = std::max(p.y1, xy[i + 1]);
    p.px.push_back(xy[i]);
    p.py.push_back(xy[i + 1]);
  }
  const double pad = 0.1 * std::max(p.x1 - p.x0, p.y1 - p.y0);
  p.x0 -= pad, p.x1 += pad, p.y0 -= pad, p.y1 += pad;
  for (int64_t t : truth) p.label.push_back(static_cast<int>(t));
  const int64_t res = 120;  // the field: one prediction per cell, all cells in one batch
  std::vector<double> grid;
  for (int64_t row = 0; row < res; ++row)
    for (int64_t col = 0; col < res; ++col) {
      grid.push_back(p.x0 + (p.x1 - p.x0) * (static_cast<double>(col) + 0.5) / res);
      grid.push_back(p.y1 - (p.y1 - p.y0) * (static_cast<double>(row) + 0.5) / res);
    }
  const auto cls = cr::argmax(mlp(cr::tensor(grid, {res * res, 2}, cr::float64)), 1).to_vector<int64_t>();
  p.field.assign(res, std::vector<int>(res));
  for (int64_t i = 0; i < res * res; ++i) p.field[i / res][i % res] = static_cast<int>(cls[i]);
  p.title = fmt::format("{}: training accuracy {:.1f}%", title, 100 * r.accuracy);
  return r;
}

}  // namespace

int run_example(int argc, char** argv) {
  std::string out = "moons-out";
  int steps = 1000;
  cli::Parser p("moons",
                "usage: moons [--out DIR] [--steps N]\n"
                "  --out DIR   where the two SVG pictures go (default moons-out)\n"
                "  --steps N   Adam steps per problem (default 1000)\n");
  p.option("--out", [&](const std::string& v) { out = v; });
  p.option("--steps", [&](const std::string& v) { steps = static_cast<int>(p.integer(v, "--steps", 1, 1000000)); });
  p.parse(argc, argv);
  std::filesystem::create_directories(out);

  cr::Generator data_gen(7);
  const Result moons = fit("two moons", D::make_moons(200, 0.1, &data_gen), 2, steps, 1);
  const Result spirals = fit("three spirals", D::make_spirals(300, 3, 0.1, &data_gen), 3, steps, 2);
  plot::write_file(out + "/moons.svg", plot::svg(moons.picture));
  plot::write_file(out + "/spirals.svg", plot::svg(spirals.picture));
  fmt::print("two moons (200 points): training accuracy {:.1f}%\nthree spirals (300 points): training accuracy {:.1f}%\n"
             "wrote {}/moons.svg and {}/spirals.svg\n",
             100 * moons.accuracy, 100 * spirals.accuracy, out, out);
  return 0;
}

int main(int argc, char** argv) {
  return cli::run("moons", [&] { return run_example(argc, argv); });
}
