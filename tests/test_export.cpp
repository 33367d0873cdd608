// Seeing the graph (to_string, to_dot) and the library version.
#include "helpers.hpp"

#include <regex>
#include <sstream>

namespace A = cr::autograd;

TEST_CASE("to_string prints the expression a user would write") {
  const cr::Tensor X = cr::tensor({0, 0, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1}, {4, 3}, cr::float64);
  const cr::Tensor y = cr::tensor({0, 1, 1, 0}, {4, 1}, cr::float64);
  const cr::Tensor W1 = cr::rand({3, 4}, cr::float64).requires_grad_(), W2 = cr::rand({4, 1}, cr::float64).requires_grad_();
  const cr::Tensor loss = cr::sum(cr::pow(y - cr::sigmoid(cr::matmul(cr::sigmoid(cr::matmul(X, W1)), W2)), 2));
  CHECK(A::to_string(loss, {{X, "X"}, {y, "y"}, {W1, "W1"}, {W2, "W2"}}) ==
        "sum(pow(sub(y, sigmoid(matmul(sigmoid(matmul(X, W1)), W2))), 2))");
  CHECK(A::to_string(loss) == "sum(pow(sub(const[4, 1], sigmoid(matmul(sigmoid(matmul(const[4, 3], t0)), t1))), 2))");
}

TEST_CASE("to_string names a shared subexpression once") {
  const cr::Tensor x = cr::ones({3}, cr::float64).requires_grad_(), w = cr::ones({3}, cr::float64).requires_grad_();
  const cr::Tensor h = cr::tanh(x * w);
  CHECK(A::to_string(cr::sum(h * h + h * 2.0), {{x, "x"}, {w, "w"}}) ==
        "h1 = tanh(mul(x, w))\nsum(add(mul(h1, h1), mul(h1, 2)))");
  CHECK(A::to_string(x, {{x, "x"}}) == "x");
}

TEST_CASE("to_dot: ops, leaves with values and gradients, constants, and finite differences beside them") {
  const cr::Tensor X = cr::tensor({1, 2, 3, 4}, {2, 2}, cr::float64);
  cr::Tensor W = cr::tensor({0.5, -0.5}, {2, 1}, cr::float64).requires_grad_();
  cr::Tensor out = cr::sum(cr::tanh(cr::matmul(X, W)));
  out.backward();
  const std::string dot = A::to_dot(out, {.names = {{W, "W"}, {X, "X"}}});
  for (const char* part : {"digraph chainrule", "matmul\\n[2, 1] float64", "tanh", "W\\n[2, 1] float64", "grad ",
                           "X\\n[2, 2]", "-> out"})
    CHECK(dot.find(part) != std::string::npos);
  // the overload computes finite differences per leaf and shows them beside the analytic gradient
  const std::string both = A::to_dot([&](const std::vector<cr::Tensor>& v) { return cr::tanh(cr::matmul(X, v[0])); },
                                     {W}, {{W, "W"}});
  CHECK(both.find("finite diff") != std::string::npos);
  const std::regex grad(R"(grad \[(-?[0-9.e-]+), (-?[0-9.e-]+)\])"), fd(R"(finite diff \[(-?[0-9.e-]+), (-?[0-9.e-]+)\])");
  std::smatch g, f;
  REQUIRE(std::regex_search(both, g, grad));
  REQUIRE(std::regex_search(both, f, fd));
  CHECK(g[1] == f[1]);
  CHECK(g[2] == f[2]);
}

TEST_CASE("to_dot escapes names, so any name gives a valid DOT file") {
  // A quote in a tensor's or a custom function's name ended the label early (an invalid file).
  cr::Tensor w = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  const cr::Tensor y = A::apply_function(
      "my\"fn", [](A::FunctionContext&, const std::vector<cr::Tensor>& in) { return in[0] * 2.0; },
      [](A::FunctionContext&, const cr::Tensor& g) -> std::vector<cr::Tensor> { return {g * 2.0}; }, {w});
  const std::string dot = A::to_dot(cr::sum(y), {.names = {{w, "W\"1\\x\nrow"}}});
  CHECK(dot.find(R"(label="W\"1\\x\nrow\n[2] float64)") != std::string::npos);
  CHECK(dot.find(R"(label="my\"fn\n[2] float64")") != std::string::npos);
  // every label is one well-formed DOT string: unescaped quotes come in pairs on each line
  std::istringstream lines(dot);
  for (std::string line; std::getline(lines, line);) {
    int quotes = 0;
    for (size_t i = 0; i < line.size(); ++i)
      if (line[i] == '"' && (i == 0 || line[i - 1] != '\\')) ++quotes;
    CHECK_MESSAGE(quotes % 2 == 0, line);
  }
  check_error([] { (void)A::to_dot(cr::Tensor()); }, {"to_dot", "undefined"});
  check_error([] { (void)A::to_string(cr::Tensor()); }, {"to_string", "undefined"});
}

TEST_CASE("a graph recorded before its leaf was given data of another shape prints that leaf as let go") {
  // set_data to another shape drops the leaf's accumulator, which forgets the leaf (the graph
  // sends it no gradient): the graph still shows an input there, not an op
  cr::Tensor w = cr::tensor({1.0, 2.0}, cr::float64).requires_grad_();
  const cr::Tensor y = w * 3.0;
  w.set_data(cr::ones({3}, cr::float64));
  CHECK(A::to_string(y, {{w, "w"}}) == "mul(t0, 3)");
  const std::string dot = A::to_dot(y, {.names = {{w, "w"}}});
  CHECK(dot.find(R"(label="leaf (let go)\n[2] float64")") != std::string::npos);
  CHECK(dot.find("accumulate_grad") == std::string::npos);
}

TEST_CASE("version") {
  CHECK(std::string(cr::version()) == CHAINRULE_VERSION);
  CHECK(std::regex_match(std::string(cr::version()), std::regex(R"(\d+\.\d+\.\d+)")));
  CHECK(CHAINRULE_VERSION_MAJOR == 0);
}
