"""Value types the catalogue is built from: numbers that must be numbers, spine levels."""

from __future__ import annotations

from itertools import pairwise
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

# JSON numbers only: "2.5" as a string is refused, so a typo never becomes a dose.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Positive = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]
NonNegative = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)]
Count = Annotated[int, Field(strict=True, ge=0)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Uid = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)]

Phase = Literal["harvest", "implant"]

_VERTEBRAE = (
    [f"C{i}" for i in range(2, 8)]
    + [f"T{i}" for i in range(1, 13)]
    + [f"L{i}" for i in range(1, 6)]
    + ["S1"]
)
# Adjacent pairs, plus the lumbar pairs a six-lumbar counting convention needs.
# In anatomical order, head to sacrum (what a picker lists), then the two six-lumbar pairs.
LEVELS_IN_ORDER: tuple[str, ...] = (
    *(f"{a}-{b}" for a, b in pairwise(_VERTEBRAE)),
    "L5-L6",
    "L6-S1",
)
LEVELS: frozenset[str] = frozenset(LEVELS_IN_ORDER)


def _check_level(value: str) -> str:
    if value not in LEVELS:
        raise ValueError(f"{value!r} is not a spinal level such as L4-L5 (C2-C3 to L5-S1)")
    return value


Level = Annotated[str, AfterValidator(_check_level)]


class Model(BaseModel):
    """Base of every payload: unknown keys are refused so a misspelt key never vanishes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PatientRef(Model):
    id: Identifier
    issuer: Identifier | None = None


SIX_LUMBAR_LEVELS = frozenset({"L5-L6", "L6-S1"})
# The counting convention: how many lumbar vertebrae this patient's imaging counts. With
# transitional anatomy a lumbarised S1 makes six, and L5-L6 and L6-S1 exist; L5-S1 does not.
LumbarVertebrae = Literal[4, 5, 6]


def check_convention(levels: list[str], lumbar_vertebrae: int | None) -> None:
    """Raise ValueError when a level does not exist under the counting convention."""
    if lumbar_vertebrae == 6:
        if "L5-S1" in levels:
            raise ValueError("with six lumbar vertebrae the lowest lumbar disc is L6-S1")
    elif SIX_LUMBAR_LEVELS & set(levels):
        raise ValueError("L5-L6 and L6-S1 exist only with lumbar_vertebrae: 6")


class Target(Model):
    kind: Literal["disc", "muscle", "artery", "other"]
    level: Level | None = None
    side: Literal["left", "right", "bilateral", "midline"] | None = None
    name: Text | None = None
    lumbar_vertebrae: LumbarVertebrae | None = None  # the counting convention, when not 5

    @model_validator(mode="after")
    def _level_exists(self) -> Target:
        check_convention([self.level] if self.level else [], self.lumbar_vertebrae)
        return self


# Units a dose may be given in. Aliases clinics use are accepted as written; the rules count
# them as one (mcg = ug = µg, ml = mL, units = U): see shared.clinical.rules.
DoseUnit = Literal[
    "mg", "mcg", "ug", "µg", "ng", "g", "mL", "ml", "L", "IU", "U", "units", "mmol", "mEq"
]
