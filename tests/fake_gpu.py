"""A fake GPU for tests on machines without one: torch.cuda's memory calls answered from plain numbers."""
import torch


class FakeGpu:
    """One CUDA device of `total` bytes with `free` bytes free, which CUDA can use (torch.version.cuda set,
    is_available true, one device); `fraction` is what set_per_process_memory_fraction was last given; this
    process's allocator holds `allocated` bytes in live tensors and `reserved` bytes in all (its cache included)."""

    def __init__(self, monkeypatch, total: int, free: int):
        self.total, self.free, self.fraction = total, free, 1.0
        self.allocated = self.reserved = 0
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: self.allocated)
        monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: self.reserved)
        monkeypatch.setattr(torch.version, "cuda", "12.4")
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (self.free, self.total))
        monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", self._set_fraction)
        monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda device=None: self.fraction)

    def _set_fraction(self, fraction: float, device=None) -> None:
        if not 0 <= fraction <= 1:  # as PyTorch
            raise ValueError(f"Invalid fraction value: {fraction}. Allowed range: 0~1")
        self.fraction = fraction

    @property
    def cap(self) -> float:
        """Bytes this process's allocator may hold."""
        return self.fraction * self.total
