"""The options several commands share, each declared once: its flag, metavar and help.

A command adds the ones it takes (``add_model(parser)``...) and keeps only its own options; so
``--model`` or ``--hw-param`` reads the same in ``analyze``, ``evaluate``, ``search`` and
``zoo train``. Names of models, datasets and templates are listed by ``nn2hw list``, never copied
here (the parser must stay cheap: no registry is loaded to build it).
"""

from __future__ import annotations

import argparse

ArgumentTarget = argparse.ArgumentParser | argparse._ArgumentGroup | argparse._MutuallyExclusiveGroup


def add_model(target: ArgumentTarget, *, required: bool = True) -> None:
    """``--model NAME``: a zoo model."""
    target.add_argument("--model", required=required, metavar="NAME", help="zoo model (`nn2hw list models`)")


def add_dataset(target: ArgumentTarget, *, required: bool = True, default: str | None = None) -> None:
    """``--dataset NAME``: the dataset, which also picks the model's input variant."""
    fallback = f"default {default}" if default else "default: the model's" if not required else ""
    target.add_argument("--dataset", required=required, default=default, metavar="NAME",
                        help="dataset and the model's input variant (`nn2hw list datasets`"
                             + (f"; {fallback})" if fallback else ")"))


def add_data(target: ArgumentTarget, *, split: bool = True) -> None:
    """``--data-dir DIR`` (and ``--split SPLIT``): where the dataset's files are, which split is measured."""
    target.add_argument("--data-dir", metavar="DIR",
                        help="folder of the dataset files (default: NN2HW_DATA, the system locations, the cache)")
    if split:
        target.add_argument("--split", default="test", metavar="SPLIT",
                            help="split to measure accuracy on (default test; test-partial: the first 1017 "
                                 "CIFAR-10 test images, reported as partial)")


def add_seq_len(target: ArgumentTarget) -> None:
    """``--seq-len N``: the token count of a sequence model (refused for an image model)."""
    target.add_argument("--seq-len", type=int, metavar="N",
                        help="token count of a sequence model such as minilm_l6 (default: the model's, 128)")


def add_checkpoint(target: ArgumentTarget) -> None:
    """``--checkpoint FILE``: weights instead of the zoo's."""
    target.add_argument("--checkpoint", metavar="FILE", help="model weights to load instead of the zoo's checkpoint")


def add_hardware(target: ArgumentTarget) -> None:
    """``--hardware TEMPLATE[:DEVICE]`` and ``--hw-param KEY=VALUE``: the template, its options and design fields."""
    target.add_argument("--hardware", default="fpga:zcu102", metavar="TEMPLATE[:DEVICE]",
                        help="hardware template and device (default fpga:zcu102; `nn2hw list templates`)")
    target.add_argument("--hw-param", action="append", metavar="KEY=VALUE",
                        help="a template option (clock_mhz=100, preset=..., bram=as-run) or a design field; a list "
                             "restricts the exploration grid (Tr=32,64); repeatable; `nn2hw list templates NAME` "
                             "lists them")


def add_spec(target: ArgumentTarget) -> None:
    """``--latency-ms X``, ``--energy-mj E``, ``--area-mm2 A``: the design specs (upper limits)."""
    target.add_argument("--latency-ms", type=float, metavar="X", help="latency spec in ms")
    target.add_argument("--energy-mj", type=float, metavar="E", help="energy spec in mJ (ASIC templates)")
    target.add_argument("--area-mm2", type=float, metavar="A", help="area spec in mm2 (ASIC templates)")


def add_hardware_file(target: ArgumentTarget) -> None:
    """``--hardware-file FILE``: an ASIC accelerator or chip described in YAML/JSON (read by
    ``nn2hw.api.with_hardware_file``: the template, technology, params, clock and budgets)."""
    target.add_argument("--hardware-file", metavar="FILE",
                        help="YAML/JSON hardware description (ASIC template or heterogeneous chip, technology, "
                             "params, clock, budgets); it replaces --hardware, and --hw-param values override its "
                             "own; see docs/asic-cost-models.md")


def add_seed(target: ArgumentTarget, what: str, default: int | None = 0) -> None:
    """``--seed S``: the seed of ``what``."""
    target.add_argument("--seed", type=int, default=default, metavar="S", help=f"seed for {what} (default 0)")


def add_threads(target: ArgumentTarget, default: int | None = None, default_text: str = "2, or NN2HW_THREADS") -> None:
    """``--threads N``: torch threads."""
    target.add_argument("--threads", type=int, default=default, metavar="N",
                        help=f"torch threads (default {default_text})")


def add_json(target: ArgumentTarget, what: str = "the result") -> None:
    """``--json FILE``: a machine-readable copy of what the command prints."""
    target.add_argument("--json", metavar="FILE", help=f"also write {what} as JSON")


def add_precision(target: ArgumentTarget) -> None:
    """``--finetune-precision auto|bf16|fp32``: the arithmetic of the fine-tunes (``FinetuneSettings.precision``)."""
    from nn2hw.evaluate.settings import PRECISIONS  # torch-free

    target.add_argument("--finetune-precision", default="auto", choices=PRECISIONS, metavar="P",
                        help="fine-tune arithmetic: auto (bf16 autocast where the CPU has AVX-512 BF16 or AMX, "
                             "else fp32; the default), bf16 or fp32; tests always run in fp32")


def add_bn_calibration(target: ArgumentTarget, context: str) -> None:
    """``--bn-calibration N``: re-estimate each programmed crossbar draw's batch norms on N training
    images (``nn2hw.evaluate.variation``); ``context`` says when it applies."""
    target.add_argument("--bn-calibration", type=int, default=0, metavar="N",
                        help=f"{context}re-estimate the batch norms of each programmed draw on the first N training "
                             "images before testing it (a chip whose batch norms are digital; default 0: the trained "
                             "statistics)")
