"""`python -m services.implant`: implant-phase and lab events, under the implant room's rules.

Each procedure's facts are kept and folded (rules.py), against the lots the lab released;
every event, and every alert the rules raise, is stamped and forwarded to audit.
"""

from __future__ import annotations

from services.implant.lots import open_implant_store
from services.implant.rules import RULES
from shared.bus.topology import Q_IMPLANT
from shared.phase import run

if __name__ == "__main__":
    run("implant", ("implant", "lab"), Q_IMPLANT, RULES, open_implant_store)
