"""CPU backend (placeholder until implemented)."""

import torch


class ScipyBackend:
    name = "scipy"
    traced = False

    def unavailable_reason(self, device: torch.device) -> str | None:
        return None if device.type == "cpu" else "it runs on CPU tensors only"
