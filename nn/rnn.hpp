/// \file
/// Recurrent layers as PyTorch's: RNN (tanh or relu), LSTM and GRU, stacked, optionally
/// bidirectional and batch-first, with PyTorch's parameter names, shapes, gate order and
/// initialisation; the single steps as functions (functional::lstm_cell, ...) and as modules
/// (LSTMCell, ...). Each step is written with autograd ops (one matmul per step for the hidden
/// state; the input's projection is one matmul for the whole sequence), so backpropagation
/// through time and every higher derivative follow.
#pragma once

#include "module.hpp"

namespace chainrule::nn {

namespace functional {
/// One step of an Elman RNN: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh), x [N, in] (or [in]),
/// h [N, H] (or [H]), W_ih [H, in], W_hh [H, H], the biases [H] (optional). As torch.rnn_tanh_cell.
Tensor rnn_tanh_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
/// rnn_tanh_cell with relu in place of tanh.
Tensor rnn_relu_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh,
                     const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
/// One LSTM step: the new (h, c) from x, h and c, with weights [4 H, in] and [4 H, H] and biases
/// [4 H] whose row blocks are the gates i, f, g, o: c' = sigmoid(f) c + sigmoid(i) tanh(g),
/// h' = sigmoid(o) tanh(c'). As torch.lstm_cell.
std::pair<Tensor, Tensor> lstm_cell(const Tensor& x, const Tensor& h, const Tensor& c, const Tensor& w_ih,
                                    const Tensor& w_hh, const Tensor& b_ih = Tensor(), const Tensor& b_hh = Tensor());
/// One GRU step, weights [3 H, in] and [3 H, H] and biases [3 H] in blocks r, z, n:
/// r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z), n = tanh(x_n + r h_n), h' = (1 - z) n + z h,
/// where x_* and h_* are the blocks of x W_ih^T + b_ih and h W_hh^T + b_hh. As torch.gru_cell.
Tensor gru_cell(const Tensor& x, const Tensor& h, const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih = Tensor(),
                const Tensor& b_hh = Tensor());
}  // namespace functional

/// What the recurrent layers and cells share: their sizes, checks, step weights (PyTorch's
/// names, shapes and gate blocks) and initialisation.
class RecurrentBase : public Module {
 public:
  void reset_parameters() override;  ///< every parameter from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))

  int64_t input_size;  ///< the input's features
  int64_t hidden_size;  ///< H

 protected:
  /// One step's parameters; the biases undefined without bias.
  struct StepWeights {
    Tensor w_ih;  ///< [G H, in]
    Tensor w_hh;  ///< [G H, H]
    Tensor b_ih;  ///< [G H]
    Tensor b_hh;  ///< [G H]
  };
  /// `gates` blocks of hidden_size rows in each weight (G: 1 for RNN, 4 LSTM, 3 GRU); `relu`
  /// only with one gate; `name` for printouts and errors.
  RecurrentBase(const char* name, int64_t gates, int64_t input_size, int64_t hidden_size, bool relu);
  /// Registers weight_ih{suffix} [G H, in], weight_hh{suffix} [G H, H] and, with `bias`,
  /// bias_ih{suffix} and bias_hh{suffix} [G H] (uninitialised: the constructor that calls it
  /// ends with reset_parameters()).
  StepWeights add_step_weights(const std::string& suffix, int64_t in, bool bias, Dtype dtype);
  /// The options' generator, read when reset_parameters() runs.
  virtual Generator* generator() const = 0;

  const char* name_;  ///< "LSTM", "GRUCell", ...

 private:
  int64_t gates_;
};

/// The recurrent layers' options (PyTorch's RNNOptions, LSTMOptions and GRUOptions in one).
struct RNNOptions {
  int64_t num_layers = 1;  ///< stacked layers, each reading the previous one's output sequence
  bool bias = true;  ///< learn bias_ih and bias_hh
  bool batch_first = false;  ///< input and output as [N, L, features] instead of [L, N, features]
  double dropout = 0.0;  ///< dropout on every layer's output but the last one's, while training
  bool bidirectional = false;  ///< a second direction per layer reading the sequence backwards; outputs joined
  /// RNN only: h' = tanh(...) or, with relu, relu(...)
  bool relu = false;
  std::optional<Dtype> dtype = {};  ///< parameter dtype (default: the default dtype)
  Generator* generator = nullptr;  ///< initialisation and dropout randomness (default: the global generator)
};

/// What a recurrent layer returns. With D = 2 when bidirectional (else 1) and H = hidden_size:
struct RNNOutput {
  /// The last layer's hidden state at every step, both directions joined: [L, N, D H]
  /// ([N, L, D H] with batch_first, [L, D H] for an unbatched input)
  Tensor output;
  Tensor h_n;  ///< every layer's and direction's last hidden state: [num_layers D, N, H] ([num_layers D, H] unbatched)
  Tensor c_n;  ///< LSTM: the last cell states, shaped as h_n; undefined for RNN and GRU
};

/// What RNN, LSTM and GRU share: parameters, checks, the loop over layers, directions and steps.
/// Layer k's parameters, as PyTorch names them (the backward direction's end in "_reverse"):
/// weight_ih_l{k} [G H, in] (in = input_size for k = 0, else D H), weight_hh_l{k} [G H, H],
/// bias_ih_l{k} and bias_hh_l{k} [G H], with G = 1 (RNN), 4 (LSTM: gates i, f, g, o) or 3
/// (GRU: r, z, n), all drawn from U(-1/sqrt(H), 1/sqrt(H)).
class RNNBase : public RecurrentBase {
 public:
  /// The output sequence alone (RNNOutput::output), from zero initial states: lets a recurrent
  /// layer sit in a Sequential.
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()).output; }
  /// x [L, N, input_size] ([N, L, input_size] with batch_first, or unbatched [L, input_size]);
  /// h0 (and c0 for LSTM, given together) the initial states shaped as RNNOutput::h_n, zeros
  /// where undefined.
  RNNOutput forward(const Tensor& x, const Tensor& h0, const Tensor& c0 = Tensor());
  /// "LSTM(10, 20, num_layers=2, bias=true, batch_first=false, dropout=0, bidirectional=false)"
  std::string repr() const override;

  RNNOptions options;  ///< as constructed

 protected:
  /// `gates` blocks of hidden_size rows in each weight; `cell`: a cell state beside the hidden
  /// state (LSTM); `name` for printouts and errors.
  RNNBase(const char* name, int64_t gates, bool cell, int64_t input_size, int64_t hidden_size, RNNOptions options);
  /// One step: the new hidden state (and cell state, LSTM) from the input's projection xw
  /// (x W_ih^T + b_ih, [N, G H]), the hidden state's hw (h W_hh^T + b_hh, [N, G H]), h and c.
  virtual std::pair<Tensor, Tensor> step(const Tensor& xw, const Tensor& hw, const Tensor& h, const Tensor& c) const = 0;

 private:
  Generator* generator() const override { return options.generator; }
  std::vector<StepWeights> weights_;  ///< per layer and direction, layer-major
  bool cell_;
};

/// Elman RNN: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (relu with RNNOptions::relu).
class RNN : public RNNBase {
 public:
  /// input_size and hidden_size positive
  RNN(int64_t input_size, int64_t hidden_size, RNNOptions options = {});

 private:
  std::pair<Tensor, Tensor> step(const Tensor& xw, const Tensor& hw, const Tensor& h, const Tensor& c) const override;
};

/// Long short-term memory: gates i, f, o = sigmoid, g = tanh of x W_ih^T + b_ih + h W_hh^T + b_hh
/// (in that order along the rows), c' = f c + i g, h' = o tanh(c').
class LSTM : public RNNBase {
 public:
  /// input_size and hidden_size positive
  LSTM(int64_t input_size, int64_t hidden_size, RNNOptions options = {});

 private:
  std::pair<Tensor, Tensor> step(const Tensor& xw, const Tensor& hw, const Tensor& h, const Tensor& c) const override;
};

/// Gated recurrent unit: r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z), n = tanh(x_n + r h_n),
/// h' = (1 - z) n + z h, where x_* and h_* are the gate's rows of x W_ih^T + b_ih and h W_hh^T + b_hh.
class GRU : public RNNBase {
 public:
  /// input_size and hidden_size positive
  GRU(int64_t input_size, int64_t hidden_size, RNNOptions options = {});

 private:
  std::pair<Tensor, Tensor> step(const Tensor& xw, const Tensor& hw, const Tensor& h, const Tensor& c) const override;
};

/// RNNCell's, LSTMCell's and GRUCell's options.
struct RNNCellOptions {
  bool bias = true;  ///< learn bias_ih and bias_hh
  bool relu = false;  ///< RNNCell only: relu in place of tanh
  std::optional<Dtype> dtype = {};  ///< parameter dtype (default: the default dtype)
  Generator* generator = nullptr;  ///< initialisation randomness (default: the global generator)
};

/// What RNNCell, LSTMCell and GRUCell share: one step's parameters weight_ih [G H, input_size],
/// weight_hh [G H, H], bias_ih and bias_hh [G H], drawn from U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's.
/// For loops a recurrent layer does not cover (a decoder feeding back its own output).
class RNNCellBase : public RecurrentBase {
 public:
  std::string repr() const override;  ///< "LSTMCell(3, 4)", with ", bias=false" and RNNCell's ", nonlinearity=relu"

  Tensor weight_ih;  ///< [G H, input_size]
  Tensor weight_hh;  ///< [G H, hidden_size]
  Tensor bias_ih;  ///< [G H]; undefined without bias
  Tensor bias_hh;  ///< [G H]; undefined without bias
  RNNCellOptions options;  ///< as constructed

 protected:
  /// `gates` blocks of hidden_size rows in each weight; `name` for printouts and errors.
  RNNCellBase(const char* name, int64_t gates, int64_t input_size, int64_t hidden_size, RNNCellOptions options);
  /// `state` itself, or zeros [N, H] ([H]) for x [N, in] ([in]) where it is undefined.
  Tensor or_zeros(const Tensor& state, const Tensor& x) const;

 private:
  Generator* generator() const override { return options.generator; }
};

/// functional::rnn_tanh_cell (rnn_relu_cell with RNNCellOptions::relu) with its own parameters.
class RNNCell : public RNNCellBase {
 public:
  /// input_size and hidden_size positive
  RNNCell(int64_t input_size, int64_t hidden_size, RNNCellOptions options = {});
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()); }  ///< from h = 0
  /// The next hidden state from x [N, input_size] (or [input_size]) and h [N, H] (zeros if undefined).
  Tensor forward(const Tensor& x, const Tensor& h);
};

/// functional::lstm_cell with its own parameters.
class LSTMCell : public RNNCellBase {
 public:
  /// input_size and hidden_size positive
  LSTMCell(int64_t input_size, int64_t hidden_size, RNNCellOptions options = {});
  Tensor forward(const Tensor& x) override { return forward(x, Tensor(), Tensor()).first; }  ///< h' from h = c = 0
  /// The next (h, c) from x [N, input_size] (or [input_size]), h and c [N, H] (given together; zeros if undefined).
  std::pair<Tensor, Tensor> forward(const Tensor& x, const Tensor& h, const Tensor& c);
};

/// functional::gru_cell with its own parameters.
class GRUCell : public RNNCellBase {
 public:
  /// input_size and hidden_size positive
  GRUCell(int64_t input_size, int64_t hidden_size, RNNCellOptions options = {});
  Tensor forward(const Tensor& x) override { return forward(x, Tensor()); }  ///< from h = 0
  /// The next hidden state from x [N, input_size] (or [input_size]) and h [N, H] (zeros if undefined).
  Tensor forward(const Tensor& x, const Tensor& h);
};

}  // namespace chainrule::nn
