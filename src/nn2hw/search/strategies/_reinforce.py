"""The HotNAS REINFORCE controller and the FNAS reward variant (reference §2.7, §3.2); torch.

A small recurrent policy emits one choice per dimension: each dimension has its own embedding
table and softmax head, and an LSTM cell (35 hidden units, as HotNAS's NASCell) carries the
sequence. Training is REINFORCE with one child per episode: loss = mean over positions of the
cross-entropy of the sampled choices, times the advantage (reward - baseline).

Quirks of the published code are options, off by default:
- ``baseline="hotnas"``: the authors' baseline, a mean of the whole reward history weighted by
  exp(linspace(-1, 0, n)) with the OLDEST reward weighted most (an ``np.convolve`` artefact) and
  the current reward already included; the default ``"ema"`` is a plain exponential moving
  average of past rewards (decay ``ema_decay``).
- ``controller_input="previous_child"``: the input at each position is the embedding of the
  previous child's choice there (as coded); the default ``"autoregressive"`` feeds the choice
  just made at the previous position (the ENAS form).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from nn2hw.errors import ConfigError
from nn2hw.search.strategies.base import Observation, RewardConfig, Strategy


class Controller(nn.Module):
    """Per-dimension embeddings and heads around one LSTM cell."""

    def __init__(self, counts: tuple[int, ...], hidden: int) -> None:
        super().__init__()
        self.counts = counts
        self.start = nn.Parameter(torch.zeros(1, hidden))
        self.embed = nn.ModuleList(nn.Embedding(n, hidden) for n in counts)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in counts)
        self.cell = nn.LSTMCell(hidden, hidden)
        self.hidden = hidden

    def step_inputs(self, choices: tuple[int, ...], previous: tuple[int, ...] | None, mode: str) -> list[torch.Tensor]:
        """Inputs per position: the previous position's choice, or the previous child's."""
        if mode == "previous_child":
            if previous is None:
                return [self.start] * len(self.counts)
            return [self.embed[i](torch.tensor([previous[i]])) for i in range(len(self.counts))]
        return [self.start] + [self.embed[i](torch.tensor([choices[i]])) for i in range(len(self.counts) - 1)]

    def logits(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        h = c = torch.zeros(1, self.hidden)
        out = []
        for i, x in enumerate(inputs):
            h, c = self.cell(x, (h, c))
            out.append(self.heads[i](h)[0])
        return out


class Reinforce(Strategy):
    """REINFORCE over the choice sequence with the HotNAS reward."""

    name = "reinforce"
    option_ranges = {"hidden": "an integer >= 1", "lr": "a number > 0", "baseline": "ema or hotnas",
                     "ema_decay": "a number in [0, 1)", "controller_input": "autoregressive or previous_child",
                     "optimizer": "adam or rmsprop"}

    def __init__(self, choice_counts, reward: RewardConfig, seed: int = 0, hidden: int = 35, lr: float = 0.01,
                 baseline: str = "ema", ema_decay: float = 0.8, controller_input: str = "autoregressive",
                 optimizer: str = "adam", **options: Any) -> None:
        super().__init__(choice_counts, reward, seed, **options)
        if baseline not in ("ema", "hotnas") or controller_input not in ("autoregressive", "previous_child") \
                or optimizer not in ("adam", "rmsprop") or not 0 <= ema_decay < 1 or lr <= 0 or hidden < 1:
            raise ConfigError(
                f"Bad REINFORCE options: baseline={baseline!r}, controller_input={controller_input!r}, "
                f"optimizer={optimizer!r}, ema_decay={ema_decay}, lr={lr}, hidden={hidden}.",
                "Use baseline ema|hotnas, controller_input autoregressive|previous_child, optimizer adam|rmsprop, "
                "0 <= ema_decay < 1, lr > 0, hidden >= 1.",
            )
        torch.manual_seed(self.seed)  # parameter init only; sampling uses per-trial generators
        self.controller = Controller(self.counts, hidden)
        params = self.controller.parameters()
        self.optim = torch.optim.Adam(params, lr=lr) if optimizer == "adam" else torch.optim.RMSprop(params, lr=lr)
        self.baseline_mode, self.ema_decay, self.mode = baseline, ema_decay, controller_input
        self.rewards: list[float] = []
        self.ema: float | None = None
        self.previous: tuple[int, ...] | None = None

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return ("hidden", "lr", "baseline", "ema_decay", "controller_input", "optimizer")

    def episode_reward(self, obs: Observation) -> float:
        return self.reward.hotnas(obs)

    def ask(self, number: int, attempt: int = 0) -> tuple[int, ...]:
        gen = torch.Generator().manual_seed(int(self.rng(number, attempt).integers(2**62)))
        choices: list[int] = []
        with torch.no_grad():
            h = c = torch.zeros(1, self.controller.hidden)
            for i in range(len(self.counts)):
                if self.mode == "previous_child":
                    x = self.controller.step_inputs((), self.previous, self.mode)[i]
                else:
                    x = self.controller.start if i == 0 else self.controller.embed[i - 1](torch.tensor([choices[-1]]))
                h, c = self.controller.cell(x, (h, c))
                probs = torch.softmax(self.controller.heads[i](h)[0], dim=0)
                choices.append(int(torch.multinomial(probs, 1, generator=gen)))
        return tuple(choices)

    def advantage(self, reward: float) -> float:
        """Reward minus baseline; updates the baseline state."""
        self.rewards.append(reward)
        if self.baseline_mode == "hotnas":
            n = len(self.rewards)
            weights = np.exp(np.linspace(-1.0, 0.0, n))[::-1]  # oldest reward gets the largest weight
            return reward - float(np.dot(weights / weights.sum(), self.rewards))
        base = reward if self.ema is None else self.ema
        self.ema = reward if self.ema is None else self.ema_decay * self.ema + (1 - self.ema_decay) * reward
        return reward - base

    def reject(self, obs: Observation) -> None:
        self.tell(obs)  # a rejected proposal is an episode like any other: it only cost a latency check

    def tell(self, obs: Observation) -> None:
        advantage = self.advantage(self.episode_reward(obs))
        inputs = self.controller.step_inputs(obs.indices, self.previous, self.mode)
        logits = self.controller.logits(inputs)
        targets = [torch.tensor(i) for i in obs.indices]
        loss = torch.stack([nn.functional.cross_entropy(l[None], t[None]) for l, t in zip(logits, targets)]).mean()
        self.optim.zero_grad()
        (loss * advantage).backward()
        self.optim.step()
        self.previous = obs.indices


class FnasReinforce(Reinforce):
    """REINFORCE with the FNAS reward as coded (reference §3.2), flagged as the code's version.

    Over the spec: clip((spec - lat)/(10 spec) - 1, -0.1, 0.1), i.e. always -0.1, untrained.
    Otherwise clip(acc - EMA_acc + lat/(10 spec), -0.1, 0.1) with accuracy as a fraction and
    EMA_acc starting at 0; then EMA_acc <- beta*EMA_acc + (1 - beta)*acc, divided by (1 - beta)
    on the first update (FNAS manager.py). The latency term rewards a latency close to the spec,
    as coded. The reward already holds its own baseline, so the advantage is the reward itself.
    """

    name = "fnas"

    def __init__(self, choice_counts, reward: RewardConfig, seed: int = 0, lr: float = 0.1, beta: float = 0.8,
                 **options: Any) -> None:
        super().__init__(choice_counts, reward, seed, lr=lr, optimizer=options.pop("optimizer", "rmsprop"),
                         **options)
        self.beta = beta
        self.acc_ema = 0.0
        self.first = True

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return Reinforce.option_names() + ("beta",)

    def episode_reward(self, obs: Observation) -> float:
        spec = self.reward.spec_ms
        if not obs.feasible or obs.metric is None or obs.latency_ms is None:
            lat = obs.latency_ms if obs.latency_ms is not None else 2 * spec
            return float(np.clip((spec - lat) / (10 * spec) - 1, -0.1, 0.1))
        acc = obs.metric / 100.0
        reward = float(np.clip(acc - self.acc_ema + obs.latency_ms / spec / 10, -0.1, 0.1))
        self.acc_ema = self.beta * self.acc_ema + (1 - self.beta) * acc
        if self.first:  # the code's bias correction: the first update makes the EMA equal the accuracy
            self.acc_ema /= 1 - self.beta
            self.first = False
        return reward

    def advantage(self, reward: float) -> float:
        self.rewards.append(reward)
        return reward
