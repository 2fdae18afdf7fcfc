"""``torch.nn`` modules for minigan layers PyTorch has no class for (imported only by export).

This module imports torch at module level: :mod:`minigan.export` imports it inside its
converters only, so minigan itself never needs torch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class LabelConcat(torch.nn.Module):
    """PyTorch twin of :class:`minigan.models.LabelConcat`: ``net([x, one_hot(labels)])``.

    Parameters
    ----------
    net : torch.nn.Module
        The wrapped network (its state-dict keys come under ``net.``, as in minigan).
    num_classes : int
        Number of classes K.

    Shapes
    ------
    x (N, in_features), labels (N,) int64 -> net's output; with ``label_maps``, x (N, C, H, W).

    Notes
    -----
    Mirrors ``torch.nn.functional.one_hot`` followed by ``torch.cat`` on dim 1 (Mirza &
    Osindero 2014, Sec. 4.1).
    """

    def __init__(self, net: torch.nn.Module, num_classes: int, label_maps: bool = False):
        super().__init__()
        self.net = net
        self.num_classes = num_classes
        self.label_maps = label_maps

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``net(cat([x, one_hot(labels, K)], 1))`` with the one-hot in x's dtype.

        With ``label_maps`` the one-hot (N, K) is expanded to (N, K, H, W) first.
        """
        y = F.one_hot(labels.long(), self.num_classes).to(x.dtype)
        if self.label_maps:
            y = y[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        return self.net(torch.cat([x, y], 1))
