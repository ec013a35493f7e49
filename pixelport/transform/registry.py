"""Parameter keys to their handlers, named transformations and conditionals.

A new parameter is one handler in `params/` plus one entry in HANDLERS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pixelport.errors import InvalidRequest
from pixelport.transform import layer
from pixelport.transform.grammar import Param, RawStep, split_chain
from pixelport.transform.params import effects, output, size, special, video
from pixelport.transform.step import ChainItem, Condition, Conditional, Step

Handler = Callable[[Param, Step], None]

HANDLERS: dict[str, Handler] = {
    **size.HANDLERS,
    **output.HANDLERS,
    **effects.HANDLERS,
    **special.HANDLERS,
    **video.HANDLERS,
}
CONDITION_PROPERTIES = ("w", "h", "ar", "iw", "ih", "iar")
CONDITION_OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte")
NO_NAMED: Mapping[str, str] = {}
# Keys of a layer's own (layer.py), refused with a pointer when given to the base.
LAYER_ONLY = frozenset(layer.PLACEMENT) | layer.TEXT_ONLY
# What ImageKit's SDKs can emit and pixelport does not do yet (docs/transformations.md).
NOT_YET = {"dn": "the density of a vector input", "fol": "subtitle outline",
           "fsh": "subtitle shadow"}


def build_step(raw: RawStep) -> Step:
    """Validate one step's parameters into a typed Step (a repeated parameter: the last wins).

    `step.params` keeps what is applied, and so what the cache key is spelt from: every effect
    (`e-grayscale,e-contrast` applies both), but only the last of a repeated key (`w-1,w-2`).
    """
    step = Step()
    for param in raw:
        handler = HANDLERS.get(param.key)
        if handler is None:
            if param.key in ("if", "n"):
                raise InvalidRequest(f"{param} must start a step of its own")
            if param.key in LAYER_ONLY:
                raise InvalidRequest(f"{param} applies inside a layer (l-image|l-text,...,"
                                     f"{param},...,l-end), not to the base image")
            if param.key in NOT_YET:
                raise InvalidRequest(f"{param} ({NOT_YET[param.key]}) is not supported yet")
            raise InvalidRequest(f"Unknown transformation parameter {param.key!r} in {param}")
        handler(param, step)
        if param.key == "l":  # every layer counts, in order
            step.params.append(param)
            continue
        name = _identity(param)
        step.params = [p for p in step.params if _identity(p) != name] + [param]
    return step


def _identity(param: Param) -> str:
    """What a later parameter replaces: the key, or for effects (`e-`) the effect's name."""
    if param.key == "e":
        return "e-" + param.value.split("-", 1)[0]
    return param.key


def _layer(param: Param, step: Step) -> None:
    step.layers.append(layer.parse(param.value, build_item))


HANDLERS["l"] = _layer


def build_item(raw: RawStep) -> ChainItem:
    """A Step, or a Conditional when the step starts with `if-`."""
    if raw[0].key != "if":
        return build_step(raw)
    keys = [p.value for p in raw if p.key == "if"]
    if raw[-1] != Param("if", "end") or keys.count("end") != 1 or keys.count("else") > 1:
        raise InvalidRequest("A conditional must read if-<condition>,...[,if-else,...],if-end "
                             "as one whole step")
    body = list(raw[1:-1])
    split = next((i for i, p in enumerate(body) if p == Param("if", "else")), len(body))
    then, otherwise = body[:split], body[split + 1:]
    if any(p.key == "if" for p in then + otherwise):
        raise InvalidRequest("Conditionals cannot be nested")
    return Conditional(
        condition=parse_condition(raw[0].value),
        then=build_step(tuple(then)),
        otherwise=build_step(tuple(otherwise)) if split < len(body) else None,
        params=list(raw),
    )


def parse_condition(text: str) -> Condition:
    """`iw_gt_800_and_ih_lt_600_or_ar_eq_1` → clauses; `and` binds before `or`."""
    tokens = text.split("_")
    clauses: list[tuple[tuple[str, str, float], ...]] = []
    current: list[tuple[str, str, float]] = []
    index = 0
    while True:
        if index + 3 > len(tokens):
            raise InvalidRequest(f"Invalid condition {text!r}")
        prop, operator, value = tokens[index:index + 3]
        if prop not in CONDITION_PROPERTIES or operator not in CONDITION_OPERATORS:
            raise InvalidRequest(f"Invalid condition {text!r}: expected <w|h|ar|iw|ih|iar>_"
                                 "<eq|ne|gt|gte|lt|lte>_<number>")
        current.append((prop, operator, _condition_value(prop, value, text)))
        index += 3
        if index == len(tokens):
            break
        joiner = tokens[index]
        if joiner == "or":
            clauses.append(tuple(current))
            current = []
        elif joiner != "and":
            raise InvalidRequest(f"Invalid condition {text!r}: join clauses with _and_ or _or_")
        index += 1
    clauses.append(tuple(current))
    return Condition(tuple(clauses), text)


def _condition_value(prop: str, value: str, text: str) -> float:
    """A number (`N` for negative), or for ar/iar also a fraction: ImageKit documents "an
    aspect ratio of 4:3 can be specified as 4-3" (the grammar leaves the `-` in the value)."""
    numerator, sep, denominator = value.partition("-")
    try:
        if sep and prop in ("ar", "iar"):
            if float(denominator) <= 0 or float(numerator) < 0:
                raise ValueError
            return float(numerator) / float(denominator)
        return -float(value[1:]) if value.startswith("N") else float(value)
    except ValueError:
        raise InvalidRequest(f"Invalid number {value!r} in condition {text!r}") from None


def holds(condition: Condition, values: Mapping[str, float]) -> bool:
    """Evaluate a condition against the image's current and input sizes."""
    def test(prop: str, operator: str, number: float) -> bool:
        actual = values[prop]
        return {"eq": actual == number, "ne": actual != number, "gt": actual > number,
                "gte": actual >= number, "lt": actual < number, "lte": actual <= number}[operator]
    return any(all(test(*term) for term in clause) for clause in condition.clauses)


def expand_named(steps: list[RawStep], named: Mapping[str, str]) -> list[RawStep]:
    """Replace `n-<name>` by the named transformation's parameters (explicit ones win)."""
    expanded: list[RawStep] = []
    for raw in steps:
        if not any(p.key == "n" for p in raw):
            expanded.append(raw)
            continue
        before: list[RawStep] = []
        merged: list[Param] = []
        for param in raw:
            if param.key != "n":
                merged.append(param)
                continue
            if param.value not in named:
                raise InvalidRequest(f"Unknown named transformation {param.value!r}")
            inner = split_chain(named[param.value])
            if any(p.key == "n" for step in inner for p in step):
                raise InvalidRequest(f"Named transformation {param.value!r} uses another one")
            before.extend(inner[:-1])
            merged.extend(inner[-1] if inner else ())
        expanded.extend(before)
        if merged:
            expanded.append(tuple(merged))
    return expanded


def parse(text: str, named: Mapping[str, str] = NO_NAMED) -> list[ChainItem]:
    """A whole transformation string into typed steps and conditionals."""
    return [build_item(raw) for raw in expand_named(split_chain(text), named)]


def canonical(items: list[ChainItem]) -> str:
    """A stable spelling of a chain (sorted parameters), for cache keys and logs."""
    parts: list[str] = []
    for item in items:
        if isinstance(item, Conditional):
            parts.append(",".join(str(p) for p in item.params))
        else:
            # Layers are drawn in order, so their order is kept (after the sorted rest).
            plain = sorted(str(p) for p in item.params if p.key != "l")
            parts.append(",".join(plain + [str(p) for p in item.params if p.key == "l"]))
    return ":".join(parts)
