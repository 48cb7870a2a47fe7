"""Declared state machines. A feature declares its machine once; the engine enforces it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from zhengshu.security.actor import Role


@dataclass(frozen=True)
class State:
    name: str
    label: str
    handler_roles: frozenset[Role] = frozenset()  # who works on it (at the assignee organization)
    sla_days: Callable[[], int] | None = None  # working days allowed in this state
    final: bool = False


@dataclass(frozen=True)
class Transition:
    name: str
    label: str
    sources: frozenset[str]
    target: str


@dataclass
class Machine:
    kind: str
    label: str
    states: dict[str, State]
    transitions: dict[str, Transition]
    initial: str
    subject_label: str = ""
    link: Callable[[str, str], str] | None = field(default=None)  # (subject_type, subject_id) -> page URL

    def state(self, name: str) -> State:
        return self.states[name]

    def can(self, transition: str, state: str) -> bool:
        t = self.transitions.get(transition)
        return t is not None and state in t.sources

    def available(self, state: str) -> list[Transition]:
        return [t for t in self.transitions.values() if state in t.sources]


MACHINES: dict[str, Machine] = {}


def declare(
    kind: str,
    label: str,
    *,
    states: list[State],
    transitions: list[tuple[str, str, set[str] | str, str]],
    initial: str,
    link: Callable[[str, str], str] | None = None,
) -> Machine:
    """``transitions`` are (name, label, sources, target); sources ``"*"`` means every non-final state."""
    state_map = {s.name: s for s in states}
    non_final = {s.name for s in states if not s.final}
    trans: dict[str, Transition] = {}
    for name, t_label, sources, target in transitions:
        src = non_final if sources == "*" else set(sources)
        unknown = (src | {target}) - state_map.keys()
        if unknown:
            raise ValueError(f"machine {kind}: unknown states {unknown}")
        trans[name] = Transition(name, t_label, frozenset(src), target)
    machine = Machine(kind, label, state_map, trans, initial, link=link)
    MACHINES[kind] = machine
    return machine


def get_machine(kind: str) -> Machine:
    return MACHINES[kind]
