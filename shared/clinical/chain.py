"""The fold as a chain of small handlers, one list per event type, that rooms compose.

shared/clinical holds the handlers every phase shares (stages and time-out, sedation and
recovery, adverse events, custody); services/harvest and services/implant each add their own
to make their `Rules`. Folding runs corrections first, then every fact in clinical order
(occurred_at, then arrival) through the handlers registered for its type, in the order they
were added. A rule never refuses a fact: it records what the fact means and raises alerts.

The clock rules are the alerts time alone brings; each also says whether it may still fire for
a procedure, so the clock knows which procedures to keep watching.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar, cast

from shared.clinical.corrections import apply_corrections
from shared.clinical.facts import Alert, Fact, Lot
from shared.clinical.policy import Policy
from shared.clinical.state import ProcedureState

S = TypeVar("S", bound=ProcedureState)
T = TypeVar("T", bound=ProcedureState)


@dataclass(frozen=True)
class Context:
    """What a handler may read besides the state and its fact."""

    lots: Mapping[str, Lot]
    policy: Policy


Handler = Callable[[S, Fact, Context], None]


@dataclass(frozen=True)
class ClockRule(Generic[S]):
    """Alerts that time alone raises (`due`), and whether it may still raise one (`pending`)."""

    due: Callable[[S, datetime, Policy], list[Alert]]
    pending: Callable[[S, Policy], bool]


@dataclass(frozen=True)
class Rules(Generic[S]):
    """A state type, the handlers per event type and the clock rules: one phase's rules."""

    state: type[S]
    handlers: Mapping[str, tuple[Handler[S], ...]] = field(default_factory=dict)
    clock: tuple[ClockRule[S], ...] = ()

    def then(
        self,
        state: type[T],
        handlers: Iterable[tuple[str, Handler[T]]] = (),
        clock: Iterable[ClockRule[T]] = (),
    ) -> Rules[T]:
        """These rules followed by more, over a state that extends this one's."""
        if self.state not in state.__mro__:
            raise TypeError(f"{state.__name__} does not extend {self.state.__name__}")
        # A handler of the base state accepts every extension of it.
        merged = {
            kind: list(cast(tuple[Handler[T], ...], hs)) for kind, hs in self.handlers.items()
        }
        for kind, handler in handlers:
            merged.setdefault(kind, []).append(handler)
        return Rules[T](
            state,
            {kind: tuple(hs) for kind, hs in merged.items()},
            (*cast(tuple[ClockRule[T], ...], self.clock), *clock),
        )

    def fold(
        self,
        procedure_id: str,
        events: Iterable[Fact],
        lots: Mapping[str, Lot] | None = None,
        policy: Policy | None = None,
    ) -> S:
        """The procedure's state and the alerts its facts raise, from all its events (and the
        released lots it may use)."""
        facts, correction_alerts, corrected = apply_corrections(events)
        state = self.state(procedure_id, corrected=corrected)
        state.alerts.extend(correction_alerts)
        context = Context(lots or {}, policy or Policy())
        for fact in sorted(facts, key=lambda f: (f.occurred_at, f.seq)):
            for handler in self.handlers.get(fact.type, ()):
                handler(state, fact, context)
        return state

    def due(self, state: S, now: datetime, policy: Policy) -> list[Alert]:
        """Alerts time alone raises by `now`, in the order the clock rules were added."""
        return [alert for rule in self.clock for alert in rule.due(state, now, policy)]

    def needs_clock(self, state: S, policy: Policy) -> bool:
        """Whether time alone may still raise an alert for this procedure."""
        return any(rule.pending(state, policy) for rule in self.clock)
