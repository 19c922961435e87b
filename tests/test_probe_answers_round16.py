"""Answers to the fifth list of a user's bad or unusual inputs (issue 22), and to the
leftovers the fourth list's note named: each now answered, refused by name or warned about."""

import pytest

import gridflow.__main__ as gridflow_cli
import neural.__main__ as neural_cli
from gridflow.cli import NEGATIVE_NUMBER


@pytest.mark.parametrize("text", ["-1", "-1.", "-.5", "-1e-300", "-2.5E+3", "-1e1", "-inf", "-NaN"])
def test_negative_numbers_with_exponents_are_arguments(text):
    assert NEGATIVE_NUMBER.match(text)


@pytest.mark.parametrize("text", ["-e1", "-1e", "--box", "-", "-1e-3x", "-infinity"])
def test_options_are_not_numbers(text):
    assert not NEGATIVE_NUMBER.match(text)


def test_source_box_reads_negative_exponents():
    # argparse's own pattern has no exponent: "-1e-3" was an unknown option
    args = gridflow_cli.parser().parse_args(
        ["groundtruth", "--source", "d.npy", "--source-box", "-1e-3", "1", "-2.5E+0", "2"]
    )
    assert [float(v) for v in args.source_box] == [-1e-3, 1.0, -2.5, 2.0]


def test_negative_exponent_reaches_the_value_check(capsys):
    with pytest.raises(SystemExit) as ended:
        neural_cli.main(["flowcheck", "--tau", "-1e-3"])
    assert ended.value.code == 2
    assert "--tau must be a finite number > 0, got -0.001" in capsys.readouterr().err
