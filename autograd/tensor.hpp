// Tensor: a strided view of shared storage plus the autograd state that links it into the
// graph. Scalars are 0-d tensors; there is one graph for scalars and tensors alike.
#pragma once

#include "dtype.hpp"
#include "shape.hpp"

#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

namespace chainrule {

class Tensor;
struct Node;
class Generator;

// A contiguous, 64-byte aligned buffer shared by a tensor and all its views. The version
// counter lives here because an in-place write through any view changes every view.
struct Storage {
  explicit Storage(size_t nbytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data = nullptr;
  size_t nbytes = 0;
  uint32_t version = 0;
};

using TensorHook = std::function<Tensor(const Tensor&)>;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;  // in elements
  Dtype dtype = Dtype::float32;
  bool is_view = false;

  // autograd: a leaf that requires grad has requires_grad set and no grad_fn; a non-leaf has a
  // grad_fn (the node that produced it). The accumulator is owned by the graph, not by the leaf.
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;
  std::weak_ptr<Node> grad_accumulator;
  std::shared_ptr<TensorImpl> grad;
  std::vector<TensorHook> hooks;  // leaf hooks; a non-leaf's hooks live on its grad_fn
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  bool defined() const { return impl_ != nullptr; }
  TensorImpl* impl() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

  // --- metadata ---
  const Shape& shape() const { return checked().shape; }
  const Shape& strides() const { return checked().strides; }
  int64_t size(int64_t dim) const;
  int64_t dim() const { return static_cast<int64_t>(shape().size()); }
  int64_t numel() const { return shape().numel(); }
  Dtype dtype() const { return checked().dtype; }
  int64_t storage_offset() const { return checked().offset; }
  bool is_contiguous() const;
  uint32_t version() const { return checked().storage->version; }

  // --- element access ---
  template <class T> T item() const;
  template <class T> T* data() const;                 // contiguous tensors of dtype T only
  template <class T> std::vector<T> to_vector() const;  // a copy in row-major order, any layout
  void* raw_data() const;                              // first element, any dtype

  // --- autograd ---
  bool requires_grad() const { return checked().requires_grad || checked().grad_fn != nullptr; }
  Tensor& requires_grad_(bool requires_grad = true);
  bool is_leaf() const { return checked().grad_fn == nullptr; }
  Tensor grad() const;
  Tensor& set_grad(const Tensor& grad);  // replace (or clear, with an undefined Tensor) .grad
  const std::shared_ptr<Node>& grad_fn() const { return checked().grad_fn; }
  void backward(const Tensor& gradient = {}, bool retain_graph = false, bool create_graph = false) const;
  Tensor detach() const;
  // Replaces this tensor's data (storage, shape, dtype) with `data`'s, keeping its identity
  // and requires_grad (as PyTorch's `param.data = ...`); clears .grad if the dtype changes.
  void set_data(const Tensor& data) const;
  // Registers a hook called with this tensor's gradient during backward; a defined return
  // value replaces the gradient.
  void register_hook(TensorHook hook) const;
  void retain_grad() const;  // keep .grad on a non-leaf after backward

  // --- conversion and copies ---
  Tensor to(Dtype dtype) const;
  Tensor contiguous() const;
  Tensor clone() const;

  // --- shape ops (views where possible) ---
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const;
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor t() const;
  Tensor transpose(int64_t dim0, int64_t dim1) const;
  Tensor permute(const Shape& dims) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor slice(int64_t dim, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step = 1) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor operator[](int64_t index) const { return select(0, index); }

  // --- reductions as methods, for readability ---
  Tensor sum() const;
  Tensor mean() const;

  // --- in place (bump the version counter) ---
  Tensor& add_(const Tensor& other, double alpha = 1.0);
  Tensor& add_(double other);
  Tensor& sub_(const Tensor& other);
  Tensor& sub_(double other);
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(double other);
  Tensor& div_(const Tensor& other);
  Tensor& div_(double other);
  Tensor& zero_();
  Tensor& fill_(double value);
  Tensor& copy_(const Tensor& src);

 private:
  const TensorImpl& checked() const;
  std::shared_ptr<TensorImpl> impl_;
};

// ---------------------------------------------------------------- factories

Tensor tensor(const std::vector<double>& values, const Shape& shape, std::optional<Dtype> dtype = {});
Tensor tensor(std::initializer_list<double> values, const Shape& shape, std::optional<Dtype> dtype = {});
Tensor tensor(std::initializer_list<double> values, std::optional<Dtype> dtype = {});  // 1-d
Tensor tensor(double value, std::optional<Dtype> dtype = {});                           // 0-d
Tensor empty(const Shape& shape, std::optional<Dtype> dtype = {});
Tensor zeros(const Shape& shape, std::optional<Dtype> dtype = {});
Tensor ones(const Shape& shape, std::optional<Dtype> dtype = {});
Tensor full(const Shape& shape, double value, std::optional<Dtype> dtype = {});
Tensor zeros_like(const Tensor& t, std::optional<Dtype> dtype = {});
Tensor ones_like(const Tensor& t, std::optional<Dtype> dtype = {});
Tensor full_like(const Tensor& t, double value, std::optional<Dtype> dtype = {});
Tensor arange(double end, std::optional<Dtype> dtype = {});
Tensor arange(double start, double end, double step = 1.0, std::optional<Dtype> dtype = {});
Tensor linspace(double start, double end, int64_t steps, std::optional<Dtype> dtype = {});
Tensor eye(int64_t n, std::optional<Dtype> dtype = {});
Tensor rand(const Shape& shape, std::optional<Dtype> dtype = {}, Generator* gen = nullptr);   // U[0, 1)
Tensor randn(const Shape& shape, std::optional<Dtype> dtype = {}, Generator* gen = nullptr);  // N(0, 1)
Tensor randint(int64_t low, int64_t high, const Shape& shape, std::optional<Dtype> dtype = {},
               Generator* gen = nullptr);  // U{low, ..., high-1}, int64 unless asked otherwise

// ---------------------------------------------------------------- elementwise
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
Tensor pow(double base, const Tensor& exponent);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor log1p(const Tensor& x);
Tensor expm1(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);  // no gradient (zero almost everywhere)
Tensor erf(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);  // condition != 0 picks a

// Comparisons return masks (1 where true, 0 elsewhere) in the promoted dtype; no gradient.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor isfinite(const Tensor& x);

// ---------------------------------------------------------------- reductions
struct ValuesIndices {
  Tensor values;
  Tensor indices;
};
Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x);
ValuesIndices max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& x);
ValuesIndices min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor amax(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor amin(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor argmax(const Tensor& x);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor var(const Tensor& x, int64_t correction = 1);
Tensor var(const Tensor& x, const Shape& dims, int64_t correction = 1, bool keepdim = false);
Tensor logsumexp(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor logsumexp(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Sums `x` over the dimensions along which `shape` was broadcast to x.shape() (the adjoint of expand).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---------------------------------------------------------------- linear algebra
Tensor matmul(const Tensor& a, const Tensor& b);

// ---------------------------------------------------------------- shape and indexing
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor permute(const Tensor& x, const Shape& dims);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x, std::optional<int64_t> dim = {});
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor slice(const Tensor& x, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step = 1);
Tensor select(const Tensor& x, int64_t dim, int64_t index);
Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
Tensor index_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& source);
Tensor to_dtype(const Tensor& x, Dtype dtype);

// ---------------------------------------------------------------- operators
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);
Tensor operator==(const Tensor& a, const Tensor& b);
Tensor operator!=(const Tensor& a, const Tensor& b);
Tensor operator<(const Tensor& a, const Tensor& b);
Tensor operator<=(const Tensor& a, const Tensor& b);
Tensor operator>(const Tensor& a, const Tensor& b);
Tensor operator>=(const Tensor& a, const Tensor& b);
Tensor operator==(const Tensor& a, double b);
Tensor operator!=(const Tensor& a, double b);
Tensor operator<(const Tensor& a, double b);
Tensor operator<=(const Tensor& a, double b);
Tensor operator>(const Tensor& a, double b);
Tensor operator>=(const Tensor& a, double b);

// A 0-d tensor holding `value` in the dtype an op with `like` should use.
Tensor scalar_like(double value, const Tensor& like);

// True when every element of a and b (same shape) satisfies |a-b| <= atol + rtol*|b|.
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8);

// Threads the BLAS library may use for matrix products (OpenBLAS; default: all cores). Set it
// to 1 when the program runs its own worker threads.
void set_num_threads(int n);
int get_num_threads();

// "[2, 3] float64" — how error messages name a tensor.
std::string describe(const Tensor& t);

}  // namespace chainrule

template <>
struct fmt::formatter<chainrule::Tensor> {
  constexpr auto parse(format_parse_context& ctx) { return ctx.begin(); }
  format_context::iterator format(const chainrule::Tensor& t, format_context& ctx) const;
};
