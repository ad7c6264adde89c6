"""GPU backend (placeholder until implemented)."""

import torch


class TritonBackend:
    name = "triton"
    traced = False

    def unavailable_reason(self, device: torch.device) -> str | None:
        return "not implemented yet"
