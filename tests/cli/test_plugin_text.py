"""A plugin's text (a problem's cause and fix, a warning, a description) is printed as written:
brackets in it are not Rich markup, so a path like ``[/opt/plugin/data.bin]`` cannot crash a command."""

from __future__ import annotations

import argparse

import pytest

from nn2hw.cli import _show_warning, registries
from nn2hw.registry import PluginWarning, Registry

TEXT = "cannot open [/opt/plugin/data.bin] in [bold]strict[/bold] mode [/x]"


def test_a_plugin_warning_with_brackets_prints_literally(capsys):
    _show_warning(PluginWarning(TEXT), PluginWarning, "plugin.py", 1)
    assert f"warning: {TEXT}" in capsys.readouterr().err


def test_a_plugin_problem_with_brackets_prints_literally(monkeypatch, capsys):
    broken: Registry[object] = Registry("toy thing")
    with pytest.warns(PluginWarning, match=r"\[/x\]"):
        broken._problem("wobbly", "nn2hw-wobbly", TEXT, f"Reinstall [nn2hw-wobbly]; {TEXT}")
    broken.register("tidy", type("Tidy", (), {"description": f"says {TEXT}"})())
    monkeypatch.setattr(registries, "registry", lambda family: broken)
    assert registries._run(argparse.Namespace(family="templates", name=None)) == 2
    out, err = capsys.readouterr()
    assert f"says {TEXT}" in out
    assert f"plugin error: {TEXT}" in err and f"fix: Reinstall [nn2hw-wobbly]; {TEXT}" in err
