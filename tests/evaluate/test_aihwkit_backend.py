"""The aihwkit-lightning cross-check of accuracy under crossbar variation
(``nn2hw.evaluate.aihwkit_backend``, ``--backend aihwkit``): a missing extra, an unknown backend and
noise it cannot model are clear errors (exit 2 from the CLI); aihwkit's weight noise has nn2hw's
``weight_sigma``; sigma 0 gives the noise-free accuracy in both backends; a larger sigma never raises
the expected accuracy (common random numbers); the CLI's JSON keeps its keys and adds ``backend``.
Networks: a TinyNet trained on the bright/dark task (128 test images); the CLI test runs the
shared CIFAR-10 ResNet-20 on 16 images (aihwkit-lightning's unfolded convolutions are ~10x slower
than torch's). The tests that run
aihwkit-lightning skip when it is not installed (``pip install "nn2hw[aihwkit]"``)."""

from __future__ import annotations

import importlib.util
import json
import math
import statistics
import sys

import pytest
import torch
from torch import nn

from nn2hw.cli import main
from nn2hw.errors import ConfigError
from nn2hw.evaluate.aihwkit_backend import (
    analog_network,
    check_backend,
    check_mappable,
    evaluate_variation_aihwkit,
    load_aihwkit,
)
from nn2hw.evaluate.variation import design_noise, evaluate_variation, programmed_weights
from tests.evaluate.nets import TinyNet, bright_dark

needs_aihwkit = pytest.mark.skipif(importlib.util.find_spec("aihwkit_lightning") is None,
                                   reason='aihwkit-lightning is not installed: pip install "nn2hw[aihwkit]"')
MAPPABLE = {"adc_bits": 9, "stuck_at_off": 0, "stuck_at_on": 0}


def _hide_aihwkit(monkeypatch):
    for name in [n for n in sys.modules if n.startswith("aihwkit_lightning")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "aihwkit_lightning", None)  # import then raises ImportError


def test_a_missing_extra_names_the_install(monkeypatch, capsys):
    _hide_aihwkit(monkeypatch)
    with pytest.raises(ConfigError, match=r'pip install "nn2hw\[aihwkit\]"'):
        load_aihwkit()
    assert main(["evaluate", "--model", "resnet20", "--dataset", "cifar10", "--hardware", "cim:reram",
                 "--hw-param", "sigma=0.1", "--backend", "aihwkit"]) == 2
    err = capsys.readouterr().err
    assert "aihwkit-lightning" in err and 'nn2hw[aihwkit]' in err


def test_an_unknown_backend_names_the_choices(capsys):
    with pytest.raises(ConfigError, match="nn2hw, aihwkit"):
        check_backend("neurosim")
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", "--model", "resnet20", "--dataset", "cifar10", "--hardware", "cim:reram",
              "--backend", "neurosim"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "neurosim" in err and "nn2hw" in err and "aihwkit" in err


def test_a_backend_without_hardware_is_refused(capsys):
    assert main(["evaluate", "--model", "resnet20", "--dataset", "cifar10", "--backend", "aihwkit"]) == 2
    assert "--hardware" in capsys.readouterr().err


@needs_aihwkit
def test_noise_it_cannot_model_is_refused_with_the_settings_that_turn_it_off(capsys):
    noise = design_noise("cim:reram", {"sigma": 0.1})[0]  # ReRAM: 9 %/1 % stuck-at, an 8-bit (lossy) ADC
    with pytest.raises(ConfigError, match="stuck_at_off=0") as error:
        check_mappable(noise)
    assert "adc_bits=9" in error.value.fix
    check_mappable(design_noise("cim:reram", {"sigma": 0.1, **MAPPABLE})[0])
    assert main(["evaluate", "--model", "resnet20", "--dataset", "cifar10", "--hardware", "cim:reram",
                 "--hw-param", "sigma=0.1", "--backend", "aihwkit"]) == 2
    err = capsys.readouterr().err
    assert "stuck-at" in err and "lossy ADC" in err and "--backend nn2hw" in err


@needs_aihwkit
def test_aihwkits_weight_noise_is_nn2hws_weight_sigma():
    net = nn.Sequential(nn.Conv2d(64, 64, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(2))
    net(torch.rand(2, 64, 4, 4))  # materializes the linear layer
    noise = design_noise("cim:reram", {"sigma": 0.1, **MAPPABLE})[0]
    _, layers = analog_network(net, noise, torch.rand(8, 64, 4, 4))
    layer = layers["0"]  # 64 x 64 x 3 x 3 weights
    weight = layer.weight.detach().clone()
    torch.manual_seed(0)
    drawn = load_aihwkit().modify_weight(weight.clone(), None, layer.rpu_config)
    assert float((drawn - weight).std() / weight.abs().max()) == pytest.approx(noise.weight_sigma, rel=0.03)
    assert layer.rpu_config.forward.inp_res == 2 * (2**16 - 1)  # unsigned 16-bit inputs: nn2hw's step
    assert layers["3"].rpu_config.forward.inp_res == 2 * (2**16 - 1)


@pytest.fixture(scope="module")
def tiny():
    """TinyNet trained (a second) on the bright/dark task, and 128 held-out images."""
    torch.manual_seed(0)
    net, train = TinyNet(), bright_dark(256, seed=1)
    images, labels = next(iter(train.batches(256)))
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(40):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(images), labels).backward()
        optimizer.step()
    return net.eval(), bright_dark(128, seed=2)


@needs_aihwkit
def test_sigma_zero_gives_the_noise_free_accuracy_in_both_backends(tiny):
    net, data = tiny
    before = [w.detach().clone() for w in programmed_weights(net)]
    noise = design_noise("cim:reram", {"sigma": 0.0, **MAPPABLE})[0]
    ours = evaluate_variation(net, data, noise, draws=1)
    theirs = evaluate_variation_aihwkit(net, data, noise, draws=1)
    assert ours.top1 == ours.top1_clean == theirs.top1 == theirs.top1_clean > 90.0
    assert theirs.noise["backend"] == "aihwkit"
    assert all(torch.equal(a, b) for a, b in zip(before, programmed_weights(net), strict=True))


@needs_aihwkit
def test_a_variation_aware_clipped_network_is_cross_checked_as_deployed(tiny):
    """Parametrized layers (a noise_train plan's clipping and training noise) reach aihwkit as plain
    layers holding the deployed (clipped) weights; the caller's network keeps its parametrizations."""
    from nn2hw.compress import apply_plan, with_noise_training
    from nn2hw.plan import Plan
    from nn2hw.workload import from_module

    net, data = tiny
    workload = from_module(net, (1, 1, 8, 8))
    aware = apply_plan(with_noise_training(Plan.for_workload(workload, "tiny"), workload, 0.1, clip=1.0), net).eval()
    deployed = [w.detach().clone() for w in programmed_weights(aware)]
    assert not torch.equal(deployed[0], net.conv.weight)  # clipped
    noise = design_noise("cim:reram", {"sigma": 0.0, **MAPPABLE})[0]
    ours = evaluate_variation(aware, data, noise, draws=1)
    theirs = evaluate_variation_aihwkit(aware, data, noise, draws=1)
    assert ours.top1 == theirs.top1 == theirs.top1_clean == ours.top1_clean
    assert type(aware.conv).__name__.startswith("Parametrized") and torch.equal(aware.conv.weight, deployed[0])


@needs_aihwkit
def test_a_larger_sigma_never_raises_the_expected_accuracy_and_draws_replay(tiny):
    net, data = tiny
    noise = {s: design_noise("cim:reram", {"sigma": s, **MAPPABLE})[0] for s in (0.05, 0.3, 0.6)}
    runs = [evaluate_variation_aihwkit(net, data, noise[s], draws=4, seed=1) for s in noise]
    for low, high in zip(runs, runs[1:], strict=False):  # common random numbers: draws paired by seed
        differences = [a - b for a, b in zip(low.top1_draws, high.top1_draws, strict=True)]
        spread = statistics.stdev(differences) / math.sqrt(len(differences))
        assert statistics.fmean(differences) >= -2.0 * spread
    assert runs[-1].top1 < runs[0].top1 - 5.0  # the noise is applied: sigma 0.6 loses accuracy
    again = evaluate_variation_aihwkit(net, data, noise[0.6], draws=1, seed=1)
    assert again.top1_draws[0] == runs[-1].top1_draws[0]  # a draw is a function of (seed, draw) alone


@needs_aihwkit
def test_the_cli_round_trip_keeps_the_keys_and_adds_the_backend(tmp_path, monkeypatch, shared_data):
    from nn2hw.evaluate import FinetuneEvaluator

    original = FinetuneEvaluator.test_data
    monkeypatch.setattr(FinetuneEvaluator, "test_data", lambda self: original(self).take(16))
    records = {}
    for backend in ("nn2hw", "aihwkit"):
        out = tmp_path / f"{backend}.json"
        assert main(["evaluate", "--model", "resnet20", "--dataset", "cifar10", "--split", "test-partial",
                     "--hardware", "cim:reram", "--hw-param", "sigma=0.05", "--hw-param", "adc_bits=9",
                     "--hw-param", "stuck_at_off=0", "--hw-param", "stuck_at_on=0", "--draws", "1",
                     "--backend", backend, "--json", str(out)]) == 0
        records[backend] = json.loads(out.read_text())
    assert set(records["nn2hw"]) == set(records["aihwkit"])
    for backend, record in records.items():
        assert {"top1", "top1_std", "top1_min", "draws", "top1_clean", "backend"} <= set(record)
        assert record["backend"] == backend and record["draws"] == 1 and record["n_images"] == 16
        assert record["top1_min"] == record["top1"] and record["top1_std"] == 0.0


def test_a_quantized_network_is_refused_naming_its_layers(shared_data):
    """Before aihwkit is needed: the refusal names the layers and the backend that models them."""
    from nn2hw import zoo
    from nn2hw.compress import apply_plan, with_quantization
    from nn2hw.data import load_dataset
    from nn2hw.evaluate.variation import CrossbarNoise
    from nn2hw.plan import Plan
    from nn2hw.workload import from_module

    net = zoo.build("resnet20", "cifar10", pretrained=False)
    workload = from_module(net, (1, 3, 32, 32))
    quantized = apply_plan(with_quantization(Plan.for_workload(workload, "r"), workload, 8, "layer1.0.*"), net)
    data = zoo.prepare(load_dataset("cifar10", "test-partial"), "resnet20").take(8)
    with pytest.raises(ConfigError, match="layer1.0.conv1") as exc:
        evaluate_variation_aihwkit(quantized, data, CrossbarNoise(0.05, 2, 16, input_bits=16), draws=1)
    assert "--backend nn2hw" in exc.value.fix


def test_grouped_convolutions_are_refused_naming_them():
    """aihwkit-lightning converts one group per convolution: a depthwise layer is named before aihwkit is needed."""
    from nn2hw.evaluate.variation import CrossbarNoise

    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.Flatten(),
                        nn.Linear(4 * 8 * 8, 2)).eval()
    with pytest.raises(ConfigError, match=r"grouped convolutions \(1, e.g. depthwise\)") as exc:
        evaluate_variation_aihwkit(net, bright_dark(8), CrossbarNoise(0.05, 2, 16, input_bits=16), draws=1)
    assert "--backend nn2hw" in exc.value.fix
