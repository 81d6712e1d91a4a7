"""A strict reader of Python/JSON literals: lists, dicts, strings, numbers, True/False/None.

Side-information files carry lists written as Python literals (TMDB's ``keywords.csv``:
``[{'id': 931, 'name': 'jealousy'}, …]``). This reads exactly that grammar with a regular
expression tokenizer and a small recursive parser: nothing is evaluated, and anything else
is a :class:`LiteralError` naming the column, which the caller turns into an error naming
the file and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_TOKEN = re.compile(r"""\s*(?:([\[\]{},:])|'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|"""
                    r"""(-?\d+(?:\.\d+)?)|(True|False|None)|(\Z))""", re.S)
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|x[0-9a-fA-F]{2}|.)", re.S)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "/": "/",
                   "0": "\0", "b": "\b", "f": "\f"}
_END = object()


class LiteralError(ValueError):
    """A literal that is not a list/dict/string/number/True/False/None; says the column."""


def _unescape(body: str, at: int) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "ux" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        raise LiteralError(f"unknown escape \\{code} in the string at column {at + 1}")

    return _ESCAPE.sub(one, body) if "\\" in body else body


def unquote(token: str) -> str:
    """The value of one quoted string token, ``'it\\'s'`` -> ``it's``."""
    return _unescape(token[1:-1], 0)


def _tokens(text: str) -> Iterator[tuple[int, str, object]]:
    pos = 0
    while True:
        match = _TOKEN.match(text, pos)
        if match is None:
            pos += len(text[pos:]) - len(text[pos:].lstrip())
            raise LiteralError(f"unexpected {text[pos:pos + 12]!r} at column {pos + 1}")
        punct, single, double, number, constant, end = match.groups()
        if end is not None:
            return
        start = match.start(match.lastindex or 0)
        if punct is not None:
            yield start, "p", punct
        elif single is not None or double is not None:
            yield start, "s", _unescape(single if single is not None else double, start)
        elif number is not None:
            yield start, "v", float(number) if "." in number else int(number)
        else:
            yield start, "v", {"True": True, "False": False, "None": None}[constant]
        pos = match.end()


def parse_literal(text: str) -> object:
    """A Python or JSON literal made of lists, dicts, strings, numbers, True/False/None.
    Raises :class:`LiteralError` (with the column) on anything else; never evaluates."""
    stream = _tokens(text)

    def take() -> tuple[int, str, object]:
        return next(stream, (len(text), "end", _END))

    def value(tok: tuple[int, str, object]) -> object:
        at, kind, val = tok
        if kind in ("s", "v"):
            return val
        if kind == "p" and val == "[":
            out: list[object] = []
            tok = take()
            while not (tok[1] == "p" and tok[2] == "]"):
                out.append(value(tok))
                tok = take()
                if tok[1] == "p" and tok[2] == ",":
                    tok = take()
                elif not (tok[1] == "p" and tok[2] == "]"):
                    raise LiteralError(f"expected ',' or ']' at column {tok[0] + 1}")
            return out
        if kind == "p" and val == "{":
            obj: dict[object, object] = {}
            tok = take()
            while not (tok[1] == "p" and tok[2] == "}"):
                if tok[1] != "s":
                    raise LiteralError(f"expected a quoted key at column {tok[0] + 1}")
                key = tok[2]
                colon = take()
                if not (colon[1] == "p" and colon[2] == ":"):
                    raise LiteralError(f"expected ':' at column {colon[0] + 1}")
                obj[key] = value(take())
                tok = take()
                if tok[1] == "p" and tok[2] == ",":
                    tok = take()
                elif not (tok[1] == "p" and tok[2] == "}"):
                    raise LiteralError(f"expected ',' or '}}' at column {tok[0] + 1}")
            return obj
        what = "the end of the text" if kind == "end" else repr(val)
        raise LiteralError(f"unexpected {what} at column {at + 1}")

    result = value(take())
    rest = take()
    if rest[1] != "end":
        raise LiteralError(f"unexpected {rest[2]!r} after the value at column {rest[0] + 1}")
    return result


