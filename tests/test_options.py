from dataclasses import dataclass
from typing import Literal, Optional

import pytest

from distillbench.errors import UsageError
from distillbench.options import build, int_list, parse_pairs


@dataclass
class Opts:
    m: int = 10
    lam: float = 0.5
    mapping: Literal["ddim", "ddpm"] = "ddim"
    guided: bool = True
    backbone: Optional[str] = None


def test_values_are_converted_by_annotation():
    opts = build(Opts, parse_pairs(["m=1000", "lam=0.1", "mapping=ddpm", "guided=false", "backbone=/x"]), "t")
    assert opts == Opts(1000, 0.1, "ddpm", False, "/x")
    assert build(Opts, {}, "t") == Opts()
    assert build(Opts, {"backbone": "none"}, "t").backbone is None


@pytest.mark.parametrize("pairs,message", [
    (["x=1"], "unknown option 'x' for t; valid keys: backbone, guided, lam, m, mapping"),
    (["m=ten"], "option m=ten is not a valid int"),
    (["mapping=ddx"], "choose one of: ddim, ddpm"),
    (["guided=maybe"], "is not a boolean"),
])
def test_bad_values_are_rejected_with_the_choices(pairs, message):
    with pytest.raises(UsageError, match=message):
        build(Opts, parse_pairs(pairs), "t")


@pytest.mark.parametrize("pair", ["novalue", "=3", ""])
def test_malformed_pairs(pair):
    with pytest.raises(UsageError, match="expected key=value"):
        parse_pairs([pair])


@pytest.mark.parametrize("text, values", [("0-4", [0, 1, 2, 3, 4]), ("2,5,3", [2, 5, 3]), ("7", [7]), ("3-3", [3])])
def test_int_lists_are_ranges_or_lists(text, values):
    assert int_list(text, "--seeds", 0, "0-4") == values


@pytest.mark.parametrize("text", ["4-x", "", "1,,2", "3-1", "0,2", "-1-3"])
def test_bad_int_lists_name_the_flag_and_the_minimum(text):
    with pytest.raises(UsageError, match=f"--ipcs {text}: expected a range A-B or a list A,B,... of integers >= 1"):
        int_list(text, "--ipcs", 1, "1,10")


def test_none_is_a_choice_where_the_choices_name_it_and_left_unset_elsewhere():
    from dataclasses import dataclass
    from typing import Literal, Optional

    from distillbench.options import build

    @dataclass(frozen=True)
    class Settings:
        mix: Optional[Literal["cutmix", "none"]] = "cutmix"
        lr: Optional[float] = 0.1
    assert build(Settings, {"mix": "none"}, "t").mix == "none"  # --set mix=none: no mixing
    assert build(Settings, {"lr": "none"}, "t").lr is None
