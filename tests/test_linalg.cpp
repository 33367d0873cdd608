// matmul: PyTorch's semantics for every rank combination, values against a naive triple
// loop, transposed operands handed to BLAS without copies, and gradients.
#include "helpers.hpp"

namespace {
// Independent reference: a plain loop over row-major copies.
std::vector<double> naive_mm(const cr::Tensor& a, const cr::Tensor& b) {
  const auto va = values(a), vb = values(b);
  const int64_t n = a.size(0), k = a.size(1), m = b.size(1);
  std::vector<double> c(static_cast<size_t>(n * m), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < m; ++j)
      for (int64_t p = 0; p < k; ++p) c[i * m + j] += va[i * k + p] * vb[p * m + j];
  return c;
}
void check_close(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(tol));
}
}  // namespace

TEST_CASE("matmul 2-d x 2-d, including transposed operands, float32 and float64") {
  for (auto dtype : {cr::float32, cr::float64}) {
    cr::Generator g(3);
    const cr::Tensor a = cr::randn({5, 7}, dtype, &g), b = cr::randn({7, 3}, dtype, &g);
    check_close(values(cr::matmul(a, b)), naive_mm(a, b), dtype == cr::float32 ? 1e-5 : 1e-12);
    const cr::Tensor at = cr::randn({7, 5}, dtype, &g).t(), bt = cr::randn({3, 7}, dtype, &g).t();
    CHECK_FALSE(at.is_contiguous());
    check_close(values(cr::matmul(at, bt)), naive_mm(at.contiguous(), bt.contiguous()),
                dtype == cr::float32 ? 1e-5 : 1e-12);
    const cr::Tensor sliced = cr::randn({5, 10}, dtype, &g).slice(1, 1, 8);  // row stride 10, not 7
    check_close(values(cr::matmul(sliced, b)), naive_mm(sliced.contiguous(), b), dtype == cr::float32 ? 1e-5 : 1e-12);
  }
}

TEST_CASE("matmul ranks: 1-d . 1-d, 1-d . 2-d, 2-d . 1-d, batched with broadcast batch dims") {
  cr::Tensor v = cr::tensor({1, 2, 3}, cr::float64), w = cr::tensor({4, 5, 6}, cr::float64);
  CHECK(cr::matmul(v, w).dim() == 0);
  CHECK(cr::matmul(v, w).item<double>() == 32);
  cr::Tensor m = cr::arange(6, cr::float64).reshape({3, 2});
  CHECK(cr::matmul(v, m).shape() == cr::Shape{2});
  CHECK(values(cr::matmul(v, m)) == std::vector<double>{16, 22});
  CHECK(values(cr::matmul(m.t(), v)) == std::vector<double>{16, 22});
  cr::Generator g(5);
  cr::Tensor A = cr::randn({2, 1, 4, 3}, cr::float64, &g), B = cr::randn({5, 3, 2}, cr::float64, &g);
  cr::Tensor C = cr::matmul(A, B);
  CHECK(C.shape() == cr::Shape{2, 5, 4, 2});
  check_close(values(C.select(0, 1).select(0, 3)), naive_mm(A.select(0, 1).select(0, 0), B.select(0, 3)));
  cr::Tensor I = cr::tensor({1, 2, 3, 4}, {2, 2}, cr::int64);
  CHECK(cr::matmul(I, I).to_vector<int64_t>() == std::vector<int64_t>{7, 10, 15, 22});
}

TEST_CASE("matmul gradients at every rank combination") {
  const std::vector<std::pair<cr::Shape, cr::Shape>> shapes = {
      {{3}, {3}}, {{3}, {3, 2}}, {{2, 3}, {3}}, {{2, 3}, {3, 4}}, {{2, 2, 3}, {3, 2}}, {{2, 1, 2, 3}, {3, 3, 2}}};
  for (const auto& [sa, sb] : shapes) {
    CAPTURE(sa);
    CAPTURE(sb);
    check_gradients([](const std::vector<cr::Tensor>& v) { return cr::matmul(v[0], v[1]); },
                    {input(sa, -1, 1, 21), input(sb, -1, 1, 22)});
  }
  const cr::Tensor at = input({3, 2}, -1, 1, 23).detach().t().requires_grad_();
  check_gradients([](const std::vector<cr::Tensor>& v) { return cr::matmul(v[0], v[1]); }, {at, input({3, 4})});
}

TEST_CASE("matmul errors name the shapes") {
  check_error([] { (void)cr::matmul(cr::zeros({2, 3}), cr::zeros({4, 2})); }, {"matmul", "inner", "[2, 3]", "[4, 2]"});
  check_error([] { (void)cr::matmul(cr::zeros({3}), cr::zeros({4})); }, {"matmul", "[3]", "[4]"});
  check_error([] { (void)cr::matmul(cr::zeros({2, 2}, cr::float32), cr::zeros({2, 2}, cr::float64)); },
              {"matmul", "float32", "float64"});
  check_error([] { (void)cr::matmul(cr::zeros({2, 3, 4}), cr::zeros({5, 4, 2})); }, {"matmul", "[2]", "[5]"});
  check_error([] { (void)cr::matmul(cr::tensor(1.0), cr::zeros({2})); }, {"matmul", "at least one dimension"});
}

TEST_CASE("matmul with zero-size dimensions") {
  CHECK(cr::matmul(cr::zeros({0, 3}), cr::zeros({3, 2})).shape() == cr::Shape{0, 2});
  CHECK(values(cr::matmul(cr::ones({2, 0}), cr::ones({0, 2}))) == std::vector<double>{0, 0, 0, 0});
}
