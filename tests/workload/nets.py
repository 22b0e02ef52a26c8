"""Small networks exercising the extractor: residual adds, option-A pads, depthwise chains,
concats, squeeze-excitation, data-dependent control flow and ops nn2hw does not know."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OptionABlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2
        self.down = stride != 1 or cin != cout

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad)) if self.down else x
        return F.relu(out + shortcut)


class TinyResNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(OptionABlock(16, 16, 1), OptionABlock(16, 16, 1))
        self.layer2 = nn.Sequential(OptionABlock(16, 32, 2))
        self.linear = nn.Linear(32, 10)

    def forward(self, x):
        x = self.layer2(self.layer1(F.relu(self.bn1(self.conv1(x)))))
        return self.linear(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class InvertedResidual(nn.Module):
    def __init__(self, c: int, expand: int) -> None:
        super().__init__()
        hidden = c * expand
        self.expand = nn.Sequential(nn.Conv2d(c, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False),
                                nn.BatchNorm2d(hidden), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(hidden, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.project(self.dw(self.expand(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // 4, 1)
        self.fc2 = nn.Conv2d(c // 4, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class MobileLike(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.block = InvertedResidual(8, 4)
        self.se = SqueezeExcite(8)
        self.branch_a = nn.Conv2d(8, 6, 1)
        self.branch_b = nn.Conv2d(8, 10, 3, padding=1)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(16 * 8 * 8, 5))

    def forward(self, x):
        x = self.se(self.block(self.stem(x)))
        x = torch.cat([self.branch_a(x), self.branch_b(x)], dim=1)
        return self.head(x.view(x.size(0), -1))


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it; the hook fallback can."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        y = self.a(x)
        if y.sum() > -1e9:  # always true, but data-dependent
            y = y + self.b(y)
        return self.fc(y.mean(dim=(2, 3)))


class WithUnknownOps(nn.Module):
    """Contains ops nn2hw does not cost: an LSTM and an FFT."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, padding=1)
        self.rnn = nn.LSTM(16, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = torch.fft.rfft(self.conv(x), dim=-1).abs()
        out, _ = self.rnn(y[:, :, :16] if y.shape[-1] >= 16 else F.pad(y, (0, 16 - y.shape[-1])))
        return self.fc(out[:, -1])


class SelfConcat(nn.Module):
    """One tensor concatenated with itself, then added to itself: ops that read an operand twice."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)
        self.b = nn.Conv2d(8, 5, 3, padding=1)

    def forward(self, x):
        y = self.a(x)
        z = torch.cat([y, y], dim=1)
        return self.b(z + z)
