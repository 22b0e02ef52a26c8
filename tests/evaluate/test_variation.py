"""Accuracy under crossbar non-idealities (``nn2hw.evaluate.variation``, ``nn2hw.api.evaluate_variation``
and ``nn2hw evaluate --hardware cim``): the weight noise by hand and by sampling, stuck-at faults
exactly, the ADC's lossless point against the cost model's, the ADC error model against an exact
bit-sliced simulation, determinism given a seed, the caller's model untouched, orderings (more ADC
bits never worse, larger sigma never better, in expectation over common random numbers), batch-norm
re-estimation per draw, the polarized check, the CLI's JSON and its errors. Networks: the shared
CIFAR-10 ResNet-20 on 32-64 images; the CLI test runs the 1017-image partial split (5-20 s on the
shared machine, more when it is loaded)."""

from __future__ import annotations

import json
import math
import statistics

import pytest
import torch

from nn2hw.cli import main
from nn2hw.errors import ConfigError, HardwareError
from nn2hw.evaluate.variation import (
    CrossbarNoise,
    design_noise,
    evaluate_variation,
    program,
    programmed_weights,
    weight_grid,
)
from nn2hw.hardware.cim.model import exact_adc_bits


@pytest.fixture(scope="module")
def net_and_data(shared_data):
    from nn2hw import zoo
    from nn2hw.data import load_dataset

    data = zoo.prepare(load_dataset("cifar10", "test-partial"), "resnet20").take(64)
    return zoo.build("resnet20", "cifar10", pretrained=True), data


def test_weight_sigma_by_hand():
    # 8-bit weights in 2-bit cells: 4 slices; sqrt(1 + 16 + 256 + 4096) x 3 / 255, x sqrt(2) for the pair
    assert CrossbarNoise(0.1, 2, 8, "differential").weight_sigma == pytest.approx(
        0.1 * math.sqrt(4369) * 3 / 255 * math.sqrt(2))
    assert CrossbarNoise(0.1, 8, 8, "polarized").weight_sigma == pytest.approx(0.1)  # one cell per weight
    assert CrossbarNoise(0.1, 8, 8, "offset").weight_sigma == pytest.approx(0.2)  # a cell spans -max..max
    assert CrossbarNoise(0.03, 8, 8, "polarized", read_noise=0.04).weight_sigma == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="sigma"):
        CrossbarNoise(1.5)
    with pytest.raises(ConfigError, match="adc_bits"):
        CrossbarNoise(0.1, adc_bits=0, input_bits=8)


@pytest.mark.parametrize("signed", ["differential", "offset", "polarized"])
def test_programmed_weights_spread_as_the_formula_says(signed):
    weight = torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(0))
    signs = torch.where(weight >= 0, 1.0, -1.0) if signed == "polarized" else None
    exact = program(weight, CrossbarNoise(0.0, 2, 8, signed), torch.Generator(), signs)
    assert (exact - weight).abs().max() <= weight.abs().max() / 255 * (1.0 if signed == "offset" else 0.5) + 1e-6
    noise = CrossbarNoise(0.1, 2, 8, signed)
    drawn = program(weight, noise, torch.Generator().manual_seed(1), signs)
    assert float((drawn - exact).std() / weight.abs().max()) == pytest.approx(noise.weight_sigma, rel=0.03)


def test_stuck_at_faults_exactly():
    weight = torch.randn(16, 8, generator=torch.Generator().manual_seed(0))
    off = program(weight, CrossbarNoise(0.0, 2, 8, stuck_at_off=1.0), torch.Generator())
    assert torch.count_nonzero(off) == 0  # every cell at its lowest level: nothing conducts
    on = program(weight, CrossbarNoise(0.0, 2, 8, "differential", stuck_at_on=1.0), torch.Generator())
    assert torch.count_nonzero(on) == 0  # both arrays of every pair at their highest level: they cancel
    on = program(weight, CrossbarNoise(0.0, 2, 8, "offset", stuck_at_on=1.0), torch.Generator())
    assert torch.allclose(on, torch.full_like(weight, float(weight.abs().max())))  # the offset array's top
    some = program(weight, CrossbarNoise(0.0, 2, 8, stuck_at_off=0.3), torch.Generator().manual_seed(2))
    assert 0 < int((some != program(weight, CrossbarNoise(0.0, 2, 8), torch.Generator())).sum()) < weight.numel()


@pytest.mark.parametrize(("rows", "cell_bits", "dac_bits"), [(128, 2, 1), (64, 1, 2), (256, 4, 1), (32, 2, 2)])
def test_the_adc_is_lossless_from_the_cost_models_exact_bits(rows, cell_bits, dac_bits):
    exact = exact_adc_bits(rows, cell_bits, dac_bits)
    noise = {b: CrossbarNoise(0.0, cell_bits, 8, rows=rows, adc_bits=b, dac_bits=dac_bits, input_bits=8)
             for b in (exact - 1, exact)}
    assert noise[exact].adc_step <= 1.0 < noise[exact - 1].adc_step
    assert noise[exact].adc_sigma(3, 10.0) == 0.0 < noise[exact - 1].adc_sigma(3, 10.0)


def test_the_adc_error_model_matches_an_exact_bit_sliced_simulation():
    """A linear layer on 256 inputs (two fragments of 128 rows), 6-bit unsigned inputs applied one bit
    per cycle, 4-bit weights in 2-bit cells of a differential pair, on/off 10, a 7-bit ADC rounding
    every column sum: the simulated output error's spread is the model's within 25 %."""
    g = torch.Generator().manual_seed(0)
    noise = CrossbarNoise(0.0, 2, 4, "differential", on_off_ratio=10.0, rows=128, adc_bits=7, dac_bits=1,
                          input_bits=6)
    x = torch.randint(0, 64, (400, 256), generator=g) * (torch.rand(400, 256, generator=g) < 0.5)
    w = torch.randint(-15, 16, (256, 10), generator=g)
    off = 3.0 / (noise.on_off_ratio - 1.0)  # a cell's off current in level units: (2^c - 1) / (on/off - 1)
    out = torch.zeros(400, 10, dtype=torch.float64)
    for sign, part in ((1.0, w.clamp(min=0)), (-1.0, (-w).clamp(min=0))):  # the pair's off currents cancel
        for k in range(2):
            cells = ((part >> (2 * k)) & 3).double() + off
            for j in range(6):
                bits = ((x >> j) & 1).double()
                for f in (slice(0, 128), slice(128, 256)):
                    converted = torch.round(bits[:, f] @ cells[f] / noise.adc_step) * noise.adc_step
                    out += sign * 4**k * 2**j * converted
    error = out - x.double() @ w.double()
    model = noise.adc_sigma(2, noise.cycle_weight(x, 128.0))
    assert float(error.std()) == pytest.approx(model, rel=0.25)


def test_draws_are_deterministic_and_the_model_untouched(net_and_data):
    net, data = net_and_data
    data = data.take(32)
    before = [w.detach().clone() for w in programmed_weights(net)]
    noise = CrossbarNoise(0.05, 2, 8, stuck_at_off=0.01, adc_bits=8, input_bits=8)
    first = evaluate_variation(net, data, noise, draws=2, seed=7)
    again = evaluate_variation(net, data, noise, draws=2, seed=7)
    other = evaluate_variation(net, data, noise, draws=2, seed=8)
    assert first.top1_draws == again.top1_draws and first.top1_draws != other.top1_draws
    assert all(torch.equal(a, b) for a, b in zip(before, programmed_weights(net)))
    assert first.top1 == pytest.approx(sum(first.top1_draws) / 2) and first.top1_min == min(first.top1_draws)


def test_batch_norms_re_estimated_on_each_programmed_draw_recover_its_accuracy(net_and_data, shared_data):
    """AdaBS-style: the statistics of each draw's own activations, from images apart from the test ones
    (here the partial split's last 505: the shared data has no CIFAR-10 training images)."""
    import numpy as np

    from nn2hw import zoo
    from nn2hw.data import load_dataset

    net, data = net_and_data
    calibration = zoo.prepare(load_dataset("cifar10", "test-partial"), "resnet20").subset(np.arange(512, 1017), "cal")
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [(m.running_mean.clone(), m.running_var.clone(), m.momentum) for m in norms]
    noise = CrossbarNoise(0.1, 2, 16)
    plain = evaluate_variation(net, data, noise, draws=3, seed=0)
    calibrated = evaluate_variation(net, data, noise, draws=3, seed=0, calibration=calibration)
    again = evaluate_variation(net, data, noise, draws=3, seed=0, calibration=calibration)
    assert (plain.calibration_images, calibrated.calibration_images) == (0, 505)
    assert calibrated.top1_draws == again.top1_draws and calibrated.top1_clean == plain.top1_clean
    # the same programmed weights per draw (common random numbers): re-estimation recovers each one
    assert all(c > p for c, p in zip(calibrated.top1_draws, plain.top1_draws, strict=True))
    assert calibrated.top1 >= plain.top1 + 20  # measured: 66.1 % against 22.9 % at sigma 0.1 (64 images)
    assert all(torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var) and m.momentum == momentum
               for m, (mean, var, momentum) in zip(norms, before, strict=True))  # the caller's model untouched


def test_calibration_images_also_set_the_converters_input_ranges(net_and_data, monkeypatch):
    """With calibration images, the DACs' ranges come from their first batch, not from a test batch."""
    from nn2hw.evaluate import variation

    net, data = net_and_data
    seen: list[torch.Tensor] = []
    real = variation._input_ranges
    monkeypatch.setattr(variation, "_input_ranges", lambda model, modules, images: seen.append(images) or real(
        model, modules, images))
    calibration = data.subset(list(range(len(data) - 16, len(data))), "cal")
    noise = CrossbarNoise(0.1, 2, 16, input_bits=8)
    evaluate_variation(net, data.take(16), noise, draws=1, batch_size=16)
    evaluate_variation(net, data.take(16), noise, draws=1, batch_size=16, calibration=calibration)
    first_test, first_calibration = (next(iter(d.batches(16)))[0] for d in (data, calibration))
    assert torch.equal(seen[0], first_test) and torch.equal(seen[1], first_calibration)


def test_re_estimation_needs_batch_norms_and_images():
    import numpy as np

    from nn2hw.data.base import ArrayDataset

    pixels = np.random.default_rng(0).integers(0, 256, (4, 1, 6, 6), dtype=np.uint8)
    images = ArrayDataset("tiny", "test", pixels, np.array([0, 1, 0, 1]), ("a", "b"), full_size=4, source="random")
    plain = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 2))
    with pytest.raises(ConfigError, match="no batch norm") as exc:
        evaluate_variation(plain, images, CrossbarNoise(0.1, 2, 16), draws=1, calibration=images)
    assert "--bn-calibration 0" in exc.value.fix
    normed = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.Flatten(),
                                 torch.nn.Linear(2 * 4 * 4, 2))
    with pytest.raises(ConfigError, match="no calibration images") as exc:
        evaluate_variation(normed, images, CrossbarNoise(0.1, 2, 16), draws=1, calibration=images.subset(
            np.arange(0), "none"))
    assert "--bn-calibration 512" in exc.value.fix


@pytest.mark.parametrize("signed", ["differential", "offset", "polarized"])
def test_a_quantized_layers_codes_are_held_as_they_are(signed):
    step = 2.0 ** -3  # 4-bit fixed point with 1 integer bit: codes -8..7
    codes = torch.randint(-8, 8, (32, 16), generator=torch.Generator().manual_seed(0)).double()
    weight = (codes * step).float()
    signs = torch.where(weight >= 0, 1.0, -1.0) if signed == "polarized" else None
    noise = CrossbarNoise(0.0, 2, 4, signed)
    assert torch.equal(program(weight, noise, torch.Generator(), signs, step=step), weight)
    assert not torch.equal(program(weight, noise, torch.Generator(), signs), weight)  # re-gridded over max|w|
    small = (codes.clamp(-3, 3) * step).float()  # codes up to 3 of 15 levels: held times 5, still exact
    assert torch.equal(program(small, noise, torch.Generator(), signs, step=step), small)
    assert weight_grid(3 * step, noise, step)[0] == step / (2 if signed == "offset" else 5)  # 3 x 2 <= 7; 3 x 5 <= 15


def test_quantized_layers_are_drawn_at_their_own_bits_and_grids(net_and_data):
    from nn2hw.compress import apply_plan, with_quantization
    from nn2hw.plan import Plan
    from nn2hw.workload import from_module

    net, data = net_and_data
    data = data.take(32)
    workload = from_module(net, (1, 3, 32, 32))
    plan = with_quantization(Plan.for_workload(workload, "r"), workload, 6, "layer1.*", act_bits=6, act_int_bits=3)
    quantized = apply_plan(plan, net).eval()
    exact = evaluate_variation(quantized, data, CrossbarNoise(0.0, 2, 16, adc_bits=None, input_bits=16), draws=1)
    assert exact.top1_draws == (exact.top1_clean,)  # codes held and driven as they are: nothing re-rounded
    noise = CrossbarNoise(0.1, 2, 16, input_bits=16)
    plain = evaluate_variation(net, data, noise, draws=2, seed=3)
    again = evaluate_variation(quantized, data, noise, draws=2, seed=3)
    assert again.top1_draws != plain.top1_draws  # 6-bit layers: 3 slices on their own grid, another noise


def _no_worse(better, worse) -> bool:
    """``better``'s mean is at least ``worse``'s, up to twice the standard error of the paired differences."""
    diffs = [b - w for b, w in zip(better.top1_draws, worse.top1_draws)]
    return statistics.fmean(diffs) >= -2 * statistics.pstdev(diffs) / math.sqrt(len(diffs))


@pytest.mark.slow  # 15 test passes (3 designs x clean, calibration and 3 draws): ~10 s alone, minutes when loaded
def test_more_adc_bits_never_lower_expected_accuracy(net_and_data):
    net, data = net_and_data
    runs = [evaluate_variation(net, data, CrossbarNoise(0.02, 2, 8, adc_bits=b, input_bits=8), draws=3, seed=1)
            for b in (6, 8, 9)]  # one seed: common random numbers, only the ADC's step differs
    assert all(_no_worse(hi, lo) for lo, hi in zip(runs, runs[1:]))
    assert runs[-1].top1 > runs[0].top1 + 10  # a 6-bit ADC on 128-row columns costs a lot


def test_no_variation_is_the_clean_accuracy_and_more_variation_never_helps(net_and_data):
    net, data = net_and_data
    clean = evaluate_variation(net, data, CrossbarNoise(0.0, 2, 16), draws=2)
    assert clean.top1 == clean.top1_clean and clean.top1_std == 0.0
    runs = [evaluate_variation(net, data, CrossbarNoise(s, 2, 8), draws=3, seed=2) for s in (0.0, 0.05, 0.3)]
    assert _no_worse(runs[0], runs[1]) and _no_worse(runs[1], runs[2])
    assert runs[2].top1 < runs[0].top1 - 20  # 0.3 collapses the network


def test_polarized_crossbars_need_polarized_weights(net_and_data):
    from nn2hw import zoo
    from nn2hw.compress import apply_plan, with_polarization
    from nn2hw.plan import Plan

    net, data = net_and_data
    noise = CrossbarNoise(0.0, 2, 16, "polarized", rows=64)
    with pytest.raises(HardwareError, match="polarize_rows=64"):
        evaluate_variation(net, data, noise, draws=1)
    workload = zoo.workload("resnet20", "cifar10")
    polarized = apply_plan(with_polarization(Plan.for_workload(workload, "resnet20"), workload, 64), net)
    result = evaluate_variation(polarized, data, noise, draws=1)
    assert result.top1 == result.top1_clean  # no variation: the polarized crossbars hold the weights exactly


def test_design_noise_takes_the_devices_sourced_figures():
    reram, design = design_noise("cim:reram", {"sigma": "0.1", "adc_bits": "6"})
    assert (reram.sigma, reram.stuck_at_off, reram.stuck_at_on, reram.read_noise) == (0.1, 0.09, 0.01, 0.0)
    assert reram.adc_bits == 6 and reram.on_off_ratio == 10.0 and design["device"] == "reram"
    pcm, _ = design_noise("cim:pcm", {"stuck_at_on": "0"})
    assert (pcm.sigma, pcm.read_noise, pcm.stuck_at_off, pcm.stuck_at_on) == (0.042, 0.0088, 0.0, 0.0)


@pytest.mark.slow  # the whole 1017-image partial split, clean and one draw: ~15 s alone, minutes when loaded
def test_the_cli_writes_the_monte_carlo_record(tmp_path, capsys):
    out = tmp_path / "v.json"
    assert main(["evaluate", "--model", "resnet20", "--dataset", "cifar10", "--split", "test-partial", "--hardware",
                 "cim:reram", "--hw-param", "sigma=0.02", "--draws", "1", "--seed", "3", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert {"top1", "top1_std", "top1_min", "draws", "top1_clean", "noise"} <= set(record)
    assert record["draws"] == 1 and record["seed"] == 3 and record["design"]["sigma"] == 0.02
    assert record["noise"]["stuck_at_off"] == 0.09 and record["noise"]["adc_bits"] == 8
    assert record["top1_min"] == record["top1"] == record["top1_draws"][0] and record["top1_std"] == 0.0


BASE = ["--model", "resnet20", "--dataset", "cifar10", "--split", "test-partial"]


@pytest.mark.parametrize(("argv", "words"), [
    (["--hardware", "cim:fefet"], ["no programming variation", "sigma="]),
    (["--hardware", "cim:reram", "--hw-param", "sigma=2"], ["sigma=2.0", "outside"]),
    (["--hardware", "cim:reram", "--hw-param", "adc_bits=0"], ["adc_bits=0", "outside"]),
    (["--hardware", "cim:reram", "--hw-param", "stuck_at_on=1.5"], ["stuck_at_on=1.5", "outside"]),
    (["--hardware", "cim:reram", "--hw-param", "on_off_ratio=1"], ["on/off ratio 1", "outside"]),
    (["--hardware", "cim:reram", "--draws", "0"], ["draws=0"]),
    (["--hardware", "systolic"], ["cim designs"]),
    (["--bn-calibration", "64"], ["--bn-calibration applies", "--hardware"]),
    (["--hardware", "cim:reram", "--bn-calibration", "-1"], ["bn_calibration=-1", "whole number"]),
    (["--hardware", "cim:reram", "--backend", "aihwkit", "--bn-calibration", "64", "--hw-param", "sigma=0.1",
      "--hw-param", "adc_bits=9", "--hw-param", "stuck_at_off=0", "--hw-param", "stuck_at_on=0"],
     ["re-estimation is modelled by nn2hw's backend", "Drop --bn-calibration"]),
])
def test_bad_variation_input_exits_2_with_the_fix(argv, words, capsys):
    assert main(["evaluate", *BASE, *argv]) == 2
    err = capsys.readouterr().err
    assert all(w in err for w in words) and "fix:" in err, err


def test_baking_keeps_a_quantized_noise_trained_network_as_it_is():
    """Weights quantized and noise-trained, activations quantized (a class wrapping the parametrized
    one): the baked copy computes the same function, its weights are plain parameters written in
    place, and the original is untouched."""
    from nn2hw.compress import apply_plan, with_quantization
    from nn2hw.compress.crossbar import with_noise_training
    from nn2hw.evaluate.variation import baked, crossbar_modules
    from nn2hw.plan import Plan
    from tests.compress.cases import model_case

    model, x, workload = model_case("mini_mobilenet_v2")
    plan = with_quantization(Plan.for_workload(workload, "m"), workload, 4, "features.1.*", act_bits=4, act_int_bits=2)
    net = apply_plan(with_noise_training(plan, workload, 0.1), model).eval()
    copy = baked(net)
    assert torch.equal(copy(x), net(x))  # activation quantization kept, training noise off in eval mode
    name = "features.1.conv.3"
    held = crossbar_modules(copy)[name]
    assert isinstance(held.weight, torch.nn.Parameter) and held.weight is held.weight
    with torch.no_grad():
        held.weight.zero_()
    assert float(held.weight.abs().sum()) == 0.0 and float(crossbar_modules(net)[name].weight.abs().sum()) > 0
