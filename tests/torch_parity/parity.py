"""Compares chainrule against PyTorch: runs the parity program (parity.cpp), computes the same
cases with torch (python3-torch, float64) and reports every number that differs.

Usage: parity.py PARITY_EXECUTABLE. Exit 0: every case agrees, apart from the deviations listed
in DEVIATIONS (each of which must still be seen, so the list stays true); 1: a difference;
77: torch is not installed (the test is skipped).
"""
import math
import warnings
import subprocess
import sys

from torch_or_skip import F, torch
warnings.filterwarnings("ignore", message="reduction: 'mean' divides")  # kl_div_mean asks for it on purpose
O = torch.optim
I, N = math.inf, math.nan
KX = [-25, -3, -1, -0.5, -1e-3, 0, 1e-3, 0.5, 1, 1.5, 3, 25]

# Differences chosen on purpose (docs/reliability.md), as (case, part, element index): chainrule's
# choice is the first, PyTorch's the second.
DEVIATIONS = {
    # amax of a row holding a NaN: the gradient goes to the NaN, as torch.max(x) does; PyTorch's
    # amax divides by a count of 0 and gives the whole row NaN
    ("amax_nan", "g", 0): "the NaN row's other element gets 0 (PyTorch: NaN)",
    ("amax_nan", "g", 1): "the NaN gets the gradient (PyTorch: NaN)",
    # an infinite gradient into amax (sqrt' at 0): the row's other elements get 0, as from max and
    # max(dim); PyTorch's amax multiplies by its mask, inf * 0
    ("sqrt_amax", "g", 8): "a non-extreme element of a row with an infinite gradient gets 0 (PyTorch: NaN)",
    ("sqrt_amax", "g", 9): "a non-extreme element of a row with an infinite gradient gets 0 (PyTorch: NaN)",
    ("sqrt_amax", "g", 10): "a non-extreme element of a row with an infinite gradient gets 0 (PyTorch: NaN)",
    ("sqrt_amax", "h", 8): "a non-extreme element of a row with an infinite gradient gets 0 (PyTorch: NaN)",
    ("sqrt_amax", "h", 9): "a non-extreme element of a row with an infinite gradient gets 0 (PyTorch: NaN)",
    ("sqrt_amax", "h", 10): "a non-extreme element of a row with an infinite gradient gets 0 (PyTorch: NaN)",
    # elu/selu at exactly 0: the first derivative is the left branch's (alpha) in both; the second
    # derivative is the same branch's here, 0 in PyTorch
    ("elu", "h", 5): "elu'' at 0 from the branch elu' uses (PyTorch: 0)",
    ("selu", "h", 5): "selu'' at 0 from the branch selu' uses (PyTorch: 0)",
    ("elu_large", "h", 2): "elu'' at 0 from the branch elu' uses (PyTorch: 0)",
    # mish'' at x = 1000: 0, the limit; PyTorch's formula overflows to NaN
    ("mish_large", "h", 1): "mish'' at 1000 is 0 (PyTorch: NaN)",
    # the 2-norm of a row of zeros: gradient 0 in both (the subgradient); the second derivative is
    # that of the gradient's formula with its zero mask, 0, where PyTorch's double backward meets 0 / 0
    ("norm_zero_row", "h", 0): "2-norm'' of a zero row is 0 (PyTorch: NaN)",
    ("norm_zero_row", "h", 1): "2-norm'' of a zero row is 0 (PyTorch: NaN)",
    ("norm_zero_row", "h", 2): "2-norm'' of a zero row is 0 (PyTorch: NaN)",
    ("norm_zero_row_scaled", "h", 0): "2-norm'' of a zero row is 0 (PyTorch: NaN)",
    ("norm_zero_row_scaled", "h", 1): "2-norm'' of a zero row is 0 (PyTorch: NaN)",
    ("norm_zero_row_scaled", "h", 2): "2-norm'' of a zero row is 0 (PyTorch: NaN)",
    # the second derivative across rows, of a zero row's 3-norm or std times another row's sum: 0
    # here as for the 2-norm in both; PyTorch's 3-norm and std backward divide the incoming
    # gradient by the zero norm before masking, 0 / 0
    ("norm3_zero_row_scaled", "h", 3): "d2/dx_row1 dx_row0 of a zero row's 3-norm is 0 (PyTorch: NaN)",
    ("norm3_zero_row_scaled", "h", 4): "d2/dx_row1 dx_row0 of a zero row's 3-norm is 0 (PyTorch: NaN)",
    ("norm3_zero_row_scaled", "h", 5): "d2/dx_row1 dx_row0 of a zero row's 3-norm is 0 (PyTorch: NaN)",
    ("std_zero_row_scaled", "h", 3): "d2/dx_row1 dx_row0 of a zero row's std is 0 (PyTorch: NaN)",
    ("std_zero_row_scaled", "h", 4): "d2/dx_row1 dx_row0 of a zero row's std is 0 (PyTorch: NaN)",
    ("std_zero_row_scaled", "h", 5): "d2/dx_row1 dx_row0 of a zero row's std is 0 (PyTorch: NaN)",
}


def run(case, xs, shape, f, scale=0.1, second=None):
    """f's value, gradient and Hessian row sums; `second`, where PyTorch has no double backward
    for f, is f written out for the Hessian (f itself gives the value and the gradient)."""
    try:
        x = torch.tensor(xs, dtype=torch.float64).reshape(shape).requires_grad_()
        y = f(x)
        w = (torch.arange(1, y.numel() + 1, dtype=torch.float64) * scale).reshape(y.shape)
        out = {"v": y}
        (g,) = torch.autograd.grad((y * w).sum(), x, create_graph=second is None)
        out["g"] = g
        if second is not None:
            (g,) = torch.autograd.grad((second(x) * w).sum(), x, create_graph=True)
        h = None
        if g.requires_grad:
            (h,) = torch.autograd.grad(g.sum(), x, allow_unused=True)
        out["h"] = torch.zeros_like(x) if h is None else h
        return {k: [float(v) for v in t.detach().reshape(-1).contiguous().clone().tolist()] for k, t in out.items()}
    except RuntimeError as e:
        return {"ERR": str(e)}


def ops():
    res = {}
    pt = lambda case, f: res.__setitem__(case, run(case, KX, (12,), f))
    chk = lambda case, xs, shape, f: res.__setitem__(case, run(case, xs, shape, f))
    pt("relu", torch.relu); pt("abs", torch.abs); pt("sign", torch.sign); pt("neg", torch.neg)
    pt("sigmoid", torch.sigmoid); pt("tanh", torch.tanh)
    pt("leaky_relu", lambda x: F.leaky_relu(x, 0.2)); pt("elu", lambda x: F.elu(x, 0.7)); pt("selu", F.selu)
    pt("gelu", F.gelu); pt("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")); pt("silu", F.silu)
    pt("softplus", F.softplus); pt("softplus_beta2_threshold4", lambda x: F.softplus(x, 2.0, 4.0)); pt("mish", F.mish)
    pt("hardtanh", F.hardtanh); pt("hardtanh_-0.5_1.5", lambda x: F.hardtanh(x, -0.5, 1.5))
    pt("softsign", F.softsign); pt("log_sigmoid", F.logsigmoid)
    # hardsigmoid as PyTorch defines it (its own double backward is not implemented in 1.13)
    pt("relu6", lambda x: F.relu6(x * 0.5 + 3.0)); pt("hardsigmoid", lambda x: F.relu6(x + 3.0) / 6.0)
    # celu with alpha 0.5: PyTorch 1.13 rounds 1 / alpha to float in the backward (0.6000000102 for 0.6)
    pt("hardswish", F.hardswish); pt("celu", lambda x: F.celu(x, 0.5)); pt("softshrink", lambda x: F.softshrink(x, 0.5))
    pt("hardshrink", lambda x: F.hardshrink(x, 1.0)); pt("tanhshrink", F.tanhshrink)
    pt("threshold", lambda x: F.threshold(x, 0.5, -2.0)); pt("glu", lambda x: F.glu(x.reshape(3, 4), 1))
    pt("softmin", lambda x: F.softmin(x.reshape(3, 4), 1))
    pt("prelu", lambda x: F.prelu(x.reshape(2, 3, 2), torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)))
    pt("prelu_weight", lambda x: F.prelu(torch.tensor(KX, dtype=torch.float64).reshape(4, 3), x.narrow(0, 7, 3)))
    pt("clamp", lambda x: torch.clamp(x, -1.0, 1.0)); pt("clamp_min", lambda x: torch.clamp(x, min=0.0))
    pt("sqrt_abs", lambda x: torch.sqrt(torch.abs(x))); pt("pow_abs_0.5", lambda x: torch.pow(torch.abs(x), 0.5))
    pt("pow_3", lambda x: torch.pow(x, 3.0)); pt("pow_int_2", lambda x: torch.pow(x, 2))
    pt("pow_0", lambda x: torch.pow(x, 0.0)); pt("pow_-2", lambda x: torch.pow(x, -2.0))
    pt("pow_2_x", lambda x: torch.pow(2.0, x)); pt("pow_tensor", lambda x: torch.pow(torch.abs(x), x * 0.1))
    pt("exp", lambda x: torch.exp(x * 0.1)); pt("log_abs", lambda x: torch.log(torch.abs(x)))
    pt("log1p_abs", lambda x: torch.log1p(torch.abs(x))); pt("expm1", torch.expm1); pt("erf", torch.erf)
    pt("sin", torch.sin); pt("cos", torch.cos); pt("div", lambda x: 1.0 / (x * x + 1.0))
    pt("tan", torch.tan); pt("asin", torch.asin); pt("acos", torch.acos); pt("atan", torch.atan)
    pt("sinh", torch.sinh); pt("cosh", torch.cosh); pt("asinh", torch.asinh); pt("acosh", torch.acosh)
    pt("atanh", torch.atanh); pt("reciprocal", torch.reciprocal); pt("rsqrt", torch.rsqrt)
    pt("log2", torch.log2); pt("log10", torch.log10); pt("exp2", torch.exp2); pt("square", torch.square)
    pt("floor", lambda x: torch.floor(x) * x); pt("ceil", lambda x: torch.ceil(x * 0.5) * x)
    pt("round", lambda x: torch.round(x * 2.0) + x); pt("round_halves", lambda x: torch.round(x) * x)
    pt("trunc", lambda x: torch.trunc(x * 0.7) * x)
    pt("frac", lambda x: torch.frac(x * 0.7) * x)
    pt("atan2", lambda x: torch.atan2(x, 1.5 - x))
    pt("atan2_reversed", lambda x: torch.atan2(x.reshape(3, 4), x.reshape(3, 4)[1]))
    pt("atan2_zero", lambda x: torch.atan2(x, torch.zeros_like(x)))
    pt("max", lambda x: torch.max(torch.abs(x))); pt("min", lambda x: torch.min(torch.abs(x)))
    pt("sqrt_clamp", lambda x: torch.sqrt(torch.clamp(x, 0.0, 1.0))); pt("sqrt_relu", lambda x: torch.sqrt(torch.relu(x)))
    pt("sqrt_maximum", lambda x: torch.sqrt(torch.maximum(x, torch.zeros_like(x))))
    pt("sqrt_minimum", lambda x: torch.sqrt(-torch.minimum(x, torch.zeros_like(x))))
    pt("sqrt_max", lambda x: torch.sqrt(torch.max(x.reshape(3, 4) * -1.0, 1).values + 1.0))
    pt("sqrt_zero_view", lambda x: torch.sqrt((lambda y: (y.narrow(0, 0, 6).zero_(), y)[1])(x * 1.0)))
    pt("sqrt_max_all", lambda x: torch.sqrt(torch.max(x) - 25.0))
    pt("sqrt_amax", lambda x: torch.sqrt(torch.amax(x.reshape(3, 4), 1) - torch.tensor([-1.0, 0.0, 25.0], dtype=torch.float64)))
    pt("maximum_0", lambda x: torch.maximum(x, torch.zeros_like(x))); pt("minimum_self", lambda x: torch.minimum(x, x))
    pt("max_dim", lambda x: torch.max(torch.abs(x).reshape(3, 4), 1).values)
    pt("min_dim0", lambda x: torch.min(torch.abs(x).reshape(3, 4), 0).values)
    pt("amax", lambda x: torch.amax(torch.abs(x).reshape(3, 4), 1))
    pt("softmax", lambda x: torch.softmax(x.reshape(3, 4), 1)); pt("log_softmax", lambda x: torch.log_softmax(x.reshape(3, 4), 0))
    pt("logsumexp", lambda x: torch.logsumexp(x.reshape(3, 4), 1)); pt("var", lambda x: torch.var(x.reshape(3, 4), 1))
    pt("var_correction0", lambda x: torch.var(x.reshape(3, 4), 0, correction=0))
    pt("var_one_element", lambda x: torch.var(x.reshape(12, 1), 1)); pt("mean", lambda x: torch.mean(x.reshape(3, 4), 0))
    pt("sum_keepdim", lambda x: torch.sum(x.reshape(3, 4) * x.reshape(3, 4), 1, keepdim=True))
    pt("where", lambda x: torch.where(x > 0, torch.sqrt(torch.abs(x)), x * 2.0))
    pt("matmul", lambda x: x.reshape(3, 4) @ x.reshape(4, 3))
    pt("linear", lambda x: F.linear(x.reshape(3, 4), x.reshape(4, 3).t() * 0.5, x.narrow(0, 0, 3)))
    pt("gather", lambda x: torch.gather(x.reshape(3, 4), 1, torch.tensor([[0, 0], [3, 1], [2, 2]])))
    pt("index_select", lambda x: torch.index_select(x.reshape(3, 4), 1, torch.tensor([3, 3, 0])))
    pt("cat", lambda x: torch.cat([x, x * x], 0)); pt("stack", lambda x: torch.stack([x, x * x], 1))
    m = lambda x: x.reshape(3, 4)
    pt("flip", lambda x: torch.flip(m(x), [0, 1]) * m(x)); pt("roll", lambda x: torch.roll(m(x), (1, -1), (0, 1)) * m(x))
    pt("roll_flat", lambda x: torch.roll(x, 5) * x); pt("repeat", lambda x: (m(x) * m(x)).repeat(2, 1, 2))
    pt("tril", lambda x: torch.tril(m(x) * m(x), 1)); pt("triu", lambda x: torch.triu(m(x) * m(x), -1))
    pt("masked_fill", lambda x: (x * x).masked_fill(x > 0.5, -1.0))
    pt("split", lambda x: (lambda p: torch.cat([p[2], p[0] * p[1]]))(torch.split(x, 5)))
    pt("chunk", lambda x: (lambda p: p[0] * p[1])(torch.chunk(m(x), 2, 1)))
    pt("unbind", lambda x: (lambda p: p[0] * p[1] + p[2])(torch.unbind(m(x), 0)))
    pt("prod", lambda x: torch.prod(m(x) * 0.5, 1)); pt("prod_all", lambda x: torch.prod(x * 0.3))
    pt("prod_all_nonzero", lambda x: torch.prod(x.narrow(0, 6, 6))); pt("prod_keepdim", lambda x: torch.prod(m(x), 0, True))
    pt("prod_relu", lambda x: torch.prod(torch.relu(m(x)) + torch.relu(-m(x)) * 0.5, 1) + torch.prod(torch.relu(m(x)), 1))
    pt("cumprod", lambda x: torch.cumprod(m(x) * 0.5, 1)); pt("cumprod_dim0", lambda x: torch.cumprod(m(x), 0))
    pt("cumprod_relu", lambda x: torch.cumprod(torch.relu(m(x)) * 0.9 + torch.relu(-m(x)) * 0.1, 1))
    pt("transpose_expand", lambda x: x.reshape(3, 4).t().unsqueeze(0).expand(2, 4, 3) * x.narrow(0, 0, 3))
    t = lambda: torch.tensor(KX) * 0.5 + 0.25
    pt("mse_loss", lambda x: F.mse_loss(x, t()))
    pt("l1_loss_sum", lambda x: F.l1_loss(x, torch.tensor(KX, dtype=torch.float64), reduction="sum"))
    pt("l1_loss_none", lambda x: F.l1_loss(x, t(), reduction="none"))
    pt("smooth_l1_loss", lambda x: F.smooth_l1_loss(x, torch.zeros_like(x), reduction="none", beta=1.0))
    pt("smooth_l1_loss_beta0.5", lambda x: F.smooth_l1_loss(x, torch.zeros_like(x), reduction="mean", beta=0.5))
    pt("huber_loss", lambda x: F.huber_loss(x, torch.zeros_like(x), reduction="none", delta=1.0))
    pt("huber_loss_delta3", lambda x: F.huber_loss(x, torch.zeros_like(x), reduction="sum", delta=3.0))
    pt("bce", lambda x: F.binary_cross_entropy(torch.clamp(x * 0.04 + 0.5, 0.0, 1.0), torch.full((12,), 0.3), reduction="none"))
    pt("bce_with_logits", lambda x: F.binary_cross_entropy_with_logits(x, torch.full((12,), 0.3), reduction="none"))
    y3 = torch.tensor([0, 3, 1])
    pt("cross_entropy", lambda x: F.cross_entropy(x.reshape(3, 4), y3, reduction="none"))
    pt("cross_entropy_smoothing0.1", lambda x: F.cross_entropy(x.reshape(3, 4), y3, reduction="mean", label_smoothing=0.1))
    pt("cross_entropy_sum_smoothing0.25", lambda x: F.cross_entropy(x.reshape(3, 4), y3, reduction="sum", label_smoothing=0.25))
    pt("nll_loss", lambda x: F.nll_loss(x.reshape(3, 4), y3))
    w4, yi = torch.tensor([0.5, 2.0, 1.5, 0.25], dtype=torch.float64), torch.tensor([0, -100, 1])
    pt("cross_entropy_weight", lambda x: F.cross_entropy(x.reshape(3, 4), y3, weight=w4))
    pt("cross_entropy_weight_none", lambda x: F.cross_entropy(x.reshape(3, 4), y3, weight=w4, reduction="none"))
    pt("cross_entropy_ignore", lambda x: F.cross_entropy(x.reshape(3, 4), yi))
    pt("cross_entropy_ignore_class3", lambda x: F.cross_entropy(x.reshape(3, 4), y3, ignore_index=3))
    pt("cross_entropy_weight_ignore_smoothing", lambda x: F.cross_entropy(x.reshape(3, 4), yi, weight=w4, label_smoothing=0.2))
    pt("cross_entropy_weight_ignore_smoothing_sum",
       lambda x: F.cross_entropy(x.reshape(3, 4), yi, weight=w4, label_smoothing=0.2, reduction="sum"))
    pt("cross_entropy_weight_ignore_smoothing_none",
       lambda x: F.cross_entropy(x.reshape(3, 4), yi, weight=w4, label_smoothing=0.2, reduction="none"))
    pt("cross_entropy_all_ignored", lambda x: F.cross_entropy(x.reshape(3, 4), torch.full((3,), -100), label_smoothing=0.1))
    pt("nll_loss_weight_ignore", lambda x: F.nll_loss(x.reshape(3, 4), yi, weight=w4))
    pt("nll_loss_weight_ignore_sum", lambda x: F.nll_loss(x.reshape(3, 4), yi, weight=w4, reduction="sum"))

    vn = torch.linalg.vector_norm
    pt("norm", lambda x: vn(x.reshape(3, 4), 2, 1)); pt("norm_all", lambda x: vn(x))
    pt("norm1", lambda x: vn(x.reshape(3, 4), 1, 0, True)); pt("norm3", lambda x: vn(x.reshape(3, 4), 3, 1))
    pt("norm1.5", lambda x: vn(x.reshape(3, 4), 1.5, 1)); pt("norm0.5", lambda x: vn(x.reshape(3, 4) * 0.1 + 0.05, 0.5, 1))
    pt("norm_inf", lambda x: vn(x, I)); pt("norm_-inf", lambda x: vn(x.reshape(3, 4), -I, 1))
    pt("std", lambda x: torch.std(x.reshape(3, 4), 1))
    pt("std_correction0_keepdim", lambda x: torch.std(x.reshape(3, 4), 0, correction=0, keepdim=True))
    pt("cumsum", lambda x: torch.cumsum(x.reshape(3, 4), 1))
    pt("cumsum_dim0", lambda x: torch.cumsum(x.reshape(3, 4) * x.reshape(3, 4), 0))

    rows = torch.tensor([3, 1, 1, 0, 2, 3, 1])
    pt("embedding", lambda x: F.embedding(rows, x.reshape(4, 3)))
    pt("embedding_padding", lambda x: F.embedding(rows, x.reshape(4, 3), 1))
    pt("embedding_2d_padding_-1", lambda x: F.embedding(rows[:6].reshape(2, 3), x.reshape(4, 3) * x.reshape(4, 3), -1))

    f64 = lambda v: torch.tensor(v, dtype=torch.float64)
    w4n, b4n, w3, b3 = f64([0.5, -1, 2, 1.5]), f64([0.1, 0, -0.3, 1]), f64([0.5, 2, -1]), f64([0, 1, 0.25])
    mean3, var3 = f64([0.5, -1, 0]), f64([2, 0.5, 10])
    pt("layer_norm", lambda x: F.layer_norm(x.reshape(3, 4), (4,)))
    pt("layer_norm_affine", lambda x: F.layer_norm(x.reshape(3, 4), (4,), w4n, b4n))
    pt("layer_norm_2d_eps0.1", lambda x: F.layer_norm(x.reshape(2, 2, 3), (2, 3), eps=0.1))
    pt("layer_norm_weight_bias_of_x", lambda x: F.layer_norm(x.reshape(3, 4), (4,), x.narrow(0, 0, 4), x.narrow(0, 4, 4)))
    pt("group_norm", lambda x: F.group_norm(x.reshape(1, 4, 3), 2))
    pt("group_norm_affine_eps1e-3", lambda x: F.group_norm(x.reshape(2, 2, 3), 2, f64([0.5, 2]), f64([0.1, -1]), 1e-3))
    pt("group_norm_instance_4d", lambda x: F.group_norm(x.reshape(1, 3, 2, 2), 3))
    pt("group_norm_weight_of_x", lambda x: F.group_norm(x.reshape(2, 6), 2, x.narrow(0, 0, 6)))
    pt("batch_norm_train", lambda x: F.batch_norm(x.reshape(4, 3), None, None, training=True))
    pt("batch_norm_train_3d_affine",
       lambda x: F.batch_norm(x.reshape(2, 2, 3), None, None, f64([0.5, 2]), f64([0.1, -1]), True, 0.1, 1e-3))
    pt("batch_norm_eval", lambda x: F.batch_norm(x.reshape(4, 3), mean3, var3, w3, b3, False))
    pt("batch_norm_weight_bias_of_x",
       lambda x: F.batch_norm(x.reshape(4, 3), None, None, x.narrow(0, 0, 3), x.narrow(0, 3, 3), training=True))

    sgn = f64([1, -1, 1, -1, -1, -1, 1, -1, -1, 1, 0, -1]); sgn3 = f64([1, -1, -1])
    probs = f64([0.1, 0.2, 0.3, 0.4, 0, 0.5, 0.5, 0, 0.25, 0.25, 0.25, 0.25]).reshape(3, 4)
    labels = f64([1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 1]).reshape(3, 4); cls = torch.tensor([0, 3, 1])
    pt("kl_div_batchmean", lambda x: F.kl_div(torch.log_softmax(m(x), 1), probs, reduction="batchmean"))
    pt("kl_div_target", lambda x: F.kl_div(torch.log(probs + 0.1), torch.softmax(m(x) * 0.5, 1), reduction="sum"))
    pt("kl_div_log_target", lambda x: F.kl_div(x * 0.1, x * 0.2 - 1.0, reduction="none", log_target=True))
    pt("kl_div_mean", lambda x: F.kl_div(x * 0.1, probs.reshape(12), reduction="mean"))
    pt("margin_ranking_loss", lambda x: F.margin_ranking_loss(x, 0.5 - x * 0.5, sgn, 0.5, reduction="none"))
    pt("hinge_embedding_loss", lambda x: F.hinge_embedding_loss(x, sgn, 1.0, reduction="none"))
    pt("soft_margin_loss", lambda x: F.soft_margin_loss(x, sgn, reduction="none"))
    pt("multilabel_soft_margin_loss", lambda x: F.multilabel_soft_margin_loss(m(x), labels, w4n, reduction="none"))

    # multi_margin_loss has no double backward in PyTorch 1.13: its documented formula gives the Hessian
    def multi_margin(x, p, margin, w=None):
        h = torch.relu(margin - x.gather(1, cls[:, None]) + x) ** p
        h = h if w is None else h * w[cls][:, None]
        return h.masked_fill(F.one_hot(cls, 4).bool(), 0).sum(1) / 4
    res["multi_margin_loss"] = run("multi_margin_loss", KX, (12,), lambda x: F.multi_margin_loss(m(x) * 0.3, cls, reduction="none"),
                                   second=lambda x: multi_margin(m(x) * 0.3, 1, 1.0))
    res["multi_margin_loss_p2_weight"] = run("multi_margin_loss_p2_weight", KX, (12,),
                                             lambda x: F.multi_margin_loss(m(x) * 0.1, cls, 2, 0.5, w4n.abs()),
                                             second=lambda x: multi_margin(m(x) * 0.1, 2, 0.5, w4n.abs()).mean())
    pt("cosine_embedding_loss", lambda x: F.cosine_embedding_loss(m(x), m(x).flip(1) + 0.5, sgn3, 0.2, reduction="none"))
    pt("triplet_margin_loss", lambda x: F.triplet_margin_loss(m(x), m(x).roll(1, 0), m(x) * 0.5, 3.0, 2.0, 1e-6, False, reduction="none"))
    pt("triplet_margin_loss_p1_swap", lambda x: F.triplet_margin_loss(m(x), m(x) * m(x) * 0.1, m(x).flip(1), 20.0, 1.0, 1e-6, True))
    pt("gaussian_nll_loss", lambda x: F.gaussian_nll_loss(m(x), m(x).flip(0), torch.abs(m(x)) * 0.1, reduction="none"))
    pt("gaussian_nll_loss_full_shared_var", lambda x: F.gaussian_nll_loss(m(x) * 0.1, probs, torch.abs(x.narrow(0, 5, 3)), full=True))
    pt("poisson_nll_loss", lambda x: F.poisson_nll_loss(x * 0.1, torch.abs(f64(KX)), True, True, reduction="none"))
    pt("poisson_nll_loss_rate",
       lambda x: F.poisson_nll_loss(torch.abs(x), f64([0, 1, 2, 3, 0.5, 1.5, 4, 0, 2, 1, 7, 3]), False, True, reduction="none"))
    pt("normalize", lambda x: F.normalize(m(x))); pt("normalize_p1_dim0", lambda x: F.normalize(m(x) * m(x), 1.0, 0))
    pt("cosine_similarity", lambda x: F.cosine_similarity(m(x), m(x).flip(1) + 0.5))
    pt("cosine_similarity_broadcast_dim0", lambda x: F.cosine_similarity(m(x), x.narrow(0, 2, 3).reshape(3, 1), 0))
    pt("pairwise_distance", lambda x: F.pairwise_distance(m(x), m(x).roll(1, 1)))
    pt("pairwise_distance_p3_keepdim", lambda x: F.pairwise_distance(m(x), probs, 3.0, 1e-6, True))
    chk("cosine_similarity_zero", [0, 0, 3, 4], (2, 2), lambda x: F.cosine_similarity(x, x.flip(0) + 1.0))
    chk("gaussian_nll_loss_zero_var", [0, 2], (2,), lambda x: F.gaussian_nll_loss(x.flip(0), torch.ones(2, dtype=torch.float64), x * x))

    img = torch.sin(torch.arange(0, 40, dtype=torch.float64)).reshape(1, 2, 4, 5)
    w2 = f64([0.5, -1, 0.25, 2, -0.5, 1, 1.5, 0.1]).reshape(2, 1, 2, 2)
    pt("conv2d", lambda x: F.conv2d(x.reshape(1, 1, 3, 4), w2, f64([0.1, -0.2])))
    pt("conv2d_weight_stride_padding", lambda x: F.conv2d(img, x.reshape(3, 2, 1, 2), None, (2, 1), (1, 0)))
    pt("conv2d_both_dilation", lambda x: F.conv2d(x.reshape(1, 3, 2, 2), x.reshape(1, 3, 2, 2) * x.reshape(1, 3, 2, 2), None, 1, 1, (2, 1)))
    pt("conv1d", lambda x: F.conv1d(x.reshape(2, 2, 3), w2.reshape(2, 2, 2), f64([0.3, 0.0]), 2, 1))
    pt("max_pool2d", lambda x: F.max_pool2d(x.reshape(1, 1, 3, 4), (2, 2), (1, 1), (1, 1)))
    pt("max_pool2d_ties", lambda x: F.max_pool2d(torch.abs(x).reshape(1, 3, 4), (2, 2), (1, 2)))
    pt("avg_pool2d", lambda x: F.avg_pool2d(x.reshape(1, 1, 3, 4) * x.reshape(1, 1, 3, 4), (2, 3), None, (1, 1)))
    pt("unfold", lambda x: F.unfold(x.reshape(1, 2, 2, 3), (2, 2), (1, 1), (1, 0), (1, 2)))
    pt("conv2d_groups", lambda x: F.conv2d(x.reshape(1, 4, 1, 3), w2.reshape(4, 2, 1, 1), f64([0.1, -0.2, 0.3, 0.0]), 1, (0, 1), 1, 2))
    pt("conv2d_depthwise_weight", lambda x: F.conv2d(img, x.reshape(6, 1, 2, 1), None, (1, 2), (1, 0), 1, 2))
    pt("conv1d_groups", lambda x: F.conv1d(x.reshape(1, 4, 3), w2.reshape(2, 2, 2), None, 1, 1, 2, 2))
    pt("max_pool1d", lambda x: F.max_pool1d(x.reshape(2, 6), 3, 2, 1))
    pt("avg_pool1d", lambda x: F.avg_pool1d((x * x).reshape(1, 3, 4), 2, 1, 1))
    qq = lambda x, *shape: (x * x + x * 0.3).reshape(*shape)
    pt("max_pool2d_ceil_mode", lambda x: F.max_pool2d(qq(x, 1, 1, 3, 4), 2, 2, ceil_mode=True))
    pt("max_pool1d_ceil_mode", lambda x: F.max_pool1d(qq(x, 1, 2, 6), 4, 3, ceil_mode=True))
    pt("avg_pool2d_ceil_mode_padding", lambda x: F.avg_pool2d((x * x).reshape(1, 1, 3, 4), 2, 2, 1, ceil_mode=True))
    pt("avg_pool2d_ceil_mode_exclude_pad",
       lambda x: F.avg_pool2d((x * x).reshape(1, 1, 3, 4), 3, 2, 1, ceil_mode=True, count_include_pad=False))
    pt("avg_pool1d_exclude_pad", lambda x: F.avg_pool1d((x * x).reshape(1, 2, 6), 3, 2, 1, count_include_pad=False))
    pt("interpolate_nearest_size", lambda x: F.interpolate(qq(x, 1, 1, 3, 4), size=(4, 6)))
    pt("interpolate_bilinear", lambda x: F.interpolate(qq(x, 1, 1, 3, 4), size=(4, 5), mode="bilinear"))
    pt("interpolate_bilinear_align_corners_scale",
       lambda x: F.interpolate(qq(x, 1, 1, 3, 4), scale_factor=1.5, mode="bilinear", align_corners=True))
    pt("interpolate_linear_scale0.75", lambda x: F.interpolate(qq(x, 1, 2, 6), scale_factor=0.75, mode="linear"))
    pt("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d((x * x).reshape(1, 1, 3, 4), (2, 3)))
    pt("adaptive_avg_pool1d", lambda x: F.adaptive_avg_pool1d(x.reshape(2, 6) * x.reshape(2, 6), 4))
    pt("adaptive_max_pool2d", lambda x: F.adaptive_max_pool2d((x * x).reshape(1, 1, 3, 4), (2, 3)))
    pt("adaptive_max_pool1d", lambda x: F.adaptive_max_pool1d(x.reshape(2, 6) * x.reshape(2, 6), 5))
    in2, h1, c1 = f64([0.5, -1, 1.5, 0.25]).reshape(2, 2), f64([0.3, -0.2]).reshape(2, 1), f64([0.1, 0.7]).reshape(2, 1)
    in3 = f64([0.5, -1, 0.2, 1.5, 0.25, -0.4]).reshape(2, 3)

    def lstm_cell(x):
        w = x * 0.1
        return torch.cat(torch.lstm_cell(in2, (h1, c1), w[:8].reshape(4, 2), w[8:].reshape(4, 1)), 1)
    pt("lstm_cell_weights_of_x", lstm_cell)
    pt("gru_cell_weights_of_x",
       lambda x: torch.gru_cell(in3, h1, (x * 0.1)[:9].reshape(3, 3), (x * 0.1)[9:].reshape(3, 1), f64([0.1, -0.2, 0.3])))

    def filled(m):
        with torch.no_grad():
            for i, p in enumerate(m.parameters()):
                j = torch.arange(p.numel(), dtype=torch.float64)
                p.copy_((0.5 * torch.sin(1 + 0.7 * j + 1.3 * i)).reshape(p.shape))
        return m
    lstm = filled(torch.nn.LSTM(2, 2, num_layers=2, bidirectional=True, dtype=torch.float64))
    gru = filled(torch.nn.GRU(2, 3, batch_first=True, dtype=torch.float64))
    rnn = filled(torch.nn.RNN(3, 2, num_layers=2, nonlinearity="relu", dtype=torch.float64))

    def lstm_run(x):
        out, (h, c) = lstm(x.reshape(3, 2, 2) * 0.1)
        return torch.cat([out.reshape(-1), h.reshape(-1), c.reshape(-1)])

    def gru_run(x):
        out, h = gru(x.reshape(2, 3, 2) * 0.1, f64([0.1, -0.3, 0.5, 0.2, 0, -0.1]).reshape(1, 2, 3))
        return torch.cat([out.reshape(-1), h.reshape(-1)])
    pt("lstm_2_layers_bidirectional", lstm_run)
    pt("gru_batch_first_h0", gru_run)
    pt("rnn_relu_2_layers_unbatched", lambda x: rnn(x.reshape(4, 3) * 0.1 + 0.2)[0])
    sq = lambda x, *shape: (x * x).reshape(*shape)
    pt("pad_constant", lambda x: F.pad(sq(x, 3, 4), (1, 2, 0, 1), value=0.5))
    pt("pad_constant_negative", lambda x: F.pad(sq(x, 3, 4), (-1, 1, 1, -1)))
    pt("pad_reflect", lambda x: F.pad(sq(x, 1, 3, 4), (2, 3), mode="reflect"))
    pt("pad_reflect_2d", lambda x: F.pad(sq(x, 1, 1, 3, 4), (1, 2, 2, 1), mode="reflect"))
    pt("pad_replicate", lambda x: F.pad(sq(x, 1, 3, 4), (2, 1), mode="replicate"))
    pt("pad_replicate_2d", lambda x: F.pad(sq(x, 1, 1, 3, 4), (1, 0, 2, 2), mode="replicate"))
    pt("pad_circular", lambda x: F.pad(sq(x, 1, 3, 4), (3, 2), mode="circular"))
    q = lambda x: x * x + x * 0.3
    pt("sort_stable_ties", lambda x: torch.sort(torch.abs(x).reshape(3, 4), dim=1, stable=True).values)
    pt("sort_descending_dim0", lambda x: torch.sort(q(x).reshape(4, 3), dim=0, descending=True, stable=True).values)
    pt("topk", lambda x: torch.topk(q(x).reshape(3, 4), 2).values)
    pt("topk_smallest_dim0", lambda x: torch.topk(q(x).reshape(4, 3), 3, 0, largest=False).values)
    pt("kthvalue", lambda x: torch.kthvalue(q(x).reshape(3, 4), 2).values)
    pt("kthvalue_dim0_keepdim", lambda x: torch.kthvalue(q(x).reshape(4, 3), 3, 0, keepdim=True).values)
    pt("median_dim_odd", lambda x: torch.median(q(x).reshape(4, 3), 1).values)
    pt("median_dim_even", lambda x: torch.median(q(x).reshape(3, 4), 1).values)
    pt("median", lambda x: torch.median(q(x)))
    pt("median_ties", lambda x: torch.median(torch.abs(x)))

    chk("logsumexp_-inf", [-I, -I, 1, 2], (2, 2), lambda x: torch.logsumexp(x, 1))
    chk("logsumexp_inf", [I, 1, I, I], (2, 2), lambda x: torch.logsumexp(x, 1))
    chk("softmax_-inf", [-I, 0, 1, 2], (2, 2), lambda x: torch.softmax(x, 1))
    chk("log_softmax_-inf", [-I, 0, 1, 2], (2, 2), lambda x: torch.log_softmax(x, 1))
    chk("softmax_nan", [N, 0, 1, 2], (2, 2), lambda x: torch.softmax(x, 1))
    chk("max_dim_nan", [1, N, 3, 2], (2, 2), lambda x: torch.max(x, 1).values)
    chk("max_nan", [1, N, 3, 2], (2, 2), torch.max)
    chk("min_two_nans", [1, N, 3, N], (4,), torch.min)
    chk("amax_nan", [1, N, 3, 2], (2, 2), lambda x: torch.amax(x, 1))
    chk("maximum_nan", [1, N, 3, 2], (4,), lambda x: torch.maximum(x, torch.tensor([N, 0, 5, 2])))
    chk("minimum_nan", [1, N, 3, 2], (4,), lambda x: torch.minimum(torch.tensor([N, 0, 5, 2]), x))
    chk("sort_nan", [1, N, 3, 2], (2, 2), lambda x: torch.sort(x, dim=1, stable=True).values)
    chk("sort_nan_descending", [1, N, 3, 2], (4,), lambda x: torch.sort(x, dim=0, descending=True, stable=True).values)
    chk("median_dim_nan", [1, N, 3, 2, 0, 5], (2, 3), lambda x: torch.median(x, 1).values)
    chk("median_nan", [1, N, 3, N], (4,), torch.median)
    chk("clamp_nan", [1, N, -3, 2], (4,), lambda x: torch.clamp(x, -1.0, 1.5))
    chk("relu_nan", [1, N, -3, 0], (4,), torch.relu)
    chk("hardtanh_nan", [1, N, -3, 0], (4,), F.hardtanh)
    chk("sqrt_0", [0, 4], (2,), torch.sqrt)
    chk("pow_0_0.5", [0, 4], (2,), lambda x: torch.pow(x, 0.5))
    chk("pow_0_0", [0, 4], (2,), lambda x: torch.pow(x, 0.0))
    chk("pow_negative_base", [-2, 4], (2,), lambda x: torch.pow(x, 0.5))
    chk("log_0", [0, 4], (2,), torch.log)
    chk("x_log_x_0", [0, 4], (2,), lambda x: x * torch.log(x))
    chk("where_masks_nan", [0, 4], (2,), lambda x: torch.where(x > 0, torch.log(x), torch.zeros_like(x)))
    chk("div_0", [0, 4], (2,), lambda x: 1.0 / x)
    chk("bce_with_logits_inf", [-I, I, 800, -800], (4,),
        lambda x: F.binary_cross_entropy_with_logits(x, torch.tensor([0.0, 1, 0, 1]), reduction="none"))
    chk("cross_entropy_large", [1000, -1000, 0, 0], (2, 2), lambda x: F.cross_entropy(x, torch.tensor([1, 0]), reduction="none"))
    big = [-1000, 1000, 0, -40]
    chk("softplus_threshold", [-1000, 1000, 19.99, 20.01], (4,), F.softplus)
    chk("log_sigmoid_large", big, (4,), F.logsigmoid); chk("mish_large", big, (4,), F.mish)
    chk("silu_large", big, (4,), F.silu); chk("gelu_large", big, (4,), F.gelu); chk("elu_large", big, (4,), F.elu)
    chk("sigmoid_large", big, (4,), torch.sigmoid); chk("tanh_large", big, (4,), torch.tanh)
    chk("exp_large", [-1000, 1000, 0, 700], (4,), torch.exp)
    chk("dropout_p1", [N, I, -2, 3], (4,), lambda x: F.dropout(x, 1.0))
    chk("dropout_eval", [N, I, -2, 3], (4,), lambda x: F.dropout(x, 0.5, training=False) * x)
    chk("cross_entropy_no_classes", [], (2, 0), lambda x: F.cross_entropy(x, torch.full((2,), -100), reduction="none"))
    chk("nll_loss_no_classes_weight", [], (2, 0), lambda x: F.nll_loss(x, torch.full((2,), -100), torch.ones(0, dtype=torch.float64)))
    zero_row = [0, 0, 0, 1, -2, 2]
    chk("norm_zero_row", zero_row, (2, 3), lambda x: vn(x, 2, 1))
    chk("norm3_zero_row", zero_row, (2, 3), lambda x: vn(x, 3, 1))
    chk("norm_inf_zero_row", zero_row, (2, 3), lambda x: vn(x, I, 1))
    chk("norm0_count", zero_row, (2, 3), lambda x: vn(x, 0, 1))
    chk("std_constant_row", [0.1, 0.1, 0.1, 1, -2, 2], (2, 3), lambda x: torch.std(x, 1))
    chk("norm_zero_row_scaled", [0, 0, 0, 1, -2, 2], (2, 3), lambda x: vn(x.narrow(0, 0, 1), 2, 1) * x.narrow(0, 1, 1).sum())
    chk("norm3_zero_row_scaled", [0, 0, 0, 1, -2, 2], (2, 3), lambda x: vn(x.narrow(0, 0, 1), 3, 1) * x.narrow(0, 1, 1).sum())
    chk("std_zero_row_scaled", [0, 0, 0, 1, -2, 2], (2, 3), lambda x: torch.std(x.narrow(0, 0, 1), 1) * x.narrow(0, 1, 1).sum())
    chk("norm_empty", [], (0,), lambda x: vn(x))
    chk("cumsum_empty", [], (0, 2), lambda x: torch.cumsum(x, 0))
    chk("mean_empty", [], (0,), torch.mean); chk("sum_empty", [], (0, 3), lambda x: torch.sum(x, 0))
    chk("var_empty", [], (0,), torch.var); chk("mse_loss_empty", [], (0,), lambda x: F.mse_loss(x, torch.zeros_like(x)))
    return res


def optimizers():
    res = {}

    def trajectory(case, make, sched=None):
        p = torch.tensor([1.5, -2.0, 0.3], requires_grad=True)
        o = make([p])
        s = sched(o) if sched else None
        out = []
        for t in range(8):
            v = p.detach().tolist()
            p.grad = torch.tensor([math.sin(t + 1.0) + v[0], math.cos(2.0 * t), 0.1 * t - 0.3 + v[2] * v[2]])
            o.step()
            if s:
                s.step()
            out += p.detach().tolist()
        res[case] = {"p": out}

    trajectory("sgd", lambda p: O.SGD(p, lr=0.1))
    trajectory("sgd_momentum", lambda p: O.SGD(p, lr=0.1, momentum=0.9))
    trajectory("sgd_dampening_decay", lambda p: O.SGD(p, lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05))
    trajectory("sgd_nesterov", lambda p: O.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True))
    trajectory("sgd_maximize", lambda p: O.SGD(p, lr=0.1, momentum=0.5, maximize=True))
    trajectory("adam", lambda p: O.Adam(p, lr=0.1))
    trajectory("adam_amsgrad_decay", lambda p: O.Adam(p, lr=0.1, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1, amsgrad=True))
    trajectory("adam_maximize", lambda p: O.Adam(p, lr=0.05, maximize=True))
    trajectory("adamw", lambda p: O.AdamW(p, lr=0.1))
    trajectory("adamw_amsgrad", lambda p: O.AdamW(p, lr=0.1, weight_decay=0.3, amsgrad=True))
    trajectory("rmsprop", lambda p: O.RMSprop(p, lr=0.01))
    trajectory("adagrad", lambda p: O.Adagrad(p, lr=0.1))
    trajectory("adagrad_decay_init",
               lambda p: O.Adagrad(p, lr=0.1, lr_decay=0.3, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-3))
    trajectory("adagrad_maximize", lambda p: O.Adagrad(p, lr=0.05, maximize=True))
    trajectory("rmsprop_centered_momentum",
               lambda p: O.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-4, weight_decay=0.1, momentum=0.5, centered=True))
    trajectory("steplr", lambda p: O.SGD(p, lr=0.1, momentum=0.9), lambda o: O.lr_scheduler.StepLR(o, 3, 0.5))
    trajectory("exponentiallr", lambda p: O.SGD(p, lr=0.1), lambda o: O.lr_scheduler.ExponentialLR(o, 0.8))
    trajectory("cosineannealinglr", lambda p: O.Adam(p, lr=0.1), lambda o: O.lr_scheduler.CosineAnnealingLR(o, 5, 0.01))
    trajectory("linearlr", lambda p: O.Adam(p, lr=0.1), lambda o: O.lr_scheduler.LinearLR(o, 0.25, 1.0, 4))
    trajectory("multisteplr", lambda p: O.SGD(p, lr=0.1, momentum=0.9), lambda o: O.lr_scheduler.MultiStepLR(o, [5, 2, 5], 0.5))
    trajectory("lambdalr", lambda p: O.Adam(p, lr=0.1),
               lambda o: O.lr_scheduler.LambdaLR(o, lambda e: (e + 1) / 3.0 if e < 3 else 0.9 * math.exp(-0.1 * e)))
    metrics = [1, 0.9, 0.95, 0.9, 0.89995, 0.92, 0.93, 0.5, 0.6, 0.7, 0.8, 0.9,
               1.0, 1.1, 1.2, 1.3, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    for case, options in [("plateau", dict(factor=0.5, patience=2)),
                          ("plateau_max_cooldown", dict(mode="max", factor=0.5, patience=1, cooldown=2)),
                          ("plateau_threshold_min_lr", dict(factor=0.1, patience=0, threshold=0.01, min_lr=0.003)),
                          ("plateau_threshold0", dict(factor=0.5, patience=3, threshold=0))]:
        opt = O.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        s = O.lr_scheduler.ReduceLROnPlateau(opt, **options)
        lrs = []
        for m in metrics:
            s.step(m)
            lrs.append(opt.param_groups[0]["lr"])
        res[case] = {"lr": lrs}
    return res


def clipping():
    res = {}

    def run(case, clip, nan=False):
        ps = [torch.zeros(3, dtype=torch.float64, requires_grad=True), torch.zeros(2, dtype=torch.float64, requires_grad=True)]
        ps[0].grad = torch.tensor([N if nan else 3.0, -4.0, 0.5], dtype=torch.float64)
        ps[1].grad = torch.tensor([-12.0, 1e-3], dtype=torch.float64)
        total = float(clip(ps))
        res[case] = {"p": [total] + ps[0].grad.tolist() + ps[1].grad.tolist()}

    U = torch.nn.utils
    run("clip_norm_2", lambda ps: U.clip_grad_norm_(ps, 5.0))
    run("clip_norm_2_below", lambda ps: U.clip_grad_norm_(ps, 50.0))
    run("clip_norm_1", lambda ps: U.clip_grad_norm_(ps, 2.0, 1.0))
    run("clip_norm_inf", lambda ps: U.clip_grad_norm_(ps, 3.0, I))
    run("clip_norm_3", lambda ps: U.clip_grad_norm_(ps, 0.5, 3.0))
    run("clip_norm_0.5", lambda ps: U.clip_grad_norm_(ps, 10.0, 0.5))
    run("clip_norm_0", lambda ps: U.clip_grad_norm_(ps, 0.0))
    run("clip_norm_nan", lambda ps: U.clip_grad_norm_(ps, 5.0), True)
    run("clip_norm_nan_inf", lambda ps: U.clip_grad_norm_(ps, 5.0, I), True)
    run("clip_value", lambda ps: (U.clip_grad_value_(ps, 3.5), 0.0)[1], True)
    return res


def batch_norm_modules():
    res = {}

    def run(case, momentum, shape):
        module = torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d
        bn = module(3, momentum=momentum, dtype=torch.float64)

        def batch(k):
            x = torch.arange(0, math.prod(shape), dtype=torch.float64) * (k + 1.0)
            return (torch.sin(x) * (k + 1.0) + k).reshape(shape)

        for k in range(3):
            bn(batch(k))
        bn.eval()
        with torch.no_grad():
            res[case] = {"p": torch.cat([bn.running_mean, bn.running_var, bn(batch(3)).reshape(-1)]).tolist()}

    run("batchnorm1d_momentum0.1", 0.1, (4, 3))
    run("batchnorm1d_momentum_none", None, (4, 3))
    run("batchnorm1d_3d_momentum0.3", 0.3, (2, 3, 5))
    run("batchnorm2d_momentum0.2", 0.2, (2, 3, 2, 3))
    return res


def close(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-10 * max(1.0, abs(b))


def main():
    output = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout
    ours = {}
    for line in output.splitlines():
        case, part, *rest = line.split(" ")
        ours.setdefault(case, {})[part] = " ".join(rest) if part == "ERR" else [float(v) for v in rest]
    theirs = {**ops(), **optimizers(), **clipping(), **batch_norm_modules()}
    problems, seen = [], set()
    for case in sorted(set(ours) | set(theirs)):
        if case not in ours or case not in theirs:
            problems.append(f"{case}: only in {'parity.cpp' if case in ours else 'parity.py'}")
            continue
        a, b = ours[case], theirs[case]
        if "ERR" in a or "ERR" in b:
            if ("ERR" in a) != ("ERR" in b):
                problems.append(f"{case}: chainrule {a.get('ERR', 'computes it')}; PyTorch {b.get('ERR', 'computes it')}")
            continue
        for part in sorted(set(a) | set(b)):
            x, y = a.get(part, []), b.get(part, [])
            if len(x) != len(y):
                problems.append(f"{case} {part}: {len(x)} numbers, PyTorch {len(y)}")
                continue
            for i, (u, v) in enumerate(zip(x, y)):
                if close(u, v):
                    continue
                if (case, part, i) in DEVIATIONS:
                    seen.add((case, part, i))
                    continue
                problems.append(f"{case} {part}[{i}]: chainrule {u!r}, PyTorch {v!r}")
    for key, why in DEVIATIONS.items():
        if key not in seen:
            problems.append(f"{key}: listed as a deliberate deviation ({why}) but no longer differs; update DEVIATIONS")
    count = sum(len(p) for c in ours.values() for p in c.values() if isinstance(p, list))
    print(f"{len(ours)} cases, {count} numbers compared against PyTorch {torch.__version__}; "
          f"{len(seen)} known deviations (listed in parity.py)")
    for p in problems:
        print("MISMATCH", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
