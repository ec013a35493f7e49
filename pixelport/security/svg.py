"""The SVG sanitiser: SVGs served as they are keep their drawing and lose anything active.

Kept: elements of an allow-list in the SVG namespace (or in no namespace), their attributes
except event handlers and external references, `xlink:`/`xml:lang`/`xml:space` attributes.
Dropped with their whole subtree: scripts, `foreignObject`, every element outside the list or
in another namespace (editor metadata, XHTML), animations that target `href`, `style` or an
event. Dropped on their own: comments, processing instructions (`xml-stylesheet`), the
DOCTYPE, `href`s that are not `#fragment` or `data:image/...`, CSS or attributes that load
anything from outside (`url(http...)`, `@import`) or hide it behind CSS escapes.

Entities are never fetched: external ones are skipped, internal ones may only hold plain text
(no references inside, so no "billion laughs"), and the expanded output is capped.
"""

from __future__ import annotations

import re
from xml.parsers import expat

from pixelport.errors import LimitExceeded, UnsupportedFormat

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

ELEMENTS = frozenset((
    "a", "animate", "animateMotion", "animateTransform", "circle", "clipPath", "defs", "desc",
    "ellipse", "feBlend", "feColorMatrix", "feComponentTransfer", "feComposite",
    "feConvolveMatrix", "feDiffuseLighting", "feDisplacementMap", "feDistantLight", "feDropShadow",
    "feFlood", "feFuncA", "feFuncB", "feFuncG", "feFuncR", "feGaussianBlur", "feImage", "feMerge",
    "feMergeNode", "feMorphology", "feOffset", "fePointLight", "feSpecularLighting", "feSpotLight",
    "feTile", "feTurbulence", "filter", "g", "image", "line", "linearGradient", "marker", "mask",
    "metadata", "mpath", "path", "pattern", "polygon", "polyline", "radialGradient", "rect", "set",
    "stop", "style", "svg", "switch", "symbol", "text", "textPath", "title", "tspan", "use",
    "view",
))
_ANIMATIONS = frozenset(("animate", "animateMotion", "animateTransform", "set"))
_XML_ATTRIBUTES = frozenset(("xml:lang", "xml:space"))
_MAX_ENTITIES = 64
MAX_BYTES = 5_000_000  # ImageKit's limit for vector input; also bounds the time one SVG takes
_URL_RE = re.compile(r"url\s*\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_CONTROL_RE = re.compile(r"[\x00-\x20\x7f]+")


def sanitize_svg(data: bytes) -> bytes:
    """Return a safe copy of the SVG `data`; raise UnsupportedFormat when it is not one."""
    if len(data) > MAX_BYTES:
        raise LimitExceeded(f"SVGs larger than {MAX_BYTES} bytes are not served")
    return _Sanitizer(max_output=max(4 * len(data), 1 << 20)).run(data)


def safe_reference(value: str) -> bool:
    """Whether an href (or url() target) stays inside the document or is an inline image."""
    target = _CONTROL_RE.sub("", value).lower()
    return target.startswith("#") or target.startswith("data:image/")


def safe_css(text: str) -> bool:
    """Whether CSS text loads nothing from outside (escapes could hide `url(` or `@import`)."""
    lowered = text.lower()
    if "\\" in text or "@import" in lowered or "expression(" in lowered:
        return False
    if "javascript:" in _CONTROL_RE.sub("", lowered):
        return False
    return all(safe_reference(match.group(2)) for match in _URL_RE.finditer(text))


class _Sanitizer:
    """One pass of expat over the document, writing what is kept as it goes."""

    def __init__(self, max_output: int) -> None:
        self.out: list[str] = ['<?xml version="1.0" encoding="UTF-8"?>\n']
        self.scopes: list[dict[str, str]] = [{"xml": XML_NS}]
        self.kept: list[bool] = []  # per open element: written (True) or dropped (False)
        self.skipping = 0  # depth inside a dropped subtree
        self.style: list[str] | None = None  # text of an open <style>, checked when it ends
        self.entities = 0
        self.seen_root = False
        self.budget = max_output

    def run(self, data: bytes) -> bytes:
        parser = expat.ParserCreate()
        # Never load the external DTD subset or external parameter entities.
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.buffer_text = True
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.text
        parser.EntityDeclHandler = self.entity
        # Returning 1 reports an external entity as handled without reading it: it is skipped.
        parser.ExternalEntityRefHandler = lambda *_: 1
        try:
            parser.Parse(data, True)
        except expat.ExpatError as exc:
            raise UnsupportedFormat(f"The SVG is not well-formed XML: {exc}") from None
        if not self.seen_root:
            raise UnsupportedFormat("The file is not an SVG")
        return "".join(self.out).encode("utf-8")

    def spend(self, count: int) -> None:
        self.budget -= count
        if self.budget < 0:
            raise LimitExceeded("The SVG expands to more text than allowed")

    def entity(self, name: str, is_parameter: int, value: str | None, *_: object) -> None:
        self.entities += 1
        if is_parameter:
            raise UnsupportedFormat("SVGs with parameter entities are not served")
        if self.entities > _MAX_ENTITIES:
            raise UnsupportedFormat("The SVG declares too many entities")
        if value is not None and ("&" in value or "%" in value):
            raise UnsupportedFormat(f"The SVG entity {name!r} refers to other entities")

    def start(self, name: str, attributes: dict[str, str]) -> None:
        self.spend(len(name) + sum(len(k) + len(v) for k, v in attributes.items()))
        scope = self.scopes[-1]
        declared = {key[6:] if key != "xmlns" else "": value
                    for key, value in attributes.items() if key.startswith("xmlns")
                    and (key == "xmlns" or key[5] == ":")}
        if declared:
            scope = {**scope, **declared}
        self.scopes.append(scope)
        if not self.seen_root:
            self.seen_root = True
            if name.rpartition(":")[2] != "svg" or _namespace(name, scope) not in (SVG_NS, None):
                raise UnsupportedFormat("The file is not an SVG (its root is not <svg>)")
        if self.skipping or not self.allowed(name, attributes, scope):
            self.skipping += 1
            self.kept.append(False)
            return
        kept = self.attributes(attributes, scope)
        self.out.append(f"<{name}{''.join(f' {k}={_quote(v)}' for k, v in kept)}>")
        self.kept.append(True)
        if name.rpartition(":")[2] == "style":
            self.style = []

    def allowed(self, name: str, attributes: dict[str, str], scope: dict[str, str]) -> bool:
        local = name.rpartition(":")[2]
        if local not in ELEMENTS or _namespace(name, scope) not in (SVG_NS, None):
            return False
        if local in _ANIMATIONS:
            target = attributes.get("attributeName", "").rpartition(":")[2].strip().lower()
            if target in ("href", "style") or target.startswith("on"):
                return False
        return True

    def attributes(self, attributes: dict[str, str],
                   scope: dict[str, str]) -> list[tuple[str, str]]:
        kept: list[tuple[str, str]] = []
        for key, value in attributes.items():
            prefix, _, local = key.rpartition(":")
            if key == "xmlns" or prefix == "xmlns":
                if value not in (SVG_NS, XLINK_NS):
                    continue  # nothing from another namespace is kept, so neither is its name
            elif prefix and key not in _XML_ATTRIBUTES and scope.get(prefix) != XLINK_NS:
                continue
            lowered = local.lower()
            if lowered.startswith("on"):
                continue
            if lowered == "href" and not safe_reference(value):
                continue
            if (lowered == "style" or "url(" in value.lower()) and not safe_css(value):
                continue
            kept.append((key, value))
        return kept

    def end(self, name: str) -> None:
        self.scopes.pop()
        if not self.kept.pop():
            self.skipping -= 1
            return
        if self.style is not None:
            css = "".join(self.style)
            if safe_css(css):
                self.out.append(_escape(css))
            self.style = None
        self.out.append(f"</{name}>")

    def text(self, data: str) -> None:
        self.spend(len(data))
        if self.skipping:
            return
        if self.style is not None:
            self.style.append(data)
        else:
            self.out.append(_escape(data))


def _namespace(name: str, scope: dict[str, str]) -> str | None:
    prefix = name.rpartition(":")[0]
    return scope.get(prefix) if prefix else scope.get("")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _quote(value: str) -> str:
    escaped = _escape(value).replace('"', "&quot;")
    # Keep whitespace characters that the parser would otherwise normalise away.
    return '"' + escaped.replace("\t", "&#9;").replace("\n", "&#10;").replace("\r", "&#13;") + '"'
