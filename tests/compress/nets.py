"""Small networks for the transform tests: a MobileNetV2-like net (depthwise, expansion, residuals,
stride 2) and a DenseNet-like net (concats feeding convs, a spatial flatten into a linear layer)."""

from __future__ import annotations

import torch
from torch import nn


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MiniMobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(inplace=True)),
            InvertedResidual(8, 8, 1, 2),
            InvertedResidual(8, 12, 2, 3),
            InvertedResidual(12, 12, 1, 3),
            nn.Sequential(nn.Conv2d(12, 32, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6(inplace=True)),
        )
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(32, num_classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


class ConcatNet(nn.Module):
    """Two concats (one feeding a conv, one feeding a flatten + linear) and a 5x5 branch."""

    def __init__(self, num_classes: int = 4) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.a = nn.Conv2d(6, 5, 3, padding=1)
        self.b = nn.Conv2d(6, 7, 5, padding=2)
        self.mix = nn.Conv2d(6 + 5 + 7, 8, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.c = nn.Conv2d(8, 4, 1)
        self.fc = nn.Linear((8 + 4) * 4 * 4, num_classes)

    def forward(self, x):
        s = torch.relu(self.bn(self.stem(x)))
        y = self.pool(torch.relu(self.mix(torch.cat([s, self.a(s), torch.relu(self.b(s))], dim=1))))
        y = torch.cat([y, self.c(y)], dim=1)
        return self.fc(torch.flatten(y, 1))


class HookOnlyNet(nn.Module):
    """Shape-dependent control flow: torch.fx cannot trace it, so the workload comes from hooks."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.b = nn.Conv2d(6, 6, 3, padding=1, bias=False)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        y = torch.relu(self.bn(self.a(x)))
        if x.shape[-1] > 4:
            y = y + self.b(y)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1))
