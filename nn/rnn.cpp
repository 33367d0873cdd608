#include "rnn.hpp"

#include "functional.hpp"
#include "init.hpp"

#include <cmath>
#include <tuple>

namespace chainrule::nn {

namespace {
// Each cell's rule from the two projections xw = x W_ih^T + b_ih and hw = h W_hh^T + b_hh: one
// home for the modules (which project a whole sequence's input in one matmul) and the cells.
Tensor rnn_rule(const Tensor& xw, const Tensor& hw, bool use_relu) {
  const Tensor pre = xw + hw;
  return use_relu ? relu(pre) : tanh(pre);
}

std::pair<Tensor, Tensor> lstm_rule(const Tensor& xw, const Tensor& hw, const Tensor& c) {
  const std::vector<Tensor> g = chunk(xw + hw, 4, -1);  // i, f, g, o
  const Tensor c_next = sigmoid(g[1]) * c + sigmoid(g[0]) * tanh(g[2]);
  return {sigmoid(g[3]) * tanh(c_next), c_next};
}

Tensor gru_rule(const Tensor& xw, const Tensor& hw, const Tensor& h) {
  const std::vector<Tensor> x3 = chunk(xw, 3, -1), h3 = chunk(hw, 3, -1);  // r, z, n
  const Tensor r = sigmoid(x3[0] + h3[0]), z = sigmoid(x3[1] + h3[1]);
  const Tensor candidate = tanh(x3[2] + r * h3[2]);
  return (1.0 - z) * candidate + z * h;
}

// A cell's operands: x [N, in] or [in], h (and c) [N, H] or [H], w_ih [G H, in], w_hh [G H, H],
// the biases [G H] where given, one floating dtype. Returns (xw, hw).
std::pair<Tensor, Tensor> project(const char* op, int64_t gates, const Tensor& x, const Tensor& h, const Tensor* c,
                                  const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh) {
  const auto operands = [&] {
    return fmt::format("x {}, h {}, w_ih {}, w_hh {}", describe(x), describe(h), describe(w_ih), describe(w_hh));
  };
  if (!x.defined() || (x.dim() != 1 && x.dim() != 2) || !is_floating(x.dtype()))
    fail("{}: x must be a floating [N, in] or [in] tensor ({})", op, operands());
  if (!w_hh.defined() || w_hh.dim() != 2 || w_hh.size(0) != gates * w_hh.size(1))
    fail("{}: w_hh must be [{} H, H] ({})", op, gates, operands());
  const int64_t hidden = w_hh.size(1);
  const Shape state = x.dim() == 2 ? Shape{x.size(0), hidden} : Shape{hidden};
  struct Expected {
    const Tensor* t;
    const char* what;
    Shape shape;
    bool needed;
  };
  for (const Expected& e : {Expected{&w_ih, "w_ih", {gates * hidden, x.size(-1)}, true}, {&w_hh, "w_hh", w_hh.shape(), true},
                            {&h, "h", state, true}, {c, "c", state, c != nullptr}, {&b_ih, "b_ih", {gates * hidden}, false},
                            {&b_hh, "b_hh", {gates * hidden}, false}}) {
    if (e.t == nullptr || (!e.needed && !e.t->defined())) continue;
    if (!e.t->defined() || e.t->shape() != e.shape || e.t->dtype() != x.dtype())
      fail("{}: {} must be a {} tensor of shape {}, got {} ({})", op, e.what, x.dtype(), e.shape, describe(*e.t),
           operands());
  }
  return {linear(x, w_ih, b_ih), linear(h, w_hh, b_hh)};
}
}  // namespace

namespace functional {
Tensor rnn_tanh_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                     const Tensor& b_hh) {
  const auto [xw, hw] = project("rnn_tanh_cell", 1, x, h, nullptr, w_ih, w_hh, b_ih, b_hh);
  return rnn_rule(xw, hw, false);
}

Tensor rnn_relu_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                     const Tensor& b_hh) {
  const auto [xw, hw] = project("rnn_relu_cell", 1, x, h, nullptr, w_ih, w_hh, b_ih, b_hh);
  return rnn_rule(xw, hw, true);
}

std::pair<Tensor, Tensor> lstm_cell(const Tensor& x, const Tensor& h, const Tensor& c, const Tensor& w_ih,
                                    const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh) {
  const auto [xw, hw] = project("lstm_cell", 4, x, h, &c, w_ih, w_hh, b_ih, b_hh);
  return lstm_rule(xw, hw, c);
}

Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                const Tensor& b_hh) {
  const auto [xw, hw] = project("gru_cell", 3, x, h, nullptr, w_ih, w_hh, b_ih, b_hh);
  return gru_rule(xw, hw, h);
}
}  // namespace functional

RecurrentBase::RecurrentBase(const char* name, int64_t gates, int64_t input_size, int64_t hidden_size, bool relu)
    : input_size(input_size), hidden_size(hidden_size), name_(name), gates_(gates) {
  if (input_size <= 0 || hidden_size <= 0)
    fail("{}: input_size ({}) and hidden_size ({}) must be positive", name, input_size, hidden_size);
  if (relu && gates != 1) fail("{}: relu is an option of RNN and RNNCell; {}'s gates are fixed", name, name);
}

RecurrentBase::StepWeights RecurrentBase::add_step_weights(const std::string& suffix, int64_t in, bool bias,
                                                            Dtype dtype) {
  const int64_t rows = gates_ * hidden_size;
  StepWeights w;
  w.w_ih = register_parameter("weight_ih" + suffix, empty({rows, in}, dtype));
  w.w_hh = register_parameter("weight_hh" + suffix, empty({rows, hidden_size}, dtype));
  if (bias) {
    w.b_ih = register_parameter("bias_ih" + suffix, empty({rows}, dtype));
    w.b_hh = register_parameter("bias_hh" + suffix, empty({rows}, dtype));
  }
  return w;
}

void RecurrentBase::reset_parameters() {
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size));
  for (Tensor p : parameters()) init::uniform_(p, -bound, bound, generator());
}

RNNBase::RNNBase(const char* name, int64_t gates, bool cell, int64_t input_size, int64_t hidden_size, RNNOptions options)
    : RecurrentBase(name, gates, input_size, hidden_size, options.relu), options(options), cell_(cell) {
  if (options.num_layers <= 0) fail("{}: num_layers must be positive, got {}", name, options.num_layers);
  if (!(options.dropout >= 0 && options.dropout <= 1)) fail("{}: dropout must be in [0, 1], got {}", name, options.dropout);
  const Dtype dtype = options.dtype.value_or(default_dtype());
  const int64_t dirs = options.bidirectional ? 2 : 1;
  for (int64_t layer = 0; layer < options.num_layers; ++layer)
    for (int64_t dir = 0; dir < dirs; ++dir)
      weights_.push_back(add_step_weights(fmt::format("_l{}{}", layer, dir == 1 ? "_reverse" : ""),
                                          layer == 0 ? input_size : dirs * hidden_size, options.bias, dtype));
  reset_parameters();
}

RNNOutput RNNBase::forward(const Tensor& input, const Tensor& h0, const Tensor& c0) {
  const int64_t dirs = options.bidirectional ? 2 : 1, states = options.num_layers * dirs;
  const Dtype dtype = weights_[0].w_ih.dtype();
  if ((input.dim() != 2 && input.dim() != 3) || input.size(-1) != input_size || input.dtype() != dtype)
    fail("{}: input {} must be a {} tensor {} with {} features ({})", name_, describe(input), dtype,
         options.batch_first ? "[N, L, features] or [L, features]" : "[L, N, features] or [L, features]", input_size,
         repr());
  const bool batched = input.dim() == 3;
  // [L, N, features] inside
  Tensor x = !batched ? input.unsqueeze(1) : options.batch_first ? input.transpose(0, 1) : input;
  const int64_t steps = x.size(0), n = x.size(1);
  if (steps == 0) fail("{}: input {} has no steps ({})", name_, describe(input), repr());
  if (!cell_ && c0.defined()) fail("{}: c0 is given, but only LSTM has a cell state (input {})", name_, describe(input));
  if (cell_ && h0.defined() != c0.defined())
    fail("{}: h0 and c0 must be given together (input {})", name_, describe(input));
  const Shape state_shape = batched ? Shape{states, n, hidden_size} : Shape{states, hidden_size};
  for (const auto& [s, what] : {std::pair{&h0, "h0"}, {&c0, "c0"}})
    if (s->defined() && (s->shape() != state_shape || s->dtype() != dtype))
      fail("{}: {} must be a {} tensor of shape {} for input {}, got {} ({})", name_, what, dtype, state_shape,
           describe(input), describe(*s), repr());
  const auto initial = [&](const Tensor& s) {
    return !s.defined() ? zeros({states, n, hidden_size}, dtype) : batched ? s : s.unsqueeze(1);
  };
  const Tensor h_init = initial(h0), c_init = cell_ ? initial(c0) : Tensor();
  std::vector<Tensor> h_last, c_last;
  for (int64_t layer = 0; layer < options.num_layers; ++layer) {
    std::vector<Tensor> outputs;  // one [L, N, H] per direction
    for (int64_t dir = 0; dir < dirs; ++dir) {
      const int64_t k = layer * dirs + dir;
      const StepWeights& w = weights_[static_cast<size_t>(k)];
      const Tensor xw = linear(x, w.w_ih, w.b_ih);  // the whole sequence's input projection in one matmul
      Tensor h = h_init.select(0, k), c = cell_ ? c_init.select(0, k) : Tensor();
      std::vector<Tensor> hs(static_cast<size_t>(steps));
      for (int64_t i = 0; i < steps; ++i) {
        const int64_t t = dir == 0 ? i : steps - 1 - i;  // the reverse direction reads the sequence backwards
        std::tie(h, c) = step(xw.select(0, t), linear(h, w.w_hh, w.b_hh), h, c);
        hs[static_cast<size_t>(t)] = h;
      }
      outputs.push_back(stack(hs, 0));
      h_last.push_back(h);
      if (cell_) c_last.push_back(c);
    }
    x = dirs == 1 ? outputs[0] : cat(outputs, 2);
    if (options.dropout > 0 && layer + 1 < options.num_layers)
      x = functional::dropout(x, options.dropout, is_training(), options.generator);
  }
  RNNOutput out{!batched ? x.squeeze(1) : options.batch_first ? x.transpose(0, 1) : x, stack(h_last, 0),
                cell_ ? stack(c_last, 0) : Tensor()};
  if (!batched) {
    out.h_n = out.h_n.squeeze(1);
    if (cell_) out.c_n = out.c_n.squeeze(1);
  }
  return out;
}

std::string RNNBase::repr() const {
  std::string s = fmt::format("{}({}, {}", name_, input_size, hidden_size);
  if (options.num_layers != 1) s += fmt::format(", num_layers={}", options.num_layers);
  if (options.relu) s += ", nonlinearity=relu";
  if (!options.bias) s += ", bias=false";
  if (options.batch_first) s += ", batch_first=true";
  if (options.dropout != 0) s += fmt::format(", dropout={}", options.dropout);
  if (options.bidirectional) s += ", bidirectional=true";
  return s + ")";
}

RNN::RNN(int64_t input_size, int64_t hidden_size, RNNOptions options)
    : RNNBase("RNN", 1, false, input_size, hidden_size, options) {}

std::pair<Tensor, Tensor> RNN::step(const Tensor& xw, const Tensor& hw, const Tensor&, const Tensor&) const {
  return {rnn_rule(xw, hw, options.relu), Tensor()};
}

LSTM::LSTM(int64_t input_size, int64_t hidden_size, RNNOptions options)
    : RNNBase("LSTM", 4, true, input_size, hidden_size, options) {}

std::pair<Tensor, Tensor> LSTM::step(const Tensor& xw, const Tensor& hw, const Tensor&, const Tensor& c) const {
  return lstm_rule(xw, hw, c);
}

GRU::GRU(int64_t input_size, int64_t hidden_size, RNNOptions options)
    : RNNBase("GRU", 3, false, input_size, hidden_size, options) {}

std::pair<Tensor, Tensor> GRU::step(const Tensor& xw, const Tensor& hw, const Tensor& h, const Tensor&) const {
  return {gru_rule(xw, hw, h), Tensor()};
}

RNNCellBase::RNNCellBase(const char* name, int64_t gates, int64_t input_size, int64_t hidden_size,
                         RNNCellOptions options)
    : RecurrentBase(name, gates, input_size, hidden_size, options.relu), options(options) {
  const StepWeights w = add_step_weights("", input_size, options.bias, options.dtype.value_or(default_dtype()));
  weight_ih = w.w_ih, weight_hh = w.w_hh, bias_ih = w.b_ih, bias_hh = w.b_hh;
  reset_parameters();
}

Tensor RNNCellBase::or_zeros(const Tensor& state, const Tensor& x) const {
  if (state.defined()) return state;
  return zeros(x.dim() == 2 ? Shape{x.size(0), hidden_size} : Shape{hidden_size}, weight_hh.dtype());
}

std::string RNNCellBase::repr() const {
  return fmt::format("{}({}, {}{}{})", name_, input_size, hidden_size, options.relu ? ", nonlinearity=relu" : "",
                     options.bias ? "" : ", bias=false");
}

RNNCell::RNNCell(int64_t input_size, int64_t hidden_size, RNNCellOptions options)
    : RNNCellBase("RNNCell", 1, input_size, hidden_size, options) {}

Tensor RNNCell::forward(const Tensor& x, const Tensor& h) {
  const auto cell = options.relu ? functional::rnn_relu_cell : functional::rnn_tanh_cell;
  return cell(x, or_zeros(h, x), weight_ih, weight_hh, bias_ih, bias_hh);
}

LSTMCell::LSTMCell(int64_t input_size, int64_t hidden_size, RNNCellOptions options)
    : RNNCellBase("LSTMCell", 4, input_size, hidden_size, options) {}

std::pair<Tensor, Tensor> LSTMCell::forward(const Tensor& x, const Tensor& h, const Tensor& c) {
  if (h.defined() != c.defined()) fail("LSTMCell: h and c must be given together (input {})", describe(x));
  return functional::lstm_cell(x, or_zeros(h, x), or_zeros(c, x), weight_ih, weight_hh, bias_ih, bias_hh);
}

GRUCell::GRUCell(int64_t input_size, int64_t hidden_size, RNNCellOptions options)
    : RNNCellBase("GRUCell", 3, input_size, hidden_size, options) {}

Tensor GRUCell::forward(const Tensor& x, const Tensor& h) {
  return functional::gru_cell(x, or_zeros(h, x), weight_ih, weight_hh, bias_ih, bias_hh);
}

}  // namespace chainrule::nn
