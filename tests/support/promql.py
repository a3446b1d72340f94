"""Just enough PromQL lexing to list the vector selectors of an expression: metric name and label
matchers. Parsing itself is Prometheus' job (test_dashboards.py sends every query to a real one);
this finds which metrics and jobs a query names."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Grouping/matching modifiers take a parenthesised label list that is not an expression.
_LABEL_LIST_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_AGGREGATIONS = {
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
}
_KEYWORDS = _LABEL_LIST_KEYWORDS | {
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "atan2",
    "inf",
    "nan",
    "start",
    "end",
}

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<number>[0-9][0-9a-zA-Z_.]*|\.[0-9][0-9a-zA-Z_.]*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<lbrace>\{)
  | (?P<rbrace>\})
  | (?P<lbracket>\[)
  | (?P<rbracket>\])
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<other>[-+*/%^=!<>~,@])
    """,
    re.VERBOSE,
)
_MATCHER = re.compile(
    r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`)\s*,?'
)


@dataclass(frozen=True)
class Selector:
    name: str | None
    matchers: tuple[tuple[str, str, str], ...]  # (label, op, value)

    def label(self, label: str) -> tuple[str, str] | None:
        """(op, value) of the first matcher on ``label``, if any."""
        for name, op, value in self.matchers:
            if name == label:
                return op, value
        return None


def _tokens(expr: str) -> list[tuple[str, str, int, int]]:
    """(kind, text, start, end) for each token except whitespace."""
    tokens, pos = [], 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if not match:
            raise ValueError(f"cannot lex PromQL at {expr[pos : pos + 20]!r} in {expr!r}")
        if match.lastgroup != "space":
            tokens.append((match.lastgroup, match.group(), match.start(), match.end()))
        pos = match.end()
    return tokens


def _unquote(literal: str) -> str:
    if literal[0] == "`":
        return literal[1:-1]
    return literal[1:-1].encode().decode("unicode_escape")


def _matchers(block: str) -> tuple[tuple[str, str, str], ...]:
    found, pos = [], 0
    while pos < len(block.strip()):
        match = _MATCHER.match(block, pos)
        if not match:
            raise ValueError(f"cannot read label matchers {{{block}}}")
        found.append((match.group(1), match.group(2), _unquote(match.group(3))))
        pos = match.end()
    return tuple(found)


def selectors(expr: str) -> list[Selector]:
    """Vector selectors of ``expr`` in order of appearance."""
    tokens = _tokens(expr)
    found = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i][:2]
        following = tokens[i + 1][0] if i + 1 < len(tokens) else None
        following_text = tokens[i + 1][1].lower() if i + 1 < len(tokens) else ""
        if kind == "ident" and text.lower() in _LABEL_LIST_KEYWORDS and following == "lparen":
            while tokens[i][0] != "rparen":  # skip the label list
                i += 1
        elif kind == "ident" and (
            following == "lparen"
            or text.lower() in _KEYWORDS
            or (text in _AGGREGATIONS and following_text in ("by", "without"))
        ):
            pass  # a function or aggregation call, or an operator keyword
        elif kind in ("ident", "lbrace"):
            name = text if kind == "ident" else None
            matchers: tuple = ()
            if kind == "lbrace" or following == "lbrace":
                start = i + 1 if kind == "lbrace" else i + 2
                end = start
                while tokens[end][0] != "rbrace":
                    end += 1
                matchers = _matchers(expr[tokens[start - 1][3] : tokens[end][2]])
                i = end
            found.append(Selector(name, matchers))
        elif kind == "lbracket":
            while tokens[i][0] != "rbracket":  # range or subquery duration
                i += 1
        i += 1
    return found


def metric_names(expr: str) -> set[str]:
    return {s.name for s in selectors(expr) if s.name}
