"""Count the hand-written keyword entries of a package folder (default: src/vlagent/agent).

An entry is one alternative of a regular expression (each ``|``-separated branch of a pattern
given to ``re`` or to a keyword table class) or one word of a keyword table (a module-level
dict / set / tuple / list of strings used to match text). Prompt text, docstrings and answer
sentences are not keywords. ``python scripts/count_keywords.py [FOLDER] [--by-file]``.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

PATTERN_CALLS = {"compile", "search", "match", "fullmatch", "findall", "finditer", "sub", "subn", "split"}
PATTERN_CLASSES = {"Keywords", "TitlePattern"}
REGEX_HINT = re.compile(r"\(\?|\\b|\\s|\[\^|\|")


def alternatives(pattern: str) -> int:
    """Branches of a regex: unescaped ``|`` outside character classes, plus one."""
    count, escaped, in_class = 1, False, False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
        elif ch == "|" and not in_class:
            count += 1
    return count


def _strings(node: ast.AST) -> list[str]:
    """The string constants a pattern expression is built from (concatenations, f-strings)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.BinOp):
        return _strings(node.left) + _strings(node.right)
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return []


def _pattern_args(tree: ast.AST) -> list[str]:
    out: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
        if (owner == "re" and name in PATTERN_CALLS) or name in PATTERN_CLASSES:
            args = node.args if name in PATTERN_CLASSES else node.args[:1]
            for arg in args:
                out += _strings(arg)
    return out


def _module_tables(tree: ast.Module) -> tuple[list[str], int]:
    """(pattern fragments assigned to module-level names, words in module-level string tables)."""
    fragments: list[str] = []
    words = 0
    for stmt in tree.body:
        value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target] if isinstance(stmt, ast.AnnAssign) else []
        if value is None or any(isinstance(t, ast.Name) and t.id.startswith("__") for t in targets):
            continue  # __all__ and other dunders name code, not text
        strs = _strings(value)
        if strs and all(isinstance(n, (ast.Constant, ast.BinOp, ast.JoinedStr)) for n in [value]):
            joined = "".join(strs)
            if REGEX_HINT.search(joined):
                fragments.append(joined)
            continue
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in ("set", "frozenset"):
            value = value.args[0] if value.args else value
        if isinstance(value, ast.Dict):
            keys = [k for k in value.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
            if keys and len(keys) == len(value.keys):
                words += len(keys)
        elif isinstance(value, (ast.Set, ast.Tuple, ast.List)):
            elts = value.elts
            if elts and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in elts):
                words += len(elts)
            elif elts and all(isinstance(e, ast.Tuple) and e.elts and isinstance(e.elts[0], ast.Constant) and isinstance(e.elts[0].value, str) for e in elts):
                words += len(elts)
    return fragments, words


def count_file(path: Path) -> int:
    tree = ast.parse(path.read_text("utf-8"))
    in_calls = _pattern_args(tree)
    fragments, words = _module_tables(tree)
    seen = set(in_calls)
    total = sum(alternatives(s) for s in in_calls) + sum(alternatives(s) for s in fragments if s not in seen) + words
    return total


def count_folder(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): count_file(p) for p in sorted(folder.rglob("*.py"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(Path(__file__).resolve().parents[1] / "src" / "vlagent" / "agent"))
    parser.add_argument("--by-file", action="store_true", help="one line per file")
    args = parser.parse_args(argv)
    counts = count_folder(Path(args.folder))
    if args.by_file:
        for name, n in sorted(counts.items(), key=lambda kv: -kv[1]):
            if n:
                print(f"{n:5d}  {name}")
    print(f"{sum(counts.values()):5d}  keyword entries in {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
