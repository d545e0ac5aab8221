"""Units of the lab values the rules compare, and conversion to one unit each.

A unit that is not listed here is not guessed: the value is kept but marked
unusable, so a card can say 'recorded in an unknown unit' instead of firing.
"""

from __future__ import annotations

# Every spelling maps to (canonical unit, factor to multiply by).
_MICRO = ("u", "µ", "μ")  # ASCII u, micro sign U+00B5, Greek mu U+03BC

_TSH = {"miu/l": 1.0, "mu/l": 1.0, "m[iu]/l": 1.0, "mlu/l": 1.0}
for _m in _MICRO:
    _TSH[f"{_m}iu/ml"] = 1.0
    _TSH[f"{_m}[iu]/ml"] = 1.0
    _TSH[f"{_m}u/ml"] = 1.0

# 1 ng/dL free T4 = 12.87 pmol/L (terminology.md).
_FT4 = {"pmol/l": 1.0, "ng/dl": 12.87}

_ANTIBODY = {
    "gpl": 1.0, "mpl": 1.0, "gpl u/ml": 1.0, "mpl u/ml": 1.0, "gpl/ml": 1.0, "mpl/ml": 1.0,
    "[gpl'u]/ml": 1.0, "[mpl'u]/ml": 1.0, "u/ml": 1.0, "[iu]/ml": 1.0, "iu/ml": 1.0,
    "ku/l": 1.0, "kiu/l": 1.0, "sgu": 1.0, "smu": 1.0, "cu": 1.0,
}

_LENGTH_MM = {"mm": 1.0, "cm": 10.0}
_BMI = {"kg/m2": 1.0, "kg/m^2": 1.0, "kg/m²": 1.0}
_TPO = {"iu/ml": 1.0, "[iu]/ml": 1.0, "ku/l": 1.0, "kiu/l": 1.0, "u/ml": 1.0}

CANONICAL: dict[str, tuple[str, dict[str, float]]] = {
    "tsh": ("mIU/L", _TSH),
    "free-t4": ("pmol/L", _FT4),
    "tpo-antibodies": ("IU/mL", _TPO),
    "anticardiolipin-igg": ("U/mL", _ANTIBODY),
    "anticardiolipin-igm": ("U/mL", _ANTIBODY),
    "anti-beta2-glycoprotein-igg": ("U/mL", _ANTIBODY),
    "anti-beta2-glycoprotein-igm": ("U/mL", _ANTIBODY),
    "crown-rump-length": ("mm", _LENGTH_MM),
    "gestational-sac-diameter": ("mm", _LENGTH_MM),
    "bmi": ("kg/m2", _BMI),
}


def convert(test: str, value: float, unit: str | None) -> tuple[float, str] | None:
    """(value, canonical unit) for a test, or None when the unit is unknown.

    Tests without a canonical unit (e.g. a lupus anticoagulant ratio) keep the
    recorded unit unchanged: only their interpretation or reference range is used.
    """
    spec = CANONICAL.get(test)
    if spec is None:
        return value, unit or ""
    canonical, factors = spec
    if not unit:
        return None
    factor = factors.get(unit.strip().lower())
    if factor is None:
        return None
    return value * factor, canonical
