"""Units as dose reports spell them, read into a dimension and a factor to its base unit.

Devices write "Gy.m2", "Gy*m2", "Gym2", "dGy.cm2", "dGycm2", "µGy·m²", "mGy*cm", "min", ...,
and sometimes only a CodeMeaning ("gray square meter", "seconds"). `parse_unit` reads each
into a dose prefix and an area or length, or a time, or a count. Base units: Gy (dose),
Gy·m² (dose-area product), mGy·cm (dose-length product), s (time), 1 (count).
"""

from __future__ import annotations

import re
from decimal import Decimal

# Dimensions and the unit every figure of that dimension is normalised to.
DOSE, DOSE_AREA, DOSE_LENGTH, TIME, COUNT = "dose", "dose_area", "dose_length", "time", "count"
MGY_PER_GY = Decimal(1000)

_DOSE_PREFIX = {"": Decimal(1), "d": Decimal("0.1"), "c": Decimal("0.01"),
                "m": Decimal("0.001"), "u": Decimal("0.000001")}  # fmt: skip
_AREA_IN_M2 = {"m2": Decimal(1), "dm2": Decimal("0.01"), "cm2": Decimal("0.0001"),
               "mm2": Decimal("0.000001")}  # fmt: skip
_LENGTH_IN_CM = {"m": Decimal(100), "dm": Decimal(10), "cm": Decimal(1), "mm": Decimal("0.1")}
_TIME_IN_S = {"s": Decimal(1), "ms": Decimal("0.001"), "us": Decimal("0.000001"),
              "min": Decimal(60), "h": Decimal(3600)}  # fmt: skip
# Spelt-out words (CodeMeaning-only units) to UCUM-ish atoms; longest first.
_WORDS = (
    ("milli", "m"), ("micro", "u"), ("centi", "c"), ("deci", "d"),
    ("gray", "gy"), ("grey", "gy"),
    ("metres", "m"), ("meters", "m"), ("metre", "m"), ("meter", "m"),
    ("seconds", "s"), ("second", "s"), ("secs", "s"), ("sec", "s"),
    ("minutes", "min"), ("minute", "min"), ("mins", "min"),
    ("hours", "h"), ("hour", "h"), ("hrs", "h"), ("hr", "h"),
)  # fmt: skip
_DOSE_UNIT = re.compile(r"^(?P<prefix>[udcm]?)gy(?P<rest>(?:[dcm]?m2?)?)$")
_SQUARE = re.compile(r"square((?:milli|centi|deci)?met(?:er|re)s?|[dcm]?m)")
_COUNT_UNIT = re.compile(r"^(?:1|\{.*\}|nounits?|frames?|images?|counts?|)$")


def parse_unit(text: str) -> tuple[str, Decimal] | None:
    """(dimension, factor to the dimension's base unit) of a unit as devices spell it, or None.

    "dGy.cm2" -> (dose_area, 1e-5): 1 dGy·cm² is 1e-5 Gy·m². Case is ignored (nobody sends
    megagray), so "MGy" reads as mGy.
    """
    s = text.strip().casefold().replace(" x ", " ")  # "dGy x cm2"
    s = s.replace("µ", "u").replace("μ", "u").replace("²", "2")
    s = re.sub(r"[\s.*·⋅^_×-]", "", s)  # noqa: RUF001 (the multiplication sign)
    s = s.replace("squared", "2")  # "centimeter squared"
    s = _SQUARE.sub(r"\g<1>2", s)  # "square meter"
    for word, atom in _WORDS:
        s = s.replace(word, atom)
    if (m := _DOSE_UNIT.match(s)) is not None:
        dose = _DOSE_PREFIX[m["prefix"]]
        rest = m["rest"]
        if not rest:
            return DOSE, dose
        if rest in _AREA_IN_M2:
            return DOSE_AREA, dose * _AREA_IN_M2[rest]
        if rest in _LENGTH_IN_CM:
            return DOSE_LENGTH, dose * MGY_PER_GY * _LENGTH_IN_CM[rest]
        return None
    if s in _TIME_IN_S:
        return TIME, _TIME_IN_S[s]
    if _COUNT_UNIT.match(s):
        return COUNT, Decimal(1)
    return None
