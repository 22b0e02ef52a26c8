"""Single-path supernets (FBNet, NAS-Bench-201): layout, exact weight inheritance, gate gradients,
layers per position, bit plans, memory estimates and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nn2hw.bench import fbnet_workload
from nn2hw.compress import apply_plan
from nn2hw.compress.quantize import auto_int_bits
from nn2hw.errors import ConfigError
from nn2hw.fixedpoint import fake_quantize, fixed_point, int_bits_for, int_bits_of
from nn2hw.workload import OpKind
from nn2hw.zoo.archs import supernet as supernet_module
from nn2hw.zoo.archs.supernet import FBNetSupernet, NB201Supernet, Supernet

BITS = (32, 8, 4)
FB_EVERY_OP = [i % 9 for i in range(22)]
NB_EVERY_OP = [2, 4, 0, 1, 3, 4]


@pytest.fixture(scope="module")
def fbnet() -> FBNetSupernet:
    torch.manual_seed(0)
    return FBNetSupernet("fashion-mnist", bits=BITS, width_mult=0.25)


@pytest.fixture(scope="module")
def nb201() -> NB201Supernet:
    torch.manual_seed(0)
    return NB201Supernet("fashion-mnist", bits=BITS, channels=8, cells=2)


def one_hot(net: Supernet, indices: list[int]) -> list[torch.Tensor]:
    return [F.one_hot(torch.tensor(i), c).float() for i, c in zip(indices, net.counts)]


def random_indices(net: Supernet, rng: np.random.Generator, float_bits: bool = False) -> list[int]:
    return [0 if float_bits and p >= net.positions else int(rng.integers(c)) for p, c in enumerate(net.counts)]


def archs(net: Supernet, seed: int) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    every = FB_EVERY_OP if net.space == "fbnet" else NB_EVERY_OP
    fixed = [every, [net.choices - 1] * net.positions, [0] * net.positions]  # all skip (FBNet) / all pool, all none
    return [a + [0] * net.positions for a in fixed] + [random_indices(net, rng, float_bits=True) for _ in range(2)]


def warm_up(net: Supernet, x: torch.Tensor, seed: int) -> None:
    """A few train-mode forwards on random paths, so batch-norm statistics are not their initial values."""
    torch.manual_seed(seed)
    logits = [torch.zeros(c) for c in net.counts]
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(x, [F.gumbel_softmax(l, 1.0, hard=True) for l in logits])


# --- layout ----------------------------------------------------------------------------------------


def test_counts_list_op_positions_then_one_bit_position_per_op_position(fbnet: FBNetSupernet,
                                                                        nb201: NB201Supernet) -> None:
    assert fbnet.counts == (9,) * 22 + (3,) * 22
    assert nb201.counts == (5,) * 6 + (3,) * 6
    assert (list(fbnet.op_positions), list(fbnet.bit_positions)) == (list(range(22)), list(range(22, 44)))
    with torch.device("meta"):
        assert FBNetSupernet("cifar100", width_mult=0.25).counts == (9,) * 22
        assert NB201Supernet("cifar10", 7, channels=4, cells=1).counts == (5,) * 6


# --- weight inheritance ------------------------------------------------------------------------------


@pytest.mark.parametrize("space", ["fbnet", "nb201"])
def test_the_derived_network_computes_exactly_what_the_supernet_does(space: str, fbnet: FBNetSupernet,
                                                                      nb201: NB201Supernet) -> None:
    net: Supernet = fbnet if space == "fbnet" else nb201
    x = torch.randn(net.input.shape(3), generator=torch.Generator().manual_seed(1))
    warm_up(net, x, 2)
    for indices in archs(net, 3):
        derived = net.derive(indices)
        assert type(derived).__name__ == ("FBNet" if space == "fbnet" else "TinyNetwork")
        with torch.no_grad():
            for mode in (True, False):  # batch statistics, then the inherited running statistics
                net.train(mode)
                derived.train(mode)
                assert torch.equal(derived(x), net(x, one_hot(net, indices))), (indices, mode)
    net.train()


def test_the_derived_fbnet_is_the_width_scaled_published_network() -> None:
    with torch.device("meta"):
        net = FBNetSupernet("cifar10", width_mult=1.0)
    work = net.workload(FB_EVERY_OP)
    bench = fbnet_workload(FB_EVERY_OP, "cifar10")
    assert [layer.name for layer in work.compute_layers] == [layer.name for layer in bench.compute_layers]
    assert (work.macs, work.parameters) == (bench.macs, bench.parameters)


def test_a_width_multiplier_scales_every_width_of_the_derived_network(fbnet: FBNetSupernet) -> None:
    derived = fbnet.derive(FB_EVERY_OP + [0] * 22)  # width 0.25, rounded to multiples of 4
    assert (derived.stem.conv.in_channels, derived.stem.conv.out_channels) == (1, 4)
    assert (derived.cells[1].conv1.in_channels, derived.cells[1].conv3.out_channels) == (4, 8)  # 16 -> 24
    assert (derived.header.conv.out_channels, derived.fc.in_features, derived.fc.out_features) == (376, 376, 10)


def test_a_fashion_mnist_supernet_is_costed_on_cifar10_shapes(fbnet: FBNetSupernet, nb201: NB201Supernet) -> None:
    for net, arch in ((fbnet, FB_EVERY_OP), (nb201, NB_EVERY_OP)):
        indices = arch + [1] * net.positions
        own, cifar = net.workload(indices), net.workload(indices, batch=2, dataset="cifar10")
        assert (own.input_shape, cifar.input_shape) == ((1, 1, 28, 28), (2, 3, 32, 32))
        assert [layer.name for layer in own.layers] == [layer.name for layer in cifar.layers]
        assert own.layers[-1].out_shape == (1, 10)


# --- gates and quantization ------------------------------------------------------------------------------


@pytest.mark.parametrize("space", ["fbnet", "nb201"])
def test_the_loss_reaches_every_selected_gate_and_no_other_entry(space: str, fbnet: FBNetSupernet,
                                                                 nb201: NB201Supernet) -> None:
    net: Supernet = fbnet if space == "fbnet" else nb201
    torch.manual_seed(4)
    logits = [torch.randn(c, requires_grad=True) for c in net.counts]
    if space == "nb201":  # a 'none' edge outputs zero, so its gate has no gradient: keep them out
        with torch.no_grad():
            logits[0][0] = logits[1][0] = -1e9
            for edge in range(2, 6):
                logits[edge][0] = -1e9
    gates = [F.gumbel_softmax(l, 1.0, hard=True) for l in logits]
    for gate in gates:
        gate.retain_grad()
    x = torch.randn(net.input.shape(2))
    net(x, gates).logsumexp(1).sum().backward()
    for position, (gate, logit) in enumerate(zip(gates, logits)):
        assert gate.grad is not None and logit.grad is not None
        chosen = int(gate.argmax())
        assert gate.grad[chosen] != 0, position
        assert torch.count_nonzero(gate.grad) == 1, position
        assert torch.count_nonzero(logit.grad) > 0, position  # through the soft sample
    net.zero_grad()


def test_fake_quantization_follows_the_compress_rule() -> None:
    torch.manual_seed(5)
    for scale in (0.03, 1.0, 7.5, 3e-12):
        x = torch.randn(64, 9) * scale
        for bits in (2, 4, 8, 16):
            assert int(int_bits_of(x, bits)) == int_bits_for(float(x.abs().max()), bits) == auto_int_bits(x, bits)
            expected = fixed_point(x, bits, auto_int_bits(x, bits))
            assert torch.equal(fake_quantize(x, bits), expected), (scale, bits)
    assert int(int_bits_of(torch.zeros(3), 8)) == int_bits_for(0.0, 8) == 1
    x = torch.randn(10, requires_grad=True)
    fake_quantize(x, 4).sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.ones(10))  # straight through


def test_a_narrow_bit_choice_quantizes_the_chosen_block(fbnet: FBNetSupernet) -> None:
    fbnet.eval()
    x = torch.randn(fbnet.input.shape(2))
    arch = [3] * 22
    with torch.no_grad():
        float_out = fbnet(x, one_hot(fbnet, arch + [0] * 22))
        eight = fbnet(x, one_hot(fbnet, arch + [1] * 22))
        four = fbnet(x, one_hot(fbnet, arch + [2] * 22))
        one_block = fbnet(x, one_hot(fbnet, arch + [2] + [0] * 21))
    assert not torch.equal(float_out, eight) and not torch.equal(float_out, one_block)
    assert (eight - float_out).abs().mean() < (four - float_out).abs().mean()
    fbnet.train()


# --- layers per position and the bit plan -----------------------------------------------------------------


@pytest.mark.parametrize("space", ["fbnet", "nb201"])
def test_positions_and_fixed_layers_partition_the_derived_workload(space: str, fbnet: FBNetSupernet,
                                                                   nb201: NB201Supernet) -> None:
    net: Supernet = fbnet if space == "fbnet" else nb201
    rng = np.random.default_rng(6)
    for indices in archs(net, 7)[:3] + [random_indices(net, rng) for _ in range(2)]:
        work = net.workload(indices)
        per_position = net.position_layers(indices)
        ops, bits = per_position[:net.positions], per_position[net.positions:]
        owned = [name for names in ops for name in names] + net.fixed_layers(indices)
        assert sorted(owned) == sorted(layer.name for layer in work.layers)  # every layer exactly once
        compute = [layer.name for layer in work.layers if layer.kind in (OpKind.CONV, OpKind.LINEAR)]
        assert sorted(n for n in owned if n in compute) == sorted(compute)
        assert bits == [[n for n in names if n in compute] for names in ops]
        for position, names in enumerate(ops):
            assert all(space != "fbnet" or n.startswith(f"cells.{position}.") for n in names if n in compute)
            assert all(space != "nb201" or f".layers.{position}." in n for n in names if n in compute)


def test_fbnet_blocks_own_their_shuffles_and_residual_adds(fbnet: FBNetSupernet) -> None:
    indices = FB_EVERY_OP + [0] * 22
    work = fbnet.workload(indices)
    per_position = fbnet.position_layers(indices)
    by_name = {layer.name: layer for layer in work.layers}
    for position, names in enumerate(per_position[:22]):
        for name in names:
            if by_name[name].kind in (OpKind.ELTWISE, OpKind.RESHAPE, OpKind.OTHER):
                assert any(source.startswith(f"cells.{position}.") or source in names
                           for source in by_name[name].inputs), name
    assert per_position[8] == []  # an identity skip produces no layer


def test_the_bit_plan_quantizes_the_chosen_layers_of_the_derived_network(nb201: NB201Supernet) -> None:
    indices = [3, 2, 1, 3, 4, 0] + [1, 2, 0, 0, 0, 0]
    plan = nb201.bit_plan(indices, base_model="nb201-supernet")
    chosen = {name: choice.get("weight_bits") for name, choice in plan.choices.items()}
    assert chosen and set(chosen.values()) == {8, 4}
    assert chosen == nb201.layer_bits(indices)
    assert set(chosen) == set(nb201.position_layers(indices)[6]) | set(nb201.position_layers(indices)[7])
    quantized = apply_plan(plan, nb201.workload(indices))
    assert {layer.name: layer.weight_bits for layer in quantized.layers if layer.name in chosen} == chosen
    model = apply_plan(plan, nb201.derive(indices))  # the names are the derived module's
    with torch.no_grad():
        assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


# --- memory --------------------------------------------------------------------------------------------


def _saved_activation_bytes(net: Supernet, indices: list[int], batch: int) -> int:
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    gates = [g.requires_grad_() for g in one_hot(net, indices)]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        net(torch.randn(net.input.shape(batch)), gates)
    return sum(storages.values())


@pytest.mark.parametrize("space", ["fbnet", "nb201"])
def test_the_memory_estimate_grows_with_batch_and_bounds_the_largest_path(space: str, fbnet: FBNetSupernet,
                                                                          nb201: NB201Supernet) -> None:
    net: Supernet = fbnet if space == "fbnet" else nb201
    state = net.estimate_bytes(0)
    assert state >= 4 * sum(p.numel() * 4 for p in net.parameters())
    assert state < net.estimate_bytes(1) < net.estimate_bytes(8) < net.estimate_bytes(32)
    largest = [7 if space == "fbnet" else 3] * net.positions + [2] * net.positions  # e6 blocks / 3x3 convs, 4-bit
    assert net.estimate_bytes(8) - state >= _saved_activation_bytes(net, largest, 8)


def test_a_batch_that_does_not_fit_is_refused_with_the_batch_that_does(fbnet: FBNetSupernet) -> None:
    needed = fbnet.estimate_bytes(64)
    assert fbnet.check_memory(64, available=needed) == needed
    with pytest.raises(ConfigError, match="to train at batch 64") as info:
        fbnet.check_memory(64, available=needed - 1)
    assert "batch of at most 63" in info.value.fix
    with pytest.raises(ConfigError, match="smaller width_mult"):
        fbnet.check_memory(1, available=fbnet.estimate_bytes(0) // 2)


def test_a_supernet_too_large_for_memory_is_refused_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supernet_module, "available_bytes", lambda device: 10**6)
    with pytest.raises(ConfigError, match="for its weights and training state") as info:
        FBNetSupernet("ImageNet", width_mult=4.0)
    assert "smaller width_mult" in info.value.fix
    with pytest.raises(ConfigError, match="fewer channels or cells"):
        NB201Supernet("cifar10", channels=64)


# --- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("indices", "cause"), [
    ([0] * 43, "44 positions; 43 indices"),
    ([9] + [0] * 43, "Position 0 (op) of the fbnet supernet has index 9, outside 0..8"),
    ([0] * 22 + [3] + [0] * 21, "Position 22 (bit-width) of the fbnet supernet has index 3, outside 0..2"),
    ([0.0] * 44, "index 0.0"),
    ([True] + [0] * 43, "index True"),
    ("0" * 44, "must be a sequence"),
])
def test_bad_indices_are_refused(fbnet: FBNetSupernet, indices: list[int], cause: str) -> None:
    for call in (fbnet.derive, fbnet.position_layers, fbnet.bit_plan, fbnet.workload):
        with pytest.raises(ConfigError) as info:
            call(indices)
        assert cause in info.value.cause and info.value.fix


def test_numpy_indices_are_accepted(nb201: NB201Supernet) -> None:
    assert nb201.layer_bits(np.array([3] * 6 + [2] * 6)) == nb201.layer_bits([3] * 6 + [2] * 6)


@pytest.mark.parametrize(("build", "cause"), [
    (lambda: FBNetSupernet("mnist"), "no input layout for dataset 'mnist'"),
    (lambda: NB201Supernet("ImageNet"), "no input layout for dataset 'ImageNet'"),
    (lambda: FBNetSupernet("cifar10", bits=(8, 1)), "Bit width 1 is outside 2..32"),
    (lambda: FBNetSupernet("cifar10", bits=(64,)), "Bit width 64"),
    (lambda: NB201Supernet("cifar10", bits=(8, 8)), "repeat"),
    (lambda: NB201Supernet("cifar10", bits=()), "non-empty"),
    (lambda: FBNetSupernet("cifar10", num_classes=0), "num_classes"),
    (lambda: FBNetSupernet("cifar10", width_mult=-1.0), "width multiplier"),
    (lambda: FBNetSupernet("cifar10", width_mult=0.1), "changes its wiring"),
    (lambda: NB201Supernet("cifar10", channels=0), "channels"),
])
def test_bad_settings_are_refused(build, cause: str) -> None:
    with torch.device("meta"), pytest.raises(ConfigError) as info:
        build()
    assert cause in info.value.cause and info.value.fix


def test_bad_gates_are_refused(nb201: NB201Supernet) -> None:
    x = torch.randn(1, 1, 28, 28)
    gates = one_hot(nb201, [3] * 6 + [0] * 6)
    with pytest.raises(ConfigError, match="takes 12 gates"):
        nb201(x, gates[:-1])
    with pytest.raises(ConfigError, match="Gate 2 has shape"):
        nb201(x, gates[:2] + [torch.ones(4) / 4] + gates[3:])
    with pytest.raises(ConfigError, match="not one-hot") as info:
        nb201(x, [F.softmax(torch.randn(g.shape[0]), 0) for g in gates])
    assert "hard=True" in info.value.fix
