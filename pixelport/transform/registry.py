"""Parameter keys to their handlers: a new parameter is one handler plus one entry here."""

from __future__ import annotations

from collections.abc import Callable

from pixelport.errors import InvalidRequest
from pixelport.transform.grammar import Param, RawStep, split_chain
from pixelport.transform.params import output, size
from pixelport.transform.step import Step

Handler = Callable[[Param, Step], None]

HANDLERS: dict[str, Handler] = {
    **size.HANDLERS,
    **output.HANDLERS,
}


def build_step(raw: RawStep) -> Step:
    """Validate one step's parameters into a typed Step (a repeated key: the last wins)."""
    step = Step()
    for param in raw:
        handler = HANDLERS.get(param.key)
        if handler is None:
            raise InvalidRequest(f"Unknown transformation parameter {param.key!r} in {param}")
        handler(param, step)
        step.params = [p for p in step.params if p.key != param.key] + [param]
    return step


def parse(text: str) -> list[Step]:
    """A whole transformation string into typed steps."""
    return [build_step(raw) for raw in split_chain(text)]


def canonical(steps: list[Step]) -> str:
    """A stable spelling of a chain (sorted parameters), for cache keys and logs."""
    return ":".join(",".join(sorted(str(p) for p in step.params)) for step in steps)
