"""Learning-rate rules from text specs: the paper's laws, and bad specs rejected early."""

import doctest

import pytest

import rmtlr.lr_rules
from rmtlr.lr_rules import LRRule, lr_rule_from_spec


def test_rules_follow_their_formulas():
    assert lr_rule_from_spec("linear:0.01:128")(512) == pytest.approx(0.04)  # α0·B/B0
    assert lr_rule_from_spec("sqrt:0.0004:128")(32) == pytest.approx(0.0002)  # α0·sqrt(B/B0)
    assert lr_rule_from_spec(" Const : 0.3 ")(4096) == 0.3
    rule = lr_rule_from_spec("sqrt:4e-4:128")
    assert rule == LRRule("sqrt", 4e-4, 128.0) and lr_rule_from_spec(rule.spec) == rule
    assert isinstance(rule(100), float)


@pytest.mark.parametrize("spec,match", [
    ("const:inf", r"alpha0 must be a finite number in \(0, inf\)"),
    ("const:nan", r"alpha0 must be a finite number in \(0, inf\)"),
    ("const:0", r"alpha0 must be a finite number in \(0, inf\)"),
    ("linear:inf:128", r"alpha0 must be a finite number in \(0, inf\)"),
    ("linear:0.1:inf", r"B0 must be a finite number in \(0, inf\)"),
    ("sqrt:0.1:0", r"B0 must be a finite number in \(0, inf\)"),
    ("sqrt:0.1", "lr rule must be"),
    ("const:0.1:128", "lr rule must be"),
    ("cosine:0.1:128", "lr rule must be"),
    ("linear:a:b", "lr rule must be"),
    ("", "lr rule must be"),
])
def test_bad_specs(spec, match):
    with pytest.raises(ValueError, match=match):
        lr_rule_from_spec(spec)


def test_bad_types_and_batch_sizes():
    with pytest.raises(TypeError, match="lr rule must be a string"):
        lr_rule_from_spec(0.1)
    with pytest.raises(ValueError, match="B"):
        lr_rule_from_spec("const:0.1")(0)
    with pytest.raises(ValueError, match="B"):
        lr_rule_from_spec("linear:0.1:128")(-1)
    with pytest.raises(ValueError, match="no B0"):
        LRRule("const", 0.1, 128)


def test_docstring_examples_run():
    assert doctest.testmod(rmtlr.lr_rules, raise_on_error=False).failed == 0
