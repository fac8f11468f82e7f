"""Simulate a second device on the CPU, so device bugs show up in CPU tests.

``VirtualCuda`` is a ``TorchFunctionMode`` that gives every tensor one of two *virtual*
devices, ``cpu`` or ``cuda:0``, while all arithmetic still runs on the CPU. It applies
CUDA's rules:

* a factory called with ``device="cuda"`` (or ``cuda:0``, ``torch.device("cuda")``), and
  ``x.to("cuda")``, ``x.cuda()``, ``x.to(other_cuda_tensor)``, make device tensors (a copy);
  a factory without ``device=`` (``torch.zeros(3)``, ``torch.from_numpy(a)``,
  ``torch.as_tensor(list)``) makes a host tensor, as on a real machine;
* the result of an op on a device tensor is a device tensor (views stay on its storage);
* an op that mixes a device tensor and a host tensor of one or more dimensions raises
  ``RuntimeError("Expected all tensors to be on the same device ...")`` as CUDA does; 0-d
  host tensors (scalars) may mix, and indexing / ``copy_`` / ``__setitem__`` may cross;
* ``x.numpy()`` and ``np.asarray(x)`` of a device tensor raise ``TypeError`` as CUDA does;
  pickling one (``torch.save``) raises too (stricter than CUDA: a file written on a GPU
  must load on a machine without one);
* ``x.device`` and ``x.is_cuda`` report the virtual device, so code that branches on
  ``device.type == "cpu"`` takes its device branch; ``torch.cuda.is_available()`` is True
  and ``torch.cuda.synchronize()`` does nothing while the mode is on.

Device-ness is kept per storage (``untyped_storage().data_ptr()``), so ``param.data = x``
and views keep it; the storages stay referenced while the mode is on, so a freed pointer is
never reused by a host tensor. What it cannot see: CUDA-only kernels and their numerics
(float differences, cuFFT), asynchronous errors, memory, speed, pinned memory (a no-op copy
here), custom C++/numba code called on ``data_ptr`` without going through torch. Keep the
cases tiny: every op goes through Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import torch
from torch.overrides import TorchFunctionMode

CUDA = torch.device("cuda", 0)
CPU = torch.device("cpu")
_CROSSING = {
    "__getitem__",
    "__setitem__",
    "copy_",
    "index_put_",
    "index_put",
    "_has_compatible_shallow_copy_type",
    "__set__",
}


def _is_cuda_spec(d: Any) -> bool:
    """True if ``d`` names a CUDA device (str or torch.device)."""
    if isinstance(d, torch.device):
        return d.type == "cuda"
    return isinstance(d, str) and d.startswith("cuda")


def _is_device_spec(d: Any) -> bool:
    return isinstance(d, torch.device) or (
        isinstance(d, str) and (d == "cpu" or d.startswith("cuda"))
    )


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor in ``obj`` (nested tuples, lists, dicts)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _name(func: Any) -> str:
    return str(getattr(func, "__name__", func))


class DeviceMismatch(RuntimeError):
    """An op mixed a (virtual) CUDA tensor and a host tensor."""


class VirtualCuda(TorchFunctionMode):
    """The mode; use ``with VirtualCuda() as vc:`` and ``vc.on_device(t)``."""

    def __init__(self) -> None:
        super().__init__()
        self._storages: dict[int, Any] = {}
        self._patches = [
            mock.patch("torch.cuda.is_available", lambda: True),
            mock.patch("torch.cuda.synchronize", lambda *a, **k: None),
            mock.patch.object(torch.Tensor, "_reduce_ex_internal", self._guarded_reduce()),
        ]

    def _guarded_reduce(self):
        """``Tensor._reduce_ex_internal`` (pickling, ``torch.save``) refusing device tensors."""
        original = torch.Tensor._reduce_ex_internal
        mode = self

        def reduce(t: torch.Tensor, proto: int):
            if mode.on_device(t):
                raise TypeError(
                    "a cuda:0 tensor is being pickled (torch.save): the file would need a "
                    "GPU to load; move it to the CPU first"
                )
            return original(t, proto)

        return reduce

    def __enter__(self) -> VirtualCuda:
        for p in self._patches:
            p.start()
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        for p in self._patches:
            p.stop()

    # ------------------------------------------------------------------ tagging
    def _ptr(self, t: torch.Tensor) -> int:
        try:
            return int(t.untyped_storage().data_ptr())
        except (RuntimeError, NotImplementedError):
            return 0

    def on_device(self, t: torch.Tensor) -> bool:
        """True if ``t`` lives on the virtual CUDA device."""
        p = self._ptr(t)
        return p != 0 and p in self._storages

    def _tag(self, out: Any) -> Any:
        for t in _tensors(out):
            p = self._ptr(t)
            if p:
                self._storages[p] = t.untyped_storage()
        return out

    def _host_copy(self, t: torch.Tensor) -> torch.Tensor:
        out = t.detach().clone() if not t.requires_grad else t.clone()
        self._storages.pop(self._ptr(out), None)
        return out

    # ------------------------------------------------------------------ dispatch
    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
        kwargs = dict(kwargs or {})
        owner = getattr(func, "__self__", None)
        if owner is torch.Tensor.device:
            return CUDA if self.on_device(args[0]) else CPU
        if owner is torch.Tensor.is_cuda:
            return self.on_device(args[0])
        name = _name(func)
        if name in ("numpy", "__array__") and args and self.on_device(args[0]):
            raise TypeError(
                f"can't convert cuda:0 device type tensor to numpy ({name}). "
                "Use Tensor.cpu() to copy the tensor to host memory first."
            )
        if name == "pin_memory":
            return args[0].clone()
        if name == "is_pinned":
            return False
        if name == "cpu" and args:
            return self._host_copy(args[0]) if self.on_device(args[0]) else args[0]
        if name == "cuda" and args:
            return args[0] if self.on_device(args[0]) else self._tag(args[0].clone())
        if name == "to" and args and isinstance(args[0], torch.Tensor):
            return self._to(func, args, kwargs)
        if "device" in kwargs and kwargs["device"] is not None:
            want = _is_cuda_spec(kwargs["device"])
            kwargs["device"] = "cpu"
            out = func(*args, **kwargs)
            return self._tag(out) if want else out
        ins = list(_tensors(args)) + list(_tensors(kwargs))
        dev = [t for t in ins if self.on_device(t)]
        if dev and name not in _CROSSING:
            host = [t for t in ins if t.dim() > 0 and t.numel() > 0 and not self.on_device(t)]
            if host:
                raise DeviceMismatch(
                    "Expected all tensors to be on the same device, but found at least two "
                    f"devices, cuda:0 and cpu! (in {name}, host tensor of shape "
                    f"{tuple(host[0].shape)})"
                )
        out = func(*args, **kwargs)
        inplace = name.endswith("_") and not name.startswith("__")
        if inplace or name in ("__setitem__", "__set__"):
            return out  # in place: the target keeps its device
        if name in _CROSSING:  # the result lives where the indexed tensor does
            first = args[0] if args and isinstance(args[0], torch.Tensor) else None
            return self._tag(out) if first is not None and self.on_device(first) else out
        return self._tag(out) if dev else out

    def _to(self, func: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        """``x.to(...)``: a device argument, a tensor argument or neither (dtype only)."""
        src = args[0]
        rest = list(args[1:])
        target: bool | None = None
        for i, a in enumerate(rest):
            if _is_device_spec(a):
                target = _is_cuda_spec(a)
                rest[i] = "cpu"
            elif isinstance(a, torch.Tensor):
                target = self.on_device(a)
        if kwargs.get("device") is not None:
            target = _is_cuda_spec(kwargs["device"])
            kwargs["device"] = "cpu"
        here = self.on_device(src)
        if target is None or target == here:
            out = func(src, *rest, **kwargs)
            return self._tag(out) if here else out
        kwargs["copy"] = True
        out = func(src, *rest, **kwargs)
        if target:
            return self._tag(out)
        self._storages.pop(self._ptr(out), None)
        return out
