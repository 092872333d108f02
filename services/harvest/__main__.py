"""`python -m services.harvest`: harvest-phase events, under the harvest room's rules.

Each procedure's facts are kept and folded (rules.py); every event, and every alert the rules
raise, is stamped and forwarded to audit.
"""

from __future__ import annotations

from services.harvest.rules import RULES
from shared.bus.topology import Q_HARVEST
from shared.phase import run

if __name__ == "__main__":
    run("harvest", ("harvest",), Q_HARVEST, RULES)
