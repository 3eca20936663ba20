"""Learning-rate rules α(B) for batch-size sweeps, parsed from short text specs.

The paper's two laws (Granziol, Zohren & Roberts 2022, Secs. 10–11) and a constant:

- ``"linear:α0:B0"``: α(B) = α_0 · B/B_0, the SGD law (Sec. 10.1);
- ``"sqrt:α0:B0"``: α(B) = α_0 · sqrt(B/B_0), the Adam law (Eq. 31);
- ``"const:α"``: α(B) = α.

A spec is what the command line (``rmtlr sweep --lr-rule``) and a results file store; the
rule object it gives is a frozen, callable dataclass.
"""

from __future__ import annotations

from dataclasses import dataclass

from rmtlr.rmt.validation import finite_scalar, positive_scalar
from rmtlr.scaling import linear_rule, sqrt_rule

__all__ = ["LR_RULE_KINDS", "LRRule", "lr_rule_from_spec"]

#: The rule kinds a spec may name.
LR_RULE_KINDS = ("linear", "sqrt", "const")

_FORMAT = "'linear:ALPHA0:B0', 'sqrt:ALPHA0:B0' or 'const:ALPHA'"


@dataclass(frozen=True)
class LRRule:
    """A learning-rate rule α(B); call it with a batch size.

    Attributes
    ----------
    kind : str
        ``"linear"``, ``"sqrt"`` or ``"const"``.
    alpha0 : float
        α_0, the rate at the reference batch size (the constant rate for ``"const"``).
    B0 : float or None
        The reference batch size B_0 (None for ``"const"``).
    """

    kind: str
    alpha0: float
    B0: float | None = None

    def __post_init__(self) -> None:
        """Check the kind and that α_0 and B_0 are finite and > 0."""
        if self.kind not in LR_RULE_KINDS:
            raise ValueError(f"kind must be one of {LR_RULE_KINDS}, got {self.kind!r}")
        for name, v in (("alpha0", self.alpha0), ("B0", self.B0)):
            if name == "B0" and self.kind == "const":
                if v is not None:
                    raise ValueError(f"a const rule has no B0, got B0={v!r}")
                continue
            object.__setattr__(self, name, finite_scalar(f"lr rule {self.kind}: {name}", v,
                                                         lo=0, lo_open=True))

    def __call__(self, B: float) -> float:
        """Return α(B) for a batch size B > 0.

        Parameters
        ----------
        B : float
            The batch size, finite and > 0.

        Returns
        -------
        float
            The learning rate α(B).

        Raises
        ------
        TypeError
            If ``B`` is not a real number.
        ValueError
            If ``B`` is not finite and > 0.
        """
        if self.kind == "const":
            positive_scalar("B (batch size)", B)
            return self.alpha0
        rule = linear_rule if self.kind == "linear" else sqrt_rule
        return float(rule(B, alpha0=self.alpha0, B0=self.B0))

    @property
    def spec(self) -> str:
        """The text spec that :func:`lr_rule_from_spec` parses back into this rule."""
        if self.kind == "const":
            return f"const:{self.alpha0:g}"
        return f"{self.kind}:{self.alpha0:g}:{self.B0:g}"


def lr_rule_from_spec(spec: str) -> LRRule:
    """Parse a rule spec such as ``"linear:0.01:128"`` into an :class:`LRRule`.

    Parameters
    ----------
    spec : str
        ``"linear:ALPHA0:B0"`` (α_0·B/B_0, the SGD law, Sec. 10.1), ``"sqrt:ALPHA0:B0"``
        (α_0·sqrt(B/B_0), the Adam law, Eq. 31) or ``"const:ALPHA"``; numbers finite > 0.

    Returns
    -------
    LRRule
        The rule, callable as ``rule(B)``.

    Raises
    ------
    ValueError
        If ``spec`` has another form, or a number is not finite and > 0 (``inf``, ``nan``).
    TypeError
        If ``spec`` is not a string.

    Examples
    --------
    >>> rule = lr_rule_from_spec("sqrt:0.0004:128")
    >>> rule(512)
    0.0008
    >>> lr_rule_from_spec("linear:0.01:128")(256)
    0.02
    """
    if not isinstance(spec, str):
        raise TypeError(f"lr rule must be a string {_FORMAT}, got {spec!r}")
    kind, *rest = [p.strip() for p in spec.split(":")]
    kind = kind.lower()
    try:
        nums = [float(p) for p in rest]
    except ValueError:
        nums = None
    want = 1 if kind == "const" else 2
    if kind not in LR_RULE_KINDS or nums is None or len(nums) != want:
        raise ValueError(f"lr rule must be {_FORMAT}, got {spec!r}")
    return LRRule(kind, *nums)
