"""Random programs, run by chainrule and by PyTorch, compared: values, gradients and
Hessian-vector products (float64 to 1e-9 relative, or float32 to 2e-4), and their dtypes.

Each program is a few leaves (some constants, float or int64, some transposed views, in float32
programs some 0-d float64 ones) and a random sequence of elementwise, broadcasting, reduction,
shape, indexing, in-place, matmul and loss ops, generated here with torch itself so that only
ops torch accepts are kept. random_programs.cpp reads the programs from a file and prints its
results; this script computes the same with torch. The loss is sum(out_i * w_i) over the last
three results; the Hessian-vector product is the gradient of sum(g_j * u_j) over the leaves'
gradients g_j (w, u fixed sine weights).

Usage: random_programs.py EXECUTABLE [FIRST_SEED COUNT MAX_OPS [float32]]. Exit 0: all agree;
1: a difference (the program is printed); 77: torch is not installed (skipped).

Kept out on purpose (parity.py lists them): the variance of a single element (0 / 0: NaN here,
inf or an Error in PyTorch 1.13), leaves at exactly 0 (elu''/selu'' at 0), and a mean
cross_entropy or nll_loss whose targets are all ignored (NaN with a zero gradient in both; its
second derivative is 0 here, NaN in PyTorch, whose double backward divides by the zero total),
and a norm over a slice of zeros (gradient 0 in both; second derivative 0 here, NaN in PyTorch).
The rounding ops (floor, ceil, round, trunc, frac) are left to parity.py: they jump where a value
is a whole number, and values that are whole in exact arithmetic (a layer_norm of one element is
0) come out of either library a rounding error to one side or the other. For the same reason
group_norm is drawn only over groups of 3 or more values.
"""
import math
import os
import random
import subprocess
import sys
import tempfile

from torch_or_skip import F, torch

# Each op's torch twin of the lambda of the same name in random_programs.cpp; None: not
# applicable to these operands (skipped).
UNARY = {
    "exp": lambda x: torch.exp(x * 0.3),
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "abs": torch.abs,
    "neg": torch.neg,
    "sin": torch.sin,
    "cos": torch.cos,
    "sqrt": lambda x: torch.sqrt(torch.abs(x) + 0.1),
    "log": lambda x: torch.log(torch.abs(x) + 0.5),
    "softplus": F.softplus,
    "gelu": F.gelu,
    "silu": F.silu,
    "elu": F.elu,
    "selu": F.selu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "hardtanh": F.hardtanh,
    "mish": F.mish,
    "log_sigmoid": F.logsigmoid,
    "softsign": F.softsign,
    "relu6": lambda x: F.relu6(x * 2.0 + 1.0),
    "hardsigmoid": lambda x: F.relu6(x + 3.0) / 6.0,  # as PyTorch defines it: its own double backward is missing
    "hardswish": lambda x: F.hardswish(x * 2.0),
    "celu": lambda x: F.celu(x, 0.5),
    "softshrink": F.softshrink,
    "hardshrink": F.hardshrink,
    "tanhshrink": F.tanhshrink,
    "threshold": lambda x: F.threshold(x, 0.1, -0.5),
    "glu": lambda x: F.glu(x, -1) if x.dim() > 0 and x.shape[-1] > 0 and x.shape[-1] % 2 == 0 else None,
    "softmin": lambda x: F.softmin(x, -1) if x.dim() > 0 else None,
    # x / 2 + 1: a zero row's second derivative is NaN in PyTorch, 0 here (the norm_zero_row deviation in parity.py)
    "normalize": lambda x: F.normalize(x * 0.5 + 1.0, 2.0, -1) if x.dim() > 0 else None,
    "conv2d_self": lambda x: F.conv2d(x, (x[:1] if x.dim() == 4 else x[None])[..., :2, :2], None, 1, 1)
    if x.dim() in (3, 4) and x.numel() > 0 and x.is_floating_point() else None,
    "conv2d_depthwise_self": lambda x: F.conv2d(x, (x[:1] if x.dim() == 4 else x[None]).transpose(0, 1)[..., :2, :2],
                                                None, 1, 1, 1, x.shape[-3])
    if x.dim() in (3, 4) and x.numel() > 0 and x.is_floating_point() else None,
    "max_pool1d": lambda x: F.max_pool1d(x, 2, 1, 1) if x.dim() in (2, 3) and x.numel() > 0 and x.is_floating_point() else None,
    "adaptive_avg_pool2d": lambda x: F.adaptive_avg_pool2d(x, (2, 3))
    if x.dim() in (3, 4) and x.shape[-1] > 0 and x.shape[-2] > 0 and x.is_floating_point() else None,
    "adaptive_max_pool2d": lambda x: F.adaptive_max_pool2d(x, (2, 3))
    if x.dim() in (3, 4) and x.shape[-1] > 0 and x.shape[-2] > 0 and x.is_floating_point() else None,
    "max_pool2d": lambda x: F.max_pool2d(x, (2, 2), (1, 1), (1, 1))
    if x.dim() in (3, 4) and x.numel() > 0 and x.is_floating_point() else None,
    "avg_pool2d": lambda x: F.avg_pool2d(x, (2, 2), (1, 2), (1, 0))
    if x.dim() in (3, 4) and x.numel() > 0 and x.is_floating_point() else None,
    "prelu": lambda x: F.prelu(x, torch.tensor([0.3], dtype=x.dtype)) if x.is_floating_point() else None,
    "upsample_nearest": lambda x: F.interpolate(x, scale_factor=2.0) if x.dim() in (3, 4) and x.numel() > 0
    and x.is_floating_point() else None,
    "interpolate_bilinear": lambda x: F.interpolate(x, size=(3, 2), mode="bilinear") if x.dim() == 4 and x.numel() > 0
    and x.is_floating_point() else None,
    "interpolate_linear": lambda x: F.interpolate(x, size=5, mode="linear", align_corners=True) if x.dim() == 3
    and x.numel() > 0 and x.is_floating_point() else None,
    # where PyTorch 1.13 has these modes (reflect: 2-d or 3-d input, replicate 4-d, circular 3-d)
    "pad_reflect": lambda x: F.pad(x, (1, 2), mode="reflect") if x.dim() in (2, 3) and x.shape[-1] > 2
    and x.numel() > 0 and x.is_floating_point() else None,
    "pad_replicate": lambda x: F.pad(x, (1, 2, 1, 0), mode="replicate") if x.dim() == 4 and x.numel() > 0
    and x.is_floating_point() else None,
    "pad_circular": lambda x: F.pad(x, (2, 1), mode="circular") if x.dim() == 3 and x.shape[-1] > 1
    and x.numel() > 0 and x.is_floating_point() else None,
    "erf": torch.erf,
    "expm1": lambda x: torch.expm1(x * 0.3),
    "log1p": lambda x: torch.log1p(torch.abs(x)),
    "tan": lambda x: torch.tan(torch.tanh(x)),
    "asin": lambda x: torch.asin(torch.tanh(x) * 0.9),
    "acos": lambda x: torch.acos(torch.tanh(x) * 0.9),
    "atan": torch.atan,
    "sinh": lambda x: torch.sinh(x * 0.3),
    "cosh": lambda x: torch.cosh(x * 0.3),
    "asinh": torch.asinh,
    "acosh": lambda x: torch.acosh(torch.abs(x) + 1.1),
    "atanh": lambda x: torch.atanh(torch.tanh(x) * 0.9),
    "reciprocal": lambda x: torch.reciprocal(x * x + 0.5),
    "rsqrt": lambda x: torch.rsqrt(torch.abs(x) + 0.2),
    "log2": lambda x: torch.log2(torch.abs(x) + 0.5),
    "log10": lambda x: torch.log10(torch.abs(x) + 0.5),
    "exp2": lambda x: torch.exp2(x * 0.3),
    "square_op": torch.square,
    "square": lambda x: torch.pow(x, 2),
    "cube": lambda x: torch.pow(x, 3.0),
    "pow_half": lambda x: torch.pow(torch.abs(x) + 0.2, 0.5),
    "pow_neg": lambda x: torch.pow(torch.abs(x) + 0.5, -1.5),
    "clamp": lambda x: torch.clamp(x, -0.5, 0.7),
    "rsub": lambda x: 1.0 - x,
    "rdiv": lambda x: 1.0 / (x * x + 1.0),
    "scale": lambda x: x * 2.5 + 0.5,
    "contiguous": lambda x: x.contiguous(),
    "clone": lambda x: x.clone(),
    "sign_mul": lambda x: torch.sign(x) * x,
    "detach_mul": lambda x: x * x.detach(),
    "to32": lambda x: x.to(torch.float32).to(x.dtype),
    "sum_all": torch.sum,
    "prod_all": torch.prod,
    "mean_all": torch.mean,
    "var_all": lambda x: torch.var(x) if x.numel() > 1 else None,
    "median_all": lambda x: None if untied(x.reshape(-1), 0) is None else torch.median(x),
    "max_all": torch.max,
    "min_all": torch.min,
    "gram": lambda x: x @ x.transpose(-1, -2) if x.dim() >= 2 else (x @ x if x.dim() == 1 else None),
    "gram_t": lambda x: x.transpose(-1, -2) @ x if x.dim() >= 2 else None,
    "mv": lambda x: x @ x[..., 0, :] if x.dim() >= 2 else None,
    "vm": lambda x: x[..., :, 0] @ x if x.dim() >= 2 else None,
    "index_add": lambda x: x.index_add(0, torch.tensor([0, 0]), x.narrow(0, 0, 1).expand(2, *x.shape[1:]) * 2.0)
    if x.dim() > 0 and x.shape[0] > 0 else None,
    "scatter_add": lambda x: x.scatter_add(-1, torch.zeros(x.shape, dtype=torch.long), x * x) if x.dim() > 0 else None,
    "flip": lambda x: torch.flip(x, [0, -1]) if x.dim() >= 2 else None,
    "roll": lambda x: torch.roll(x, 1, -1) if x.dim() > 0 else None,
    "roll_flat": lambda x: torch.roll(x, -2),
    "repeat": lambda x: x.repeat([2] + [1] * x.dim()),
    "tril": lambda x: torch.tril(x) if x.dim() >= 2 else None,
    "triu1": lambda x: torch.triu(x, 1) if x.dim() >= 2 else None,
    "masked_fill": lambda x: x.masked_fill(x > 0.3, -0.5) if x.is_floating_point() else None,
    "chunk_first": lambda x: torch.chunk(x, 2, -1)[0] if x.dim() > 0 and x.shape[-1] > 0 else None,
    "split_last": lambda x: torch.split(x, 2, 0)[-1] if x.dim() > 0 else None,
    "unbind_last": lambda x: torch.unbind(x, 0)[-1] if x.dim() > 0 and x.shape[0] > 0 else None,
    "squeeze_all": lambda x: x.squeeze(),
    "sum_dims": lambda x: torch.sum(x, [0, -1], keepdim=True) if x.dim() >= 2 else None,
    "mean_dims": lambda x: torch.mean(x, [0, -1]) if x.dim() >= 2 else None,
    "var_dims": lambda x: torch.var(x, [0, -1]) if x.dim() >= 2 and x.shape[0] * x.shape[-1] > 1 else None,
    "ip_scalars": lambda x: (x * 1.0).mul_(2.5).add_(0.5).div_(-4.0).sub_(1.0),
    "ip_fill_view": lambda x: view_ip(x * 1.0, lambda c: c.select(-1, 0).fill_(0.5)) if x.dim() > 0 and x.shape[-1] > 0 else None,
    "ip_zero_view": lambda x: view_ip(x * 1.0, lambda c: c.narrow(0, 0, 1).zero_()) if x.dim() > 0 and x.shape[0] > 0 else None,
    # in-place through squeeze/unsqueeze of a non-contiguous view (views in PyTorch whatever the strides)
    "ip_unsqueeze_view": lambda x: view_ip(x * 1.0, lambda c: c.select(-1, 0).unsqueeze(0).mul_(2.5))
    if x.dim() > 0 and x.shape[-1] > 0 else None,
    "ip_squeeze_view": lambda x: view_ip(x * 1.0, lambda c: c.narrow(-1, 0, 1).squeeze(-1).add_(1.5))
    if x.dim() > 0 and x.shape[-1] > 0 else None,
}
BINARY = {
    "add": torch.add,
    "sub": torch.sub,
    "mul": torch.mul,
    "div": lambda a, b: a / (b * b + 0.5),
    "pow": lambda a, b: torch.pow(torch.abs(a) + 0.5, b),
    "maximum": torch.maximum,
    "atan2": lambda a, b: torch.atan2(a, b * b + 0.5),  # away from the jump at the origin and b < 0
    "minimum": torch.minimum,
    "where": lambda a, b: torch.where(a > b, a, b * 2.0),
    "where3": lambda a, b: torch.where(a > 0, b, a * 3.0),
    "matmul": torch.matmul,
    "linear": lambda a, b: F.linear(a, b) if b.dim() == 2 else None,
    "linear_bias": lambda a, b: F.linear(a, b, b[:, 0]) if b.dim() == 2 else None,
    "mse": lambda a, b: F.mse_loss(a, b) if a.shape == b.shape else None,
    "bce_logits": lambda a, b: F.binary_cross_entropy_with_logits(a, torch.sigmoid(b), reduction="none")
    if a.shape == b.shape else None,
    "mse_sum": lambda a, b: F.mse_loss(a, b, reduction="sum") if a.shape == b.shape else None,
    "l1": lambda a, b: F.l1_loss(a, b) if a.shape == b.shape else None,
    "l1_none": lambda a, b: F.l1_loss(a, b, reduction="none") if a.shape == b.shape else None,
    "smooth_l1": lambda a, b: F.smooth_l1_loss(a, b, reduction="none", beta=0.5) if a.shape == b.shape else None,
    "huber": lambda a, b: F.huber_loss(a, b, reduction="sum", delta=0.7) if a.shape == b.shape else None,
    # probabilities in [0.26, 0.74]: PyTorch's second derivative adds 1e-12 to p and 1 - p where
    # its first derivative clamps p (1 - p) at 1e-12, so the two differ near 0 and 1
    "bce": lambda a, b: F.binary_cross_entropy(probability(a), probability(b), reduction="none")
    if a.shape == b.shape else None,
    "bce_mean": lambda a, b: F.binary_cross_entropy(probability(a), probability(b)) if a.shape == b.shape else None,
    "kl_div": lambda a, b: F.kl_div(a, probability(b), reduction="none") if a.shape == b.shape else None,
    "kl_div_log": lambda a, b: F.kl_div(a, b, reduction="batchmean", log_target=True) if a.shape == b.shape else None,
    "margin_ranking": lambda a, b: F.margin_ranking_loss(a, b, torch.tanh(b), 0.3, reduction="none")
    if a.shape == b.shape else None,
    # not where b is a rounding error from 0 (program 867, float32: a layer_norm of a constant row is
    # -4e-7 in PyTorch, 0 here, and sign turns the two into targets -1 and 0)
    "hinge_embedding": lambda a, b: F.hinge_embedding_loss(a, torch.sign(b), 1.0, reduction="none")
    if a.shape == b.shape and a.is_floating_point() and not near_zero(b) else None,
    "gaussian_nll": lambda a, b: F.gaussian_nll_loss(a, b, b * b, reduction="none") if a.shape == b.shape else None,
    "poisson_nll": lambda a, b: F.poisson_nll_loss(a, torch.abs(b) + 0.5, True, True, reduction="none")
    if a.shape == b.shape else None,  # + 0.5: PyTorch's Stirling term sends a target of 0 a NaN gradient
    "cosine_similarity": lambda a, b: F.cosine_similarity(a, b, -1) if a.dim() > 0 and b.dim() > 0 else None,
    "pairwise_distance": lambda a, b: F.pairwise_distance(a, b) if a.dim() > 0 and b.dim() > 0 else None,
    "cat0": lambda a, b: torch.cat([a, b], 0),
    "cat_last": lambda a, b: torch.cat([a, b], -1),
    "stack0": lambda a, b: torch.stack([a, b], 0),
    "stack_last": lambda a, b: torch.stack([a, b], -1),
    "ip_add": lambda a, b: a.clone().add_(b),
    "ip_add_alpha": lambda a, b: a.clone().add_(b, alpha=-1.5),
    "ip_add_first": lambda a, b: a.clone().add_(b.reshape(-1)[:1].reshape([1] * a.dim()) if b.numel() else b),
    "ip_sub": lambda a, b: a.clone().sub_(b),
    "ip_mul": lambda a, b: a.clone().mul_(b),
    "ip_mul_t": lambda a, b: (a * 1.0).mul_(b.t() if b.dim() == 2 else b),
    "ip_div": lambda a, b: a.clone().div_(b * b + 0.5),
    "ip_copy": lambda a, b: a.clone().copy_(b),
    "view_ip_mul": lambda a, b: view_ip(a * 1.0, lambda c: c.narrow(0, 0, 1).mul_(b)) if a.dim() > 0 and a.shape[0] > 0 else None,
    "view_ip_copy": lambda a, b: view_ip(torch.zeros(a.shape), lambda c: c.select(-1, -1).copy_(b)) if a.dim() > 0 and a.shape[-1] > 0 else None,
    "stale_view": lambda a, b: stale_view(a, b),
    "detach_ip": lambda a, b: (a * 1.0).detach().mul_(b),
    "detach_view_ip": lambda a, b: (a * 1.0).detach().narrow(0, 0, 1).add_(b) if a.dim() > 0 and a.shape[0] > 0 else None,
    "view_chain_ip": lambda a, b: view_ip(
        a * 1.0, lambda c: c.transpose(0, -1).unsqueeze(0).narrow(-1, 0, 1).squeeze(0).mul_(b.sum()))
    if a.dim() > 0 and a.shape[0] > 0 else None,
    "view_then_base_ip": lambda a, b: view_then_base_ip(a, b) if a.dim() > 0 and a.shape[0] > 0 else None,
}


def probability(x):
    return torch.sigmoid(torch.tanh(x))


def view_ip(c, update):
    """c after an in-place op on one of its views"""
    update(c)
    return c


def view_then_base_ip(a, b):
    """a view written in place, then its base: the view shows (and differentiates) both"""
    c = a * 1.0
    v = c.narrow(0, 0, 1)
    v.mul_(2.0)
    c.mul_(b)
    return v


def stale_view(a, b):
    """a view of c = a * 1, taken before c.mul_(b): it shows the new values"""
    c = a * 1.0
    v = c.unsqueeze(0).transpose(0, -1)
    c.mul_(b)
    return v


def near_zero(b):
    """Some element of b is not 0 but within a rounding error of it (1e-9, float32 1e-5)."""
    tol = 1e-5 if b.dtype == torch.float32 else 1e-9
    return bool(((b != 0) & (torch.abs(b) < tol)).any())


def untied(x, d):
    """x, unless a slice along d is empty, has NaN, or two elements equal or within 1e-9 relative
    of each other (1e-5 in float32): values equal in exact arithmetic come out of either library
    a rounding error to one side or the other, and the gradient of a sort or median follows the
    order (program 3114's median of bce_with_logits(x, x) at x = +-0.639). Ties are parity.py's."""
    if x.shape[d] == 0 or bool(torch.isnan(x).any()):
        return None
    v = torch.sort(x, d).values.to(torch.float64)
    n = x.shape[d]
    lo, hi = v.narrow(d, 0, n - 1), v.narrow(d, 1, n - 1)
    tol = 1e-5 if x.dtype == torch.float32 else 1e-9
    return None if bool((hi - lo <= tol * (1 + torch.abs(hi))).any()) else x


def nonzero_norm(x, p, d, k):
    """The norm, unless a slice is all zeros (kept out: see the docstring)."""
    y = torch.linalg.vector_norm(x, p, d, k)
    return None if bool((y == 0).any()) else y


REDUCE = {
    "sum": lambda x, d, k: torch.sum(x, d, k),
    "mean": lambda x, d, k: torch.mean(x, d, k),
    "var": lambda x, d, k: torch.var(x, d, keepdim=k) if x.shape[d] > 1 else None,
    "var0": lambda x, d, k: torch.var(x, d, correction=0, keepdim=k),
    "amax": lambda x, d, k: torch.amax(x, d, k),
    "amin": lambda x, d, k: torch.amin(x, d, k),
    "max": lambda x, d, k: torch.max(x, d, k).values,
    "min": lambda x, d, k: torch.min(x, d, k).values,
    "logsumexp": lambda x, d, k: torch.logsumexp(x, d, k),
    "std": lambda x, d, k: torch.std(x, d, keepdim=k) if x.shape[d] > 1 else None,
    "norm": lambda x, d, k: nonzero_norm(x, 2, d, k),
    "norm1": lambda x, d, k: nonzero_norm(x, 1, d, k),
    "norm3": lambda x, d, k: nonzero_norm(x, 3, d, k),
    "norm_inf": lambda x, d, k: nonzero_norm(x, math.inf, d, k),
    "sort": lambda x, d, k: None if untied(x, d) is None else torch.sort(x, dim=d).values,
    "sort_descending": lambda x, d, k: None if untied(x, d) is None else torch.sort(x, dim=d, descending=True).values,
    "topk2": lambda x, d, k: None if untied(x, d) is None else torch.topk(x, min(2, x.shape[d]), d).values,
    "median": lambda x, d, k: None if untied(x, d) is None else torch.median(x, d, k).values,
    "cumsum": lambda x, d, k: torch.cumsum(x, d),
    "cumprod": lambda x, d, k: torch.cumprod(x, d),
    "prod": lambda x, d, k: torch.prod(x, d, k),
    # torch refuses int64 here, except without elements (it returns int64; chainrule goes floating)
    "softmax": lambda x, d, k: torch.softmax(x, d) if x.is_floating_point() else None,
    "log_softmax": lambda x, d, k: torch.log_softmax(x, d) if x.is_floating_point() else None,
}
REDUCTIONS = ["mean", "sum", "none"]


def shape_op(r, x):
    """A random shape, indexing or loss op on x: (name, int arguments, result) or None."""
    nd, op = x.dim(), r.choice(["reshape", "transpose", "permute", "unsqueeze", "squeeze", "expand", "narrow", "slice",
                                "select", "flatten", "t", "gather", "index_select", "cross_entropy", "nll_loss",
                                "layer_norm", "batch_norm", "group_norm", "pad"])
    if op == "reshape":
        n, dims = x.numel(), []
        while n > 1:
            f = r.choice([f for f in range(2, n + 1) if n % f == 0])
            dims.append(f)
            n //= f
        if n == 0:
            dims.append(0)
        if r.random() < 0.3:
            dims.append(1)
        if dims and r.random() < 0.3 and x.numel() > 0:
            dims[r.randrange(len(dims))] = -1
        r.shuffle(dims)
        return op, [len(dims)] + dims, x.reshape(dims)
    if op == "permute":
        p = list(range(nd))
        r.shuffle(p)
        return op, [nd] + p, x.permute(p)
    if op == "unsqueeze":
        d = r.randrange(-nd - 1, nd + 1)
        return op, [d], x.unsqueeze(d)
    if op == "expand":
        dims = [r.choice([2, 3]) if s == 1 else s for s in x.shape]
        if r.random() < 0.5:
            dims = [2] + dims
        return op, [len(dims)] + dims, x.expand(dims)
    if nd == 0:
        return None
    d = r.randrange(nd)
    n = x.shape[d]
    if op == "transpose":
        d0, d1 = r.randrange(-nd, nd), r.randrange(-nd, nd)
        return op, [d0, d1], x.transpose(d0, d1)
    if op == "squeeze":
        return op, [d - nd], x.squeeze(d - nd)
    if op == "narrow" and n > 0:
        start = r.randrange(n)
        length = r.randint(0 if r.random() < 0.1 else 1, n - start)
        return op, [d, start, length], x.narrow(d, start, length)
    if op == "slice" and n > 0:
        start, end, step = r.randrange(-n, n), r.randrange(-n, n + 2), r.choice([1, 2, 3])
        return op, [d, start, end, step], x[(slice(None),) * d + (slice(start, end, step),)]
    if op == "select" and n > 0:
        i = r.randrange(-n, n)
        return op, [d - nd, i], x.select(d - nd, i)
    if op == "flatten":
        end = r.randrange(d, nd)
        return op, [d, end], x.flatten(d, end)
    if op == "t" and nd == 2:
        return op, [], x.t()
    if op == "gather" and n > 0:
        ishape = [r.randint(1, s) if j != d else r.randint(1, 4) for j, s in enumerate(x.shape)]
        if 0 in ishape:
            return None
        idx = [r.randrange(n) for _ in range(math.prod(ishape))]
        return op, [d, len(ishape)] + ishape + idx, torch.gather(x, d, torch.tensor(idx).reshape(ishape))
    if op == "index_select" and n > 0:
        idx = [r.randrange(n) for _ in range(r.randint(1, 4))]
        return op, [d, len(idx)] + idx, torch.index_select(x, d, torch.tensor(idx))
    if op in ("cross_entropy", "nll_loss") and nd == 2 and x.shape[1] > 0:
        # some targets ignored (PyTorch's default -100, or a class named as ignore_index), class
        # weights 0.5 + 0.25 c in some programs
        ignore = r.choice([-100, -100, r.randrange(x.shape[1])])
        target = torch.tensor([-100 if r.random() < 0.2 else r.randrange(x.shape[1]) for _ in range(x.shape[0])])
        red = r.randrange(3)
        smoothing = r.choice([0, 2]) if op == "cross_entropy" else 0  # tenths
        weighted = r.randrange(2)
        if ignore != -100:
            target[target == -100] = ignore
        if red == 0 and bool((target == ignore).all()):  # kept out on purpose: see the docstring
            ignore, target[0] = -100, 0
        w = 0.5 + 0.25 * torch.arange(x.shape[1], dtype=x.dtype) if weighted else None
        if op == "cross_entropy":
            y = F.cross_entropy(x, target, w, reduction=REDUCTIONS[red], label_smoothing=smoothing / 10, ignore_index=ignore)
        else:
            y = F.nll_loss(torch.log_softmax(x, 1), target, w, reduction=REDUCTIONS[red], ignore_index=ignore)
        return op, [red, smoothing, weighted, ignore, len(target)] + target.tolist(), y
    if op == "layer_norm" and x.numel() > 0 and x.is_floating_point():
        k, affine = r.randint(1, nd), r.randrange(2)  # over the last k dims; weight and bias in some
        shape = x.shape[nd - k:]
        ar = torch.arange(math.prod(shape), dtype=x.dtype).reshape(shape)
        w, b = (0.5 + 0.25 * ar, 0.1 * ar) if affine else (None, None)
        return op, [k, affine], F.layer_norm(x, shape, w, b)
    if op == "group_norm" and nd >= 2 and x.shape[1] > 0 and x.numel() > 0 and x.is_floating_point():
        c = x.shape[1]
        groups, affine = r.choice([g for g in range(1, c + 1) if c % g == 0]), r.randrange(2)
        if x.numel() // x.shape[0] // groups < 3:  # not over 1 or 2 values (see the docstring)
            return None
        ar = torch.arange(c, dtype=x.dtype)
        w, b = (0.5 + 0.25 * ar, 0.1 * ar) if affine else (None, None)
        return op, [groups, affine], F.group_norm(x, groups, w, b)
    if op == "pad":  # constant padding (value 0.5) of the last k dims, some amounts negative
        amounts = []
        for s in reversed(x.shape[nd - r.randint(1, nd):]):
            before = r.randint(-min(s, 1), 2)
            amounts += [before, r.randint(-min(s + before, 1), 2)]
        return op, [len(amounts)] + amounts, F.pad(x, amounts, value=0.5)
    if op == "batch_norm" and nd >= 2 and x.shape[1] > 0 and x.numel() // x.shape[1] > 1 and x.is_floating_point():
        training, affine = r.randrange(2), r.randrange(2)  # fixed running statistics when not training
        ar = torch.arange(x.shape[1], dtype=x.dtype)
        w, b = (0.5 + 0.25 * ar, 0.1 * ar) if affine else (None, None)
        y = F.batch_norm(x, 0.1 * ar, 1 + 0.5 * ar, w, b, bool(training))
        return op, [training, affine], ContiguousGradient.apply(y)
    return None


class ContiguousGradient(torch.autograd.Function):
    """The identity, whose backward makes the gradient contiguous. PyTorch 1.13's batch_norm
    backward is wrong when its gradient is strided as channels-last and its input is not: its
    own gradcheck fails for F.batch_norm(x, ...).permute(0, 3, 1, 2) with x of shape [1, 2, 1, 4],
    in training and eval mode (found by these programs: seed 3193)."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return g.contiguous()


def leaf_values(r, n):
    out = []
    while len(out) < n:
        v = round(r.gauss(0, 1), 3)
        if abs(v) >= 0.01:  # no exact zeros: elu''/selu'' at 0 differ on purpose (parity.py)
            out.append(v)
    return out


def generate(seed, max_ops):
    """The program's lines, the torch tensors by name, the leaves and the outputs (or None)."""
    r = random.Random(seed)
    lines, vals, leaves = [], {}, []
    for i in range(r.randint(1, 3)):
        shape = [r.choice([1, 1, 2, 3, 4]) for _ in range(r.choice([0, 1, 1, 2, 2, 2, 3, 3, 4]))]
        name = f"l{i}"
        # L: a leaf; K: a constant (I: an int64 one); T: a leaf that is a transposed (non-contiguous)
        # view; D: a 0-d float64 leaf in a float32 program (the dtype rules for 0-d tensors; in a
        # float64 program a float32 leaf's own rounding would exceed the tolerance)
        kind = r.choice("LLLKTI" + ("D" if torch.get_default_dtype() == torch.float32 else "")) if i > 0 else "L"
        if kind == "T" and len(shape) < 2:
            kind = "L"
        if kind == "D":
            shape = []
        if kind == "I":  # an int64 constant: small whole numbers
            v = torch.tensor([r.randint(-3, 3) for _ in range(math.prod(shape))], dtype=torch.int64).reshape(shape)
        else:
            v = torch.tensor(leaf_values(r, math.prod(shape)), dtype=torch.float64 if kind == "D" else None).reshape(shape)
        vals[name] = v if kind in "KI" else (v.transpose(0, 1) if kind == "T" else v).requires_grad_()
        if kind not in "KI":
            leaves.append(name)
        lines.append(f"{kind} {name} {len(shape)} {' '.join(map(str, shape))} {' '.join(map(repr, v.reshape(-1).tolist()))}")
    k = 0
    for _ in range(r.randint(2, max_ops)):
        names = list(vals)
        a = r.choice(names)
        x = vals[a]
        kind = r.random()
        try:
            if kind < 0.3:
                op = r.choice(list(UNARY))
                y, line = UNARY[op](x), f"U {{}} {op} {a}"
            elif kind < 0.55:
                op, b = r.choice(list(BINARY)), r.choice(names)
                y, line = BINARY[op](x, vals[b]), f"B {{}} {op} {a} {b}"
            elif kind < 0.75:
                if x.dim() == 0:
                    continue
                op, d, keepdim = r.choice(list(REDUCE)), r.randrange(-x.dim(), x.dim()), r.randrange(2)
                y, line = REDUCE[op](x, d, bool(keepdim)), f"R {{}} {op} {a} {d} {keepdim}"
            else:
                s = shape_op(r, x)
                if s is None:
                    continue
                op, args, y = s
                line = f"S {{}} {op} {a} " + " ".join(map(str, args))
        except (RuntimeError, IndexError, ValueError):
            continue  # torch refuses these operands
        if y is None or y.numel() > 200:
            continue
        name = f"v{k}"
        k += 1
        vals[name] = y
        lines.append(line.format(name))
    outs = [n for n in vals if n.startswith("v")][-3:]
    if not outs:
        return None
    lines.append("O " + " ".join(outs))
    return lines, vals, leaves, outs


def weights(t, salt):
    return torch.tensor([math.sin(1.0 + i * 0.7 + salt) for i in range(t.numel())]).reshape(t.shape)


def torch_results(vals, leaves, outs):
    res = {f"v {o}": vals[o] for o in outs}
    loss = sum((vals[o] * weights(vals[o], i)).sum() for i, o in enumerate(outs))
    ls = [vals[name] for name in leaves]
    gs, hs = [None] * len(ls), [None] * len(ls)
    if ls and loss.requires_grad:
        gs = torch.autograd.grad(loss, ls, create_graph=True, allow_unused=True)
        terms = [(g * weights(g, 3 + j)).sum() for j, g in enumerate(gs) if g is not None and g.requires_grad]
        if terms:
            hs = torch.autograd.grad(sum(terms), ls, allow_unused=True)
    for name, x, g, h in zip(leaves, ls, gs, hs):
        res[f"g {name}"] = torch.zeros_like(x) if g is None else g
        res[f"h {name}"] = torch.zeros_like(x) if h is None else h
    return {key: (list(t.shape), t.detach().clone().contiguous().reshape(-1).tolist(), str(t.dtype).replace("torch.", ""))
            for key, t in res.items()}


TOLERANCE = 1e-9


def same(a, b):
    return a == b or abs(a - b) <= TOLERANCE * (1 + abs(b)) or (math.isnan(a) and math.isnan(b))


def main():
    global TOLERANCE
    exe = sys.argv[1]
    first, count, max_ops = (int(a) for a in sys.argv[2:5]) if len(sys.argv) > 4 else (0, 600, 12)
    dtype = sys.argv[5] if len(sys.argv) > 5 else "float64"
    if dtype == "float32":
        torch.set_default_dtype(torch.float32)
        TOLERANCE = 2e-4
        # PyTorch 1.13's float32 gelu backward returns zeros for a non-contiguous gradient
        del UNARY["gelu"]
        # the product of a whole tensor has gradients of very different sizes, which a layer_norm
        # or softmax after it cancels: float32 rounding alone then moves small ones by 1e-3
        # (program 5559: PyTorch's own float32 result is as far from its float64 one as ours)
        del UNARY["prod_all"]
    elif dtype != "float64":
        sys.exit(f"unknown dtype {dtype}: float64 or float32")
    programs = {}
    for seed in range(first, first + count):
        p = generate(seed, max_ops)
        if p is not None:
            programs[seed] = p
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for seed, p in programs.items():
            f.write(f"P {seed}\n" + "\n".join(p[0]) + "\n")
    try:
        run = subprocess.run([exe, f.name, dtype], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if run.returncode != 0:
        print(f"{exe} failed ({run.returncode}):\n{run.stderr[-3000:]}")
        return 1
    ours = {}
    for line in run.stdout.splitlines():
        seed, kind, rest = line.split(" ", 2)
        if kind == "ERR":
            ours.setdefault(int(seed), {})["ERR"] = rest
            continue
        name, our_dtype, shape, numbers = *rest.split(" ", 2)[:2], *rest.split(" ", 2)[2].split("|")
        ours.setdefault(int(seed), {})[f"{kind} {name}"] = ([int(d) for d in shape.split()],
                                                           [float(v) for v in numbers.split()], our_dtype)
    differ, skipped = 0, 0
    for seed, (lines, vals, leaves, outs) in programs.items():
        try:
            ref = torch_results(vals, leaves, outs)
        except RuntimeError:
            skipped += 1  # PyTorch 1.13 fails on a few (VarBackward on one-element tensors)
            continue
        mine = ours.get(seed, {})
        bad = None
        if "ERR" in mine:
            bad = f"chainrule: {mine['ERR']}"
        for key, (shape, numbers, ref_dtype) in ref.items():
            if bad:
                break
            if key not in mine:
                bad = f"{key}: missing"
            elif mine[key][0] != shape:
                bad = f"{key}: shape {mine[key][0]}, PyTorch {shape}"
            elif mine[key][2] != ref_dtype:
                bad = f"{key}: dtype {mine[key][2]}, PyTorch {ref_dtype}"
            elif len(mine[key][1]) != len(numbers) or not all(map(same, mine[key][1], numbers)):
                bad = f"{key}:\n  chainrule {mine[key][1]}\n  PyTorch   {numbers}"
        if bad:
            differ += 1
            print(f"program {seed}: {bad}\n  " + "\n  ".join(lines))
    print(f"{len(programs)} random {dtype} programs (seeds {first}..{first + count - 1}, up to {max_ops} ops), "
          f"{len(programs) - skipped - differ} agree with PyTorch {torch.__version__}, {differ} differ, "
          f"{skipped} skipped (PyTorch fails)")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
