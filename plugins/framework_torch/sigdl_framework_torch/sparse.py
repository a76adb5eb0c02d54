"""An inference path that runs pruned fully connected layers as sparse matrices.

Magnitude pruning (Han et al., "Learning both weights and connections for efficient neural
networks", NIPS 2015) leaves most of a fully connected layer's weights at exactly zero, but a
dense ``torch.nn.Linear`` still reads and multiplies every one of them. Deep Compression
(Han, Mao & Dally, ICLR 2016, section 6 and Figure 9) stores the kept weights in compressed
sparse row (CSR) form and computes ``y = W x + b`` at batch 1 with a sparse
matrix–vector product (MKL's ``csrmv`` against MKL's dense ``gemv``), and measured about 3×
on a CPU for AlexNet's and VGG-16's pruned FC layers. At batch 1 a FC layer is bound by the
memory traffic of its weights; CSR reads 8 bytes per kept weight (a float32 value and an
int32 column index) instead of 4 bytes per weight, so it can only win well below 50 %
density, and wins big at the 4–9 % of AlexNet's and VGG-16's fc6/fc7.

:class:`SparseLinear` holds a pruned ``Linear``'s weight as CSR (``crow_indices``,
``col_indices`` and ``values`` buffers, int32 indices) and computes the layer with one of
two kernels, both measured by ``bench/sparse_fc.py`` (see ``bench/results/sparse_fc.md``):

* ``"torch-csr"`` — ``torch.addmv`` / ``torch.addmm`` on a ``torch.sparse_csr_tensor`` with
  int32 indices, which PyTorch's x86 builds hand to MKL's sparse BLAS (``mkl_sparse_s_mv``)
  and which follows ``torch.set_num_threads``. With int64 indices PyTorch converts them to
  int32 on every call, which nearly doubled the time (1.9× in the benchmark), so the
  indices are stored as int32. This was the fastest kernel we measured for every layer shape at 1 thread.
* ``"scipy-csr"`` — ``scipy.sparse`` CSR times a dense vector through NumPy (single threaded,
  no OpenMP), the runner-up at 1 thread, and the fastest at 2 threads on our shared 2-core
  machine, where the OpenMP kernels waited for the busy second core.

``"auto"`` (the default) takes ``"torch-csr"`` where PyTorch can run it (MKL's sparse BLAS,
which PyTorch enables in its Linux x86 builds) and ``"scipy-csr"`` otherwise. We also tried ``torch.embedding_bag`` with per-sample weights as an SpMV (several
times slower than MKL in a probe; not kept in the benchmark) and storing the values as k-means
codebook indices decoded by a gather on every call (2.2× slower than float values in the
benchmark: the decode costs more than the product) — neither is used.

:func:`sparsify` returns a copy of a model in which every plain ``nn.Linear`` whose weight
density is at most ``max_density`` (and, optionally, which has at least ``min_weights``
weights) is a :class:`SparseLinear`; its outputs equal the dense model's to float32
rounding. What to expect at batch 1 (``bench/results/sparse_fc.md`` and
``model_inference.md``): AlexNet's and VGG-16's fc6/fc7 at 4–9 % density run 3.4–7.7×
faster at 1 thread; a 23–25 % dense fc8 gains only 1.2–1.4×; LeNet-sized layers (≤ 400 k
weights) gain nothing, because a sparse call's fixed cost (MKL's matrix handle, built on
every call, and the Python call) is as large as their whole dense product —
``min_weights`` (e.g. ``1 << 20``) leaves such layers dense. The result is for inference
only: putting a :class:`SparseLinear` into training mode, or feeding it an input that
requires a gradient, raises :class:`~sigdl_core.errors.InvalidValueError`.
"""

from __future__ import annotations

import copy
import functools
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from sigdl_core.errors import InvalidValueError

__all__ = [
    "DEFAULT_MAX_DENSITY",
    "KERNELS",
    "SparseLinear",
    "default_kernel",
    "sparse_layers",
    "sparsify",
]

#: Kernels :class:`SparseLinear` can run (``"auto"`` picks one of the other two).
KERNELS: tuple[str, ...] = ("auto", "torch-csr", "scipy-csr")

#: Deep Compression's densest pruned FC layer (AlexNet's fc8) keeps 25 % of its weights.
#: The break-even measured at 1 thread (``bench/results/sparse_fc.md``, density sweep) lies
#: between 25 % (1000×4096) and 35 % (4096×4096); pass less to convert only clear wins.
DEFAULT_MAX_DENSITY = 0.25  # measured crossover: CSR stops beating dense at ~25 % (bench/sparse_fc.py)


_TRAINING_HINT = (
    "SparseLinear is for inference only: train and fine-tune the dense model (the pruning "
    "projection keeps the zeros), then call sparsify() on the result"
)


@functools.lru_cache(maxsize=1)
def default_kernel() -> str:
    """The kernel ``"auto"`` stands for here: ``"torch-csr"`` where it works, else ``"scipy-csr"``.

    PyTorch computes a CSR matrix–vector product on the CPU only through MKL's sparse BLAS,
    which it enables on Linux x86 builds; elsewhere ``torch.addmv`` on a CSR tensor raises.
    One tiny product tells which case this is.
    """
    if not torch.backends.mkl.is_available():
        return "scipy-csr"
    try:
        probe = _csr_tensor(
            torch.tensor([0, 1], dtype=torch.int32), torch.tensor([0], dtype=torch.int32), torch.ones(1), (1, 1)
        )
        ok = float(torch.addmv(torch.ones(1), probe, torch.full((1,), 2.0))[0]) == 3.0
    except RuntimeError:
        ok = False
    return "torch-csr" if ok else "scipy-csr"


def _check_kernel(kernel: str) -> str:
    if kernel not in KERNELS:
        raise InvalidValueError(
            f"unknown sparse kernel {kernel!r}", "choose one of: " + ", ".join(KERNELS)
        )
    if kernel == "auto":
        return default_kernel()
    if kernel == "torch-csr" and default_kernel() != "torch-csr":
        raise InvalidValueError(
            "the torch-csr kernel needs a PyTorch build with MKL's sparse BLAS (Linux x86), not this one",
            "use kernel='auto' or 'scipy-csr'",
        )
    return kernel


def _csr_tensor(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    with warnings.catch_warnings():
        # "Sparse CSR tensor support is in beta state" is printed once per process otherwise.
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
        return torch.sparse_csr_tensor(crow, col, values, size=shape, check_invariants=False)


class SparseLinear(nn.Module):
    """A pruned ``nn.Linear`` stored as CSR, for inference: ``y = x Wᵀ + b``.

    The weight lives in three buffers, ``crow_indices`` (``out_features + 1`` int32 row
    offsets), ``col_indices`` (int32) and ``values``; ``bias`` is a buffer too (or ``None``).
    Build one with :meth:`from_linear`. Inputs are ``(..., in_features)`` like ``nn.Linear``.
    """

    crow_indices: torch.Tensor
    col_indices: torch.Tensor
    values: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        crow_indices: torch.Tensor,
        col_indices: torch.Tensor,
        values: torch.Tensor,
        bias: torch.Tensor | None = None,
        kernel: str = "auto",
    ) -> None:
        super().__init__()
        self.training = False
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.kernel = _check_kernel(kernel)
        crow = torch.as_tensor(crow_indices).detach()
        col = torch.as_tensor(col_indices).detach()
        vals = torch.as_tensor(values).detach()
        if crow.ndim != 1 or crow.numel() != self.out_features + 1:
            raise InvalidValueError(
                f"crow_indices has shape {tuple(crow.shape)}, expected ({self.out_features + 1},)",
                "build the layer with SparseLinear.from_linear(linear)",
            )
        if col.ndim != 1 or vals.ndim != 1 or col.numel() != vals.numel() or int(crow[-1]) != vals.numel():
            raise InvalidValueError(
                "col_indices and values must be 1-D, of equal length, and end crow_indices",
                "build the layer with SparseLinear.from_linear(linear)",
            )
        if not vals.is_floating_point():
            raise InvalidValueError(f"values have dtype {vals.dtype}, not a float type", "give float32 weights")
        if vals.numel() >= 2**31:
            raise InvalidValueError(
                f"{vals.numel()} kept weights do not fit int32 CSR indices", "prune the layer further or split it"
            )
        if col.numel() and (int(col.min()) < 0 or int(col.max()) >= self.in_features):
            raise InvalidValueError("a column index is outside the layer's inputs", "check in_features")
        self.register_buffer("crow_indices", crow.to(torch.int32).contiguous())
        self.register_buffer("col_indices", col.to(torch.int32).contiguous())
        self.register_buffer("values", vals.contiguous())
        if bias is not None:
            b = torch.as_tensor(bias).detach().to(vals.dtype).contiguous()
            if b.shape != (self.out_features,):
                raise InvalidValueError(
                    f"bias has shape {tuple(b.shape)}, expected ({self.out_features},)", "give one bias per output"
                )
            self.register_buffer("bias", b)
        else:
            self.register_buffer("bias", None)
        self._fast: tuple[Any, ...] | None = None

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_linear(cls, linear: nn.Linear, kernel: str = "auto") -> SparseLinear:
        """The CSR form of ``linear`` (its zeros dropped, everything else exact)."""
        if not isinstance(linear, nn.Linear):
            raise InvalidValueError(
                f"expected a torch.nn.Linear, got {type(linear).__name__}", "pass a fully connected layer"
            )
        with torch.no_grad():
            weight = linear.weight.detach()
            if weight.device.type != "cpu":
                raise InvalidValueError(
                    f"layer weight is on {weight.device}, the sparse kernels run on the CPU",
                    "move the model to the CPU first (model.cpu())",
                )
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support is in beta.*")
                csr = weight.to_sparse_csr()
            bias = None if linear.bias is None else linear.bias.detach().clone()
            return cls(
                linear.in_features,
                linear.out_features,
                csr.crow_indices(),
                csr.col_indices(),
                csr.values().clone(),
                bias,
                kernel=kernel,
            )

    # ------------------------------------------------------------------ properties

    @property
    def nnz(self) -> int:
        """The number of kept (stored) weights."""
        return int(self.values.numel())

    @property
    def density(self) -> float:
        """Kept weights over all weights."""
        return self.nnz / float(self.in_features * self.out_features)

    def dense_weight(self) -> torch.Tensor:
        """The weight as a dense ``out_features × in_features`` tensor (for checks and export)."""
        return self._torch_matrix().to_dense()

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, density={self.density:.4f}, kernel={self.kernel!r}"
        )

    # ------------------------------------------------------------------ inference only

    def train(self, mode: bool = True) -> SparseLinear:
        """Refuses training mode (``eval()``, i.e. ``train(False)``, is fine)."""
        if mode:
            raise InvalidValueError("a SparseLinear layer cannot be put into training mode", _TRAINING_HINT)
        return super().train(False)

    # ------------------------------------------------------------------ kernels
    #
    # At LeNet sizes a layer's whole product takes tens of microseconds, so the per-call
    # Python work matters: the prepared matrix is cached together with the buffer objects it
    # was made from and reused while they are the same objects (an in-place change, such as
    # load_state_dict, is seen through the shared storage; .to()/.double() replace them).

    def _prepared(self) -> tuple[Any, ...]:
        """(values, col_indices, crow_indices, bias, matrix) for the current buffers."""
        buffers = self._buffers
        fast = self._fast
        if (
            fast is not None
            and fast[0] is buffers["values"]
            and fast[1] is buffers["col_indices"]
            and fast[2] is buffers["crow_indices"]
            and fast[3] is buffers["bias"]
        ):
            return fast
        values, col, crow, bias = buffers["values"], buffers["col_indices"], buffers["crow_indices"], buffers["bias"]
        assert values is not None and col is not None and crow is not None
        shape = (self.out_features, self.in_features)
        if self.kernel == "scipy-csr":
            import scipy.sparse

            matrix: Any = scipy.sparse.csr_array((values.numpy(), col.numpy(), crow.numpy()), shape=shape, copy=False)
        else:
            matrix = _csr_tensor(crow, col, values, shape)
        self._fast = (values, col, crow, bias, matrix)
        return self._fast

    def _torch_matrix(self) -> torch.Tensor:
        buffers = self._buffers
        return _csr_tensor(
            buffers["crow_indices"], buffers["col_indices"], buffers["values"], (self.out_features, self.in_features)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():
            raise InvalidValueError("a SparseLinear layer got an input that requires a gradient", _TRAINING_HINT)
        values, _, _, bias, matrix = self._prepared()
        if x.dtype != values.dtype or x.shape[-1:] != (self.in_features,):
            self._refuse(x, values.dtype)
        # No autograd graph can form: no buffer requires a gradient and neither does x.
        if self.kernel == "scipy-csr":
            return self._scipy(x, matrix, bias)
        if x.dim() == 2 and x.shape[0] == 1:  # batch 1, the case the kernel is chosen for
            vector = x[0]
            if not vector.is_contiguous():
                vector = vector.contiguous()
            y = torch.mv(matrix, vector) if bias is None else torch.addmv(bias, matrix, vector)
            return y.unsqueeze(0)
        if x.dim() == 1:
            vector = x.contiguous()
            return torch.mv(matrix, vector) if bias is None else torch.addmv(bias, matrix, vector)
        rows = x.reshape(-1, self.in_features).t()
        y = torch.sparse.mm(matrix, rows) if bias is None else torch.addmm(bias.unsqueeze(1), matrix, rows)
        return y.t().contiguous().reshape(*x.shape[:-1], self.out_features)

    def _refuse(self, x: torch.Tensor, dtype: torch.dtype) -> None:
        if x.shape[-1:] != (self.in_features,):
            raise InvalidValueError(
                f"input of shape {tuple(x.shape)} does not end in in_features={self.in_features}",
                "give (..., in_features) inputs, as to the dense layer",
            )
        raise InvalidValueError(
            f"input dtype {x.dtype} differs from the layer's {dtype}", f"convert the input with .to({dtype})"
        )

    def _scipy(self, x: torch.Tensor, matrix: Any, bias: torch.Tensor | None) -> torch.Tensor:
        if x.device.type != "cpu":
            raise InvalidValueError("the scipy-csr kernel runs on the CPU only", "move the input to the CPU")
        rows = x.reshape(-1, self.in_features).contiguous().numpy()
        y = matrix @ rows[0] if rows.shape[0] == 1 else (matrix @ rows.T).T
        out = torch.from_numpy(np.ascontiguousarray(y))
        if bias is not None:
            out = out + bias
        return out.reshape(*x.shape[:-1], self.out_features)

    # ------------------------------------------------------------------ copies

    def __deepcopy__(self, memo: dict[int, Any]) -> SparseLinear:
        clone = SparseLinear(
            self.in_features,
            self.out_features,
            self.crow_indices.clone(),
            self.col_indices.clone(),
            self.values.clone(),
            None if self.bias is None else self.bias.clone(),
            kernel=self.kernel,
        )
        memo[id(self)] = clone
        return clone

    def _apply(self, fn: Any, recurse: bool = True) -> SparseLinear:  # .to(), .float(), .double() ...
        result = super()._apply(fn, recurse)
        self._fast = None
        return result


def _density(weight: torch.Tensor) -> float:
    return float(torch.count_nonzero(weight)) / float(max(weight.numel(), 1))


def sparsify(
    module: nn.Module,
    max_density: float = DEFAULT_MAX_DENSITY,
    *,
    min_weights: int = 0,
    kernel: str = "auto",
) -> nn.Module:
    """A copy of ``module`` (in eval mode) with its sparse ``nn.Linear`` layers in CSR form.

    Every plain ``torch.nn.Linear`` (not a subclass, such as the output projection that
    ``nn.MultiheadAttention`` reads directly) whose weight has at most ``max_density`` of
    its entries non-zero and at least ``min_weights`` entries becomes a
    :class:`SparseLinear` running ``kernel``. ``module`` itself is left as it was. Layers
    of a few hundred thousand weights or fewer run no faster sparse at batch 1 (see the
    module docstring); ``min_weights=1 << 20`` keeps them dense.
    """
    if not isinstance(module, nn.Module):
        raise InvalidValueError(f"expected a torch.nn.Module, got {type(module).__name__}", "pass the model itself")
    if (
        isinstance(max_density, bool)
        or not isinstance(max_density, (int, float))
        or not 0.0 < float(max_density) <= 1.0
    ):
        raise InvalidValueError(
            f"max_density {max_density!r} is not a fraction in (0, 1]",
            "give the highest share of non-zero weights a layer may keep and still be made sparse, e.g. 0.25",
        )
    if isinstance(min_weights, bool) or not isinstance(min_weights, int) or min_weights < 0:
        raise InvalidValueError(
            f"min_weights {min_weights!r} is not a whole number >= 0",
            "e.g. 1048576 to keep smaller layers dense, or 0 for all",
        )
    _check_kernel(kernel)
    result = copy.deepcopy(module)
    result.eval()
    replaced: dict[int, nn.Module] = {}
    for parent in list(result.modules()):
        for name, child in list(parent._modules.items()):  # named_children() hides repeats
            if type(child) is not nn.Linear:
                continue
            if id(child) not in replaced:
                weight = child.weight.detach()
                if weight.numel() < min_weights or _density(weight) > float(max_density):
                    replaced[id(child)] = child
                else:
                    replaced[id(child)] = SparseLinear.from_linear(child, kernel=kernel)
            setattr(parent, name, replaced[id(child)])
    return result


def sparse_layers(module: nn.Module) -> dict[str, SparseLinear]:
    """The :class:`SparseLinear` layers of ``module`` by their qualified names."""
    return {name: m for name, m in module.named_modules() if isinstance(m, SparseLinear)}
