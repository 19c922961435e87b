"""Every option of `python -m neural dimensions`, `errorbudget` and `flowcheck` has a help
text that states its default."""

import argparse

import pytest

from neural.__main__ import _parser


def _subparser(name: str) -> argparse.ArgumentParser:
    commands = next(
        action for action in _parser()._actions if isinstance(action, argparse._SubParsersAction)
    )
    return commands.choices[name]


@pytest.mark.parametrize("command", ["dimensions", "errorbudget", "flowcheck"])
def test_every_option_has_help_with_its_default(command):
    parser = _subparser(command)
    formatter = parser._get_formatter()
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        text = formatter._expand_help(action) if action.help else ""
        default = action.default
        states_default = "default" in text and (
            not isinstance(default, (int, float, str))
            or isinstance(default, bool)
            or str(default) in text
        )
        if not states_default:
            missing.append((action.option_strings[0], text))
    assert not missing, missing
    assert "default" in parser.format_help()
