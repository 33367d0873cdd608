// Recurrent layers: the functional cells against their definitions in plain loops (and by
// gradcheck, every operand), the RNN, LSTM and GRU modules against loops of those cells over
// layers, directions and steps (batch_first, unbatched, initial states, dropout between layers),
// the cell modules against the functions, PyTorch's parameter names and initialisation, to(dtype)
// and checkpoints, and errors. Values and derivatives of the modules are also compared against
// torch.nn.LSTM, GRU and RNN by tests/torch_parity.
#include "helpers.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>

namespace F = cr::nn::functional;
using V = const std::vector<cr::Tensor>&;

namespace {
enum class Kind { tanh, relu, lstm, gru };

// One step of a cell in plain loops: batch rows of x [N, in], h, c [N, H], weights row-major.
struct Plain {
  std::vector<double> h, c;
};
Plain plain_cell(Kind kind, int64_t n, int64_t in, int64_t hidden, const std::vector<double>& x,
                 const std::vector<double>& h, const std::vector<double>& c, const std::vector<double>& w_ih,
                 const std::vector<double>& w_hh, const std::vector<double>& b_ih, const std::vector<double>& b_hh) {
  const int64_t rows = w_hh.size() / hidden;
  const auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  Plain out{std::vector<double>(n * hidden), std::vector<double>(n * hidden)};
  for (int64_t b = 0; b < n; ++b) {
    std::vector<double> xw(rows), hw(rows);
    for (int64_t r = 0; r < rows; ++r) {
      xw[r] = b_ih[r];
      hw[r] = b_hh[r];
      for (int64_t k = 0; k < in; ++k) xw[r] += w_ih[r * in + k] * x[b * in + k];
      for (int64_t k = 0; k < hidden; ++k) hw[r] += w_hh[r * hidden + k] * h[b * hidden + k];
    }
    for (int64_t j = 0; j < hidden; ++j) {
      const auto gate = [&](int64_t g) { return xw[g * hidden + j] + hw[g * hidden + j]; };
      const int64_t o = b * hidden + j;
      if (kind == Kind::tanh) out.h[o] = std::tanh(gate(0));
      if (kind == Kind::relu) out.h[o] = std::max(gate(0), 0.0);
      if (kind == Kind::lstm) {
        out.c[o] = sig(gate(1)) * c[o] + sig(gate(0)) * std::tanh(gate(2));
        out.h[o] = sig(gate(3)) * std::tanh(out.c[o]);
      }
      if (kind == Kind::gru) {
        const double r = sig(gate(0)), z = sig(gate(1));
        const double cand = std::tanh(xw[2 * hidden + j] + r * hw[2 * hidden + j]);
        out.h[o] = (1 - z) * cand + z * h[o];
      }
    }
  }
  return out;
}

void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i);
    CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
  }
}

cr::Tensor param(const cr::nn::Module& m, const std::string& name) {
  for (const auto& [n, t] : m.named_parameters())
    if (n == name) return t;
  return cr::Tensor();
}

// The module's computation as a loop of the functional cells over its named parameters:
// x [L, N, in], h0 and c0 [layers D, N, H].
cr::nn::RNNOutput by_cells(const cr::nn::RNNBase& m, Kind kind, cr::Tensor x, const cr::Tensor& h0, const cr::Tensor& c0) {
  const int64_t dirs = m.options.bidirectional ? 2 : 1, steps = x.size(0);
  std::vector<cr::Tensor> hn, cn;
  for (int64_t layer = 0; layer < m.options.num_layers; ++layer) {
    std::vector<cr::Tensor> outs;
    for (int64_t dir = 0; dir < dirs; ++dir) {
      const std::string s = "_l" + std::to_string(layer) + (dir ? "_reverse" : "");
      const cr::Tensor wi = param(m, "weight_ih" + s), wh = param(m, "weight_hh" + s), bi = param(m, "bias_ih" + s),
                       bh = param(m, "bias_hh" + s);
      cr::Tensor h = h0.select(0, layer * dirs + dir), c = c0.defined() ? c0.select(0, layer * dirs + dir) : cr::Tensor();
      std::vector<cr::Tensor> hs(steps);
      for (int64_t i = 0; i < steps; ++i) {
        const int64_t t = dir ? steps - 1 - i : i;
        const cr::Tensor xt = x.select(0, t);
        if (kind == Kind::lstm) std::tie(h, c) = F::lstm_cell(xt, h, c, wi, wh, bi, bh);
        if (kind == Kind::gru) h = F::gru_cell(xt, h, wi, wh, bi, bh);
        if (kind == Kind::tanh) h = F::rnn_tanh_cell(xt, h, wi, wh, bi, bh);
        if (kind == Kind::relu) h = F::rnn_relu_cell(xt, h, wi, wh, bi, bh);
        hs[t] = h;
      }
      outs.push_back(cr::stack(hs, 0));
      hn.push_back(h);
      if (c.defined()) cn.push_back(c);
    }
    x = cr::cat(outs, 2);
  }
  return {x, cr::stack(hn, 0), cn.empty() ? cr::Tensor() : cr::stack(cn, 0)};
}
}  // namespace

TEST_CASE("rnn_tanh_cell, rnn_relu_cell, lstm_cell and gru_cell equal their definitions in plain loops") {
  const int64_t n = 2, in = 3, hidden = 2;
  const cr::Tensor x = input({n, in}, -1, 1, 61), h = input({n, hidden}, -1, 1, 62), c = input({n, hidden}, -1, 1, 63);
  for (auto [kind, gates] : {std::pair{Kind::tanh, 1}, {Kind::relu, 1}, {Kind::lstm, 4}, {Kind::gru, 3}}) {
    const cr::Tensor wi = input({gates * hidden, in}, -1, 1, 64), wh = input({gates * hidden, hidden}, -1, 1, 65),
                     bi = input({gates * hidden}, -1, 1, 66), bh = input({gates * hidden}, -1, 1, 67);
    const Plain want = plain_cell(kind, n, in, hidden, values(x), values(h), values(c), values(wi), values(wh),
                                  values(bi), values(bh));
    if (kind == Kind::lstm) {
      const auto [h2, c2] = F::lstm_cell(x, h, c, wi, wh, bi, bh);
      check_close(values(h2), want.h);
      check_close(values(c2), want.c);
      const auto [h1, c1] = F::lstm_cell(x.select(0, 1), h.select(0, 1), c.select(0, 1), wi, wh, bi, bh);  // unbatched
      check_close(values(h1), {want.h[2], want.h[3]});
      check_close(values(c1), {want.c[2], want.c[3]});
      continue;
    }
    const auto cell = kind == Kind::gru ? F::gru_cell : kind == Kind::tanh ? F::rnn_tanh_cell : F::rnn_relu_cell;
    check_close(values(cell(x, h, wi, wh, bi, bh)), want.h);
    check_close(values(cell(x.select(0, 0), h.select(0, 0), wi, wh, bi, bh)), {want.h[0], want.h[1]});
    // without biases: the same as zero biases
    const Plain bare = plain_cell(kind, n, in, hidden, values(x), values(h), values(c), values(wi), values(wh),
                                  std::vector<double>(gates * hidden), std::vector<double>(gates * hidden));
    check_close(values(cell(x, h, wi, wh, {}, {})), bare.h);
  }
}

TEST_CASE("the cells: gradcheck and gradgradcheck of x, h, c and every weight and bias") {
  const cr::Tensor x = input({2, 3}, -1, 1, 71), h = input({2, 2}, -1, 1, 72), c = input({2, 2}, -1, 1, 73);
  const auto w = [](int64_t gates, uint64_t seed) {
    return std::vector<cr::Tensor>{input({gates * 2, 3}, -1, 1, seed), input({gates * 2, 2}, -1, 1, seed + 1),
                                   input({gates * 2}, -1, 1, seed + 2), input({gates * 2}, -1, 1, seed + 3)};
  };
  const auto w4 = w(4, 74), w3 = w(3, 78), w1 = w(1, 82);
  check_gradients([](V v) {
    const auto [h2, c2] = F::lstm_cell(v[0], v[1], v[2], v[3], v[4], v[5], v[6]);
    return cr::cat({h2, c2 * 0.5}, 1);
  }, {x, h, c, w4[0], w4[1], w4[2], w4[3]});
  check_gradients([](V v) { return F::gru_cell(v[0], v[1], v[2], v[3], v[4], v[5]); }, {x, h, w3[0], w3[1], w3[2], w3[3]});
  check_gradients([](V v) { return F::rnn_tanh_cell(v[0], v[1], v[2], v[3], v[4], v[5]); },
                  {x, h, w1[0], w1[1], w1[2], w1[3]});
  check_gradients([](V v) { return F::rnn_relu_cell(v[0], v[1], v[2], v[3]); }, {x, h, w1[0], w1[1]});
}

TEST_CASE("LSTM, GRU and RNN: loops of the cells over layers, directions and steps; PyTorch's parameters") {
  cr::Generator gen(3);
  const cr::nn::RNNOptions deep{.num_layers = 2, .bidirectional = true, .dtype = cr::float64, .generator = &gen};
  cr::nn::LSTM lstm(3, 4, deep);
  // PyTorch's names, shapes and order; U(-1/sqrt(H), 1/sqrt(H))
  const auto named = lstm.named_parameters();
  REQUIRE(named.size() == 16);
  CHECK(named[0].first == "weight_ih_l0");
  CHECK(named[3].first == "bias_hh_l0");
  CHECK(named[4].first == "weight_ih_l0_reverse");
  CHECK(named[8].first == "weight_ih_l1");
  CHECK(named[15].first == "bias_hh_l1_reverse");
  CHECK(named[0].second.shape() == cr::Shape{16, 3});
  CHECK(named[1].second.shape() == cr::Shape{16, 4});
  CHECK(named[8].second.shape() == cr::Shape{16, 8});  // layer 1 reads both directions
  CHECK(named[2].second.shape() == cr::Shape{16});
  for (const auto& [name, p] : named) {
    CHECK(cr::max(cr::abs(p)).item<double>() <= 0.5);
    CHECK(p.dtype() == cr::float64);
  }
  CHECK(cr::max(cr::abs(named[1].second)).item<double>() > 0.4);
  const cr::Tensor x = input({5, 2, 3}, -1, 1, 91), h0 = input({4, 2, 4}, -1, 1, 92), c0 = input({4, 2, 4}, -1, 1, 93);
  const cr::nn::RNNOutput got = lstm.forward(x, h0, c0), want = by_cells(lstm, Kind::lstm, x, h0, c0);
  CHECK(got.output.shape() == cr::Shape{5, 2, 8});
  CHECK(got.h_n.shape() == cr::Shape{4, 2, 4});
  check_close(values(got.output), values(want.output));
  check_close(values(got.h_n), values(want.h_n));
  check_close(values(got.c_n), values(want.c_n));
  // h_n holds the last layer's forward state at the last step and its reverse state at the first
  check_close(values(got.h_n.select(0, 2)), values(got.output.select(0, 4).narrow(1, 0, 4)));
  check_close(values(got.h_n.select(0, 3)), values(got.output.select(0, 0).narrow(1, 4, 4)));
  // zero initial states where none are given; forward(x) is the output alone
  const cr::Tensor zeros = cr::zeros({4, 2, 4}, cr::float64);
  check_close(values(lstm(x)), values(by_cells(lstm, Kind::lstm, x, zeros, zeros).output));

  cr::nn::GRU gru(3, 4, {.num_layers = 2, .dtype = cr::float64, .generator = &gen});
  CHECK(gru.named_parameters().size() == 8);
  CHECK(param(gru, "weight_hh_l1").shape() == cr::Shape{12, 4});
  const cr::Tensor g0 = h0.narrow(0, 0, 2);
  const cr::nn::RNNOutput gg = gru.forward(x, g0);
  CHECK_FALSE(gg.c_n.defined());
  check_close(values(gg.output), values(by_cells(gru, Kind::gru, x, g0, {}).output));
  check_close(values(gg.h_n), values(by_cells(gru, Kind::gru, x, g0, {}).h_n));

  cr::nn::RNN rnn(3, 4, {.bias = false, .bidirectional = true, .relu = true, .dtype = cr::float64, .generator = &gen});
  CHECK(rnn.named_parameters().size() == 4);  // no biases
  CHECK(rnn.repr() == "RNN(3, 4, nonlinearity=relu, bias=false, bidirectional=true)");
  const cr::nn::RNNOutput rr = rnn.forward(x, g0);
  check_close(values(rr.output), values(by_cells(rnn, Kind::relu, x, g0, {}).output));
  cr::nn::RNN elman(3, 4, {.dtype = cr::float64, .generator = &gen});
  check_close(values(elman.forward(x, g0.narrow(0, 0, 1)).h_n),
              values(by_cells(elman, Kind::tanh, x, g0.narrow(0, 0, 1), {}).h_n));
  CHECK(lstm.repr() == "LSTM(3, 4, num_layers=2, bidirectional=true)");
  CHECK(cr::nn::GRU(2, 5, {.batch_first = true, .dropout = 0.25}).repr() == "GRU(2, 5, batch_first=true, dropout=0.25)");
}

TEST_CASE("recurrent layers: batch_first, unbatched input, dropout between layers, in a Sequential, float32") {
  cr::Generator gen(4);
  cr::nn::LSTM seq_first(3, 2, {.dtype = cr::float64, .generator = &gen});
  cr::nn::LSTM batch_first(3, 2, {.batch_first = true, .dtype = cr::float64});
  for (size_t i = 0; i < 4; ++i) batch_first.parameters()[i].set_data(seq_first.parameters()[i].detach().clone());
  const cr::Tensor x = input({4, 2, 3}, -1, 1, 95);
  const cr::nn::RNNOutput a = seq_first.forward(x, {}), b = batch_first.forward(x.transpose(0, 1).contiguous(), {});
  CHECK(b.output.shape() == cr::Shape{2, 4, 2});
  check_close(values(b.output), values(a.output.transpose(0, 1)));
  check_close(values(b.h_n), values(a.h_n));  // h_n is [layers D, N, H] either way, as PyTorch's
  // an unbatched [L, in] sequence is a batch of one
  const cr::nn::RNNOutput one = seq_first.forward(x.select(1, 1), {}), batch = seq_first.forward(x.narrow(1, 1, 1), {});
  CHECK(one.output.shape() == cr::Shape{4, 2});
  CHECK(one.h_n.shape() == cr::Shape{1, 2});
  check_close(values(one.output), values(batch.output));
  check_close(values(one.c_n), values(batch.c_n));
  const cr::Tensor h1 = input({1, 2}, -1, 1, 96), c1 = input({1, 2}, -1, 1, 97);
  check_close(values(seq_first.forward(x.select(1, 0), h1, c1).output),
              values(seq_first.forward(x.narrow(1, 0, 1), h1.unsqueeze(1), c1.unsqueeze(1)).output));
  // dropout p = 1 between layers: while training, layer 1 reads zeros; after eval(), no dropout
  cr::nn::GRU dropped(3, 2, {.num_layers = 2, .dropout = 1.0, .dtype = cr::float64, .generator = &gen});
  cr::nn::GRU top2(2, 2, {.dtype = cr::float64});  // layer 1 alone: it reads H = 2 features
  for (size_t i = 0; i < 4; ++i) top2.parameters()[i].set_data(dropped.parameters()[4 + i].detach().clone());
  check_close(values(dropped(x)), values(top2(cr::zeros({4, 2, 2}, cr::float64))));
  dropped.eval();
  CHECK(values(dropped(x)) != values(top2(cr::zeros({4, 2, 2}, cr::float64))));
  check_close(values(dropped(x)), values(by_cells(dropped, Kind::gru, x, cr::zeros({2, 2, 2}, cr::float64), {}).output));
  // in a Sequential: the output sequence goes on (here to a Linear on each step's state)
  cr::nn::Sequential net({std::make_shared<cr::nn::RNN>(3, 5), std::make_shared<cr::nn::Linear>(5, 1)});
  const cr::Tensor y = net(x.to(cr::float32));
  CHECK(y.shape() == cr::Shape{4, 2, 1});
  CHECK(y.dtype() == cr::float32);
  cr::sum(y).backward();
  for (const cr::Tensor& p : net.parameters()) CHECK(p.grad().defined());
}

TEST_CASE("recurrent layers: to(dtype) and checkpoints reach the weights the steps read") {
  cr::Generator gen(7);
  cr::nn::GRU gru(3, 2, {.num_layers = 2, .generator = &gen});  // float32
  const cr::Tensor x = input({4, 2, 3}, -1, 1, 121);
  const std::vector<double> before = values(gru(x.to(cr::float32)));
  gru.to(cr::float64);
  check_close(values(gru(x)), before, 1e-6);
  check_error([&] { (void)gru(x.to(cr::float32)); }, {"GRU", "float32", "float64"});
  const std::string path =
      (std::filesystem::temp_directory_path() / ("chainrule-rnn-" + std::to_string(::getpid()) + ".bin")).string();
  cr::nn::save(gru, path);
  cr::nn::GRU other(3, 2, {.num_layers = 2, .dtype = cr::float64});
  CHECK(values(other(x)) != values(gru(x)));
  cr::nn::load(other, path);
  std::remove(path.c_str());
  check_close(values(other(x)), values(gru(x)));
}

TEST_CASE("recurrent layers: gradcheck and gradgradcheck through the steps (input, h0, c0)") {
  cr::Generator gen(5);
  cr::nn::LSTM lstm(2, 2, {.num_layers = 2, .bidirectional = true, .dtype = cr::float64, .generator = &gen});
  check_gradients([&](V v) {
    const cr::nn::RNNOutput o = lstm.forward(v[0], v[1], v[2]);
    return cr::cat({o.output.reshape({-1}), o.h_n.reshape({-1}), o.c_n.reshape({-1})});
  }, {input({3, 2, 2}, -1, 1, 101), input({4, 2, 2}, -1, 1, 102), input({4, 2, 2}, -1, 1, 103)});
  cr::nn::GRU gru(2, 3, {.batch_first = true, .dtype = cr::float64, .generator = &gen});
  check_gradients([&](V v) { return gru.forward(v[0], v[1]).output; },
                  {input({2, 3, 2}, -1, 1, 104), input({1, 2, 3}, -1, 1, 105)});
  cr::nn::RNN rnn(2, 3, {.num_layers = 2, .dtype = cr::float64, .generator = &gen});
  check_gradients([&](V v) { return rnn(v[0]); }, {input({4, 2}, -1, 1, 106)});  // unbatched
}

TEST_CASE("RNNCell, LSTMCell and GRUCell: the functional cells with their own parameters; a decoder loop") {
  cr::Generator gen(6);
  cr::nn::LSTMCell lstm(3, 2, {.dtype = cr::float64, .generator = &gen});
  const auto named = lstm.named_parameters();
  REQUIRE(named.size() == 4);
  CHECK(named[0].first == "weight_ih");
  CHECK(named[1].first == "weight_hh");
  CHECK(named[2].first == "bias_ih");
  CHECK(named[3].first == "bias_hh");
  CHECK(lstm.weight_ih.shape() == cr::Shape{8, 3});
  CHECK(lstm.weight_hh.shape() == cr::Shape{8, 2});
  for (const cr::Tensor& p : lstm.parameters()) CHECK(cr::max(cr::abs(p)).item<double>() <= 1 / std::sqrt(2.0));
  CHECK(lstm.repr() == "LSTMCell(3, 2)");
  const cr::Tensor x = input({4, 3}, -1, 1, 111), h = input({4, 2}, -1, 1, 112), c = input({4, 2}, -1, 1, 113);
  const auto [h2, c2] = lstm.forward(x, h, c);
  const auto [fh, fc] = F::lstm_cell(x, h, c, lstm.weight_ih, lstm.weight_hh, lstm.bias_ih, lstm.bias_hh);
  check_close(values(h2), values(fh));
  check_close(values(c2), values(fc));
  const cr::Tensor zero = cr::zeros({4, 2}, cr::float64);  // zero states where none are given
  check_close(values(lstm(x)), values(F::lstm_cell(x, zero, zero, lstm.weight_ih, lstm.weight_hh, lstm.bias_ih,
                                                   lstm.bias_hh).first));
  CHECK(lstm(x.select(0, 2)).shape() == cr::Shape{2});  // unbatched
  cr::nn::GRUCell gru(3, 2, {.bias = false, .dtype = cr::float64, .generator = &gen});
  CHECK(gru.parameters().size() == 2);
  CHECK(gru.repr() == "GRUCell(3, 2, bias=false)");
  check_close(values(gru.forward(x, h)), values(F::gru_cell(x, h, gru.weight_ih, gru.weight_hh)));
  check_close(values(gru(x)), values(F::gru_cell(x, zero, gru.weight_ih, gru.weight_hh)));
  cr::nn::RNNCell rnn(3, 2, {.relu = true, .dtype = cr::float64, .generator = &gen});
  CHECK(rnn.repr() == "RNNCell(3, 2, nonlinearity=relu)");
  check_close(values(rnn.forward(x, h)), values(F::rnn_relu_cell(x, h, rnn.weight_ih, rnn.weight_hh, rnn.bias_ih, rnn.bias_hh)));
  cr::nn::RNNCell elman(3, 2, {.dtype = cr::float64, .generator = &gen});
  check_close(values(elman.forward(x, h)),
              values(F::rnn_tanh_cell(x, h, elman.weight_ih, elman.weight_hh, elman.bias_ih, elman.bias_hh)));
  // a decoder feeding its own output back: an LSTMCell of 2 features and hidden size 2, 5 steps
  cr::nn::LSTMCell decoder(2, 2, {.dtype = cr::float64, .generator = &gen});
  cr::Tensor y = input({1, 2}, -1, 1, 114).detach(), hd, cd, total = cr::zeros({}, cr::float64);
  for (int t = 0; t < 5; ++t) {
    std::tie(hd, cd) = decoder.forward(y, hd, cd);
    y = hd;
    total = total + cr::sum(y);
  }
  total.backward();
  for (const cr::Tensor& p : decoder.parameters()) CHECK(cr::sum(cr::abs(p.grad())).item<double>() > 0);
  check_error([&] { (void)lstm.forward(x, h, cr::Tensor()); }, {"LSTMCell", "together", "[4, 3]"});
  check_error([&] { (void)gru.forward(input({4, 5}), h); }, {"gru_cell", "w_ih", "[6, 5]", "[6, 3]"});
  check_error([] { cr::nn::GRUCell(3, 2, {.relu = true}); }, {"GRUCell", "relu", "RNNCell"});
  check_error([] { cr::nn::RNNCell(0, 2); }, {"RNNCell", "input_size (0)"});
}

TEST_CASE("recurrent layers and cells: errors name the op, the shapes and the dtypes") {
  cr::nn::LSTM lstm(3, 4, {.dtype = cr::float64});
  cr::nn::GRU gru(3, 4, {.batch_first = true, .dtype = cr::float64});
  const cr::Tensor x = input({5, 2, 3});
  check_error([&] { (void)lstm(input({5, 2, 4})); }, {"LSTM", "[5, 2, 4]", "[L, N, features] or [L, features]", "3 features", "LSTM(3, 4)"});
  check_error([&] { (void)gru(input({5, 2})); }, {"GRU", "[5, 2]", "[N, L, features]"});
  check_error([&] { (void)lstm(x.to(cr::float32)); }, {"LSTM", "float32", "float64"});
  check_error([&] { (void)lstm(input({0, 2, 3})); }, {"LSTM", "[0, 2, 3]", "no steps"});
  check_error([&] { (void)lstm.forward(x, input({1, 2, 4})); }, {"LSTM", "h0 and c0", "together"});
  check_error([&] { (void)lstm.forward(x, input({1, 2, 4}), input({2, 2, 4})); }, {"LSTM", "c0", "[1, 2, 4]", "[2, 2, 4]"});
  check_error([&] { (void)gru.forward(x, input({1, 2, 4})); }, {"GRU", "h0", "[1, 5, 4]", "[1, 2, 4]"});  // N = 5
  check_error([&] { (void)gru.forward(x, input({1, 5, 4}), input({1, 5, 4})); }, {"GRU", "c0", "only LSTM"});
  check_error([] { cr::nn::LSTM(3, 0); }, {"LSTM", "hidden_size (0)", "positive"});
  check_error([] { cr::nn::GRU(3, 2, {.num_layers = 0}); }, {"GRU", "num_layers", "0"});
  check_error([] { cr::nn::RNN(3, 2, {.dropout = 1.5}); }, {"RNN", "dropout", "1.5"});
  check_error([] { cr::nn::LSTM(3, 2, {.relu = true}); }, {"LSTM", "relu", "RNN"});
  const cr::Tensor xc = input({2, 3}), h = input({2, 2}), c = input({2, 2});
  check_error([&] { (void)F::lstm_cell(xc, h, c, input({8, 3}), input({6, 2})); }, {"lstm_cell", "w_hh", "[4 H, H]", "[6, 2]"});
  check_error([&] { (void)F::gru_cell(xc, h, input({6, 4}), input({6, 2})); }, {"gru_cell", "w_ih", "[6, 3]", "[6, 4]"});
  check_error([&] { (void)F::gru_cell(xc, input({3, 2}), input({6, 3}), input({6, 2})); }, {"gru_cell", "h must", "[2, 2]", "[3, 2]"});
  check_error([&] { (void)F::rnn_tanh_cell(xc, h, input({2, 3}), input({2, 2}), input({3})); }, {"rnn_tanh_cell", "b_ih", "[2]", "[3]"});
  check_error([&] { (void)F::lstm_cell(xc, h, cr::Tensor(), input({8, 3}), input({8, 2})); }, {"lstm_cell", "c must"});
  check_error([&] { (void)F::rnn_relu_cell(xc.to(cr::int64), h, input({2, 3}), input({2, 2})); }, {"rnn_relu_cell", "floating", "int64"});
  check_error([&] { (void)F::rnn_relu_cell(xc, h.to(cr::float32), input({2, 3}), input({2, 2})); }, {"rnn_relu_cell", "h must", "float32"});
}

TEST_CASE("a recurrent layer's and cell's reset_parameters draw from the options' generator at the time of the call") {
  // as the layers' dropout reads options.generator when it runs (and Conv's reset_parameters):
  // a generator set after construction is the one a reset draws from
  cr::Generator first(1), second(2), again(2);
  cr::nn::LSTM lstm(2, 3, {.num_layers = 2, .dtype = cr::float64, .generator = &first});
  cr::nn::GRUCell cell(2, 3, {.dtype = cr::float64, .generator = &first});
  lstm.options.generator = &second;
  lstm.reset_parameters();
  cell.options.generator = &second;
  cell.reset_parameters();
  cr::nn::LSTM lstm_from_two(2, 3, {.num_layers = 2, .dtype = cr::float64, .generator = &again});
  cr::nn::GRUCell cell_from_two(2, 3, {.dtype = cr::float64, .generator = &again});
  const auto a = lstm.parameters(), b = lstm_from_two.parameters();
  REQUIRE(a.size() == 8);
  REQUIRE(b.size() == 8);
  for (size_t i = 0; i < a.size(); ++i) CHECK(values(a[i]) == values(b[i]));
  CHECK(values(cell.weight_ih) == values(cell_from_two.weight_ih));
  CHECK(values(cell.bias_hh) == values(cell_from_two.bias_hh));
}
