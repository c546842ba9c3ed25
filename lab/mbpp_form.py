"""MBPP posed in the evaluation's (HumanEval's) form: from an MBPP row's reference solution, text and
tests, the prompt (the solution's imports, its `def` line and a docstring with the text and the first
test as a doctest) and the reference completion (the body, re-indented to 4 spaces a level).

`evaluation_form` refuses, with `Unrenderable` saying why, what it cannot pose faithfully: helper
functions or classes, module-level statements, a first test that is not `assert call == value`, a
body whose re-indented code differs from the original.

Not covered here: loading MBPP's rows, the stop tokens' check and the `Problem` records (problems.py).
"""
from __future__ import annotations

import ast
import io
import tokenize
from typing import cast


class Unrenderable(Exception):
    """This MBPP problem cannot be posed faithfully in the evaluation's form; the message says why."""


def evaluation_form(code: str, tests: str, text: str, first_test: str) -> tuple[str, str, str]:
    """(prompt, reference completion, entry point) of the MBPP problem whose reference solution is
    `code`, with `tests`, its `text` and its `first_test`."""
    module, test_module = _parse(code, "the reference"), _parse(tests, "the tests")
    imports = [node for node in module.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    functions = [node for node in module.body if isinstance(node, ast.FunctionDef)]
    others = [node for node in module.body if node not in imports and node not in functions]
    if others:
        shown = ", ".join(f"line {node.lineno} `{_source(code, node).splitlines()[0].strip()[:40]}`"
                          for node in others[:3])
        raise Unrenderable(f"module-level code besides imports and one function: {shown}")
    if len(functions) != 1:
        raise Unrenderable(f"{len(functions)} top-level functions ({', '.join(f.name for f in functions)}): "
                           "the prompt would have to hold the helpers")
    function = functions[0]
    called = {node.func.id for node in ast.walk(test_module)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    if function.name not in called:
        raise Unrenderable(f"entry point not found: the tests never call {function.name}()")
    if function.decorator_list:
        raise Unrenderable(f"{function.name}() is decorated")
    prompt = ("".join(_source(code, node) + "\n" for node in imports) + ("\n\n" if imports else "")
              + _signature(function) + "\n" + _docstring(text, first_test))
    body = _reindented_body("\n".join(code.splitlines()[function.lineno - 1:function.end_lineno]) + "\n")
    try:
        rendered = cast(ast.FunctionDef, ast.parse(prompt + body).body[-1]).body[1:]
    except SyntaxError as error:
        raise Unrenderable(f"the re-indented body does not parse ({error.msg})") from None
    if ast.dump(ast.Module(rendered, [])) != ast.dump(ast.Module(function.body, [])):
        raise Unrenderable("re-indenting the body changed its code")
    return prompt, body, function.name


def _source(code: str, node: ast.AST) -> str:
    """The source text of a node parsed from `code` (nodes parsed from source always have one)."""
    return ast.get_source_segment(code, node) or ""


def _parse(source: str, what: str) -> ast.Module:
    try:
        return ast.parse(source)
    except SyntaxError as error:
        raise Unrenderable(f"{what} does not parse ({error.msg}, line {error.lineno})") from None


def _signature(function: ast.FunctionDef) -> str:
    returns = f" -> {ast.unparse(function.returns)}" if function.returns else ""
    return f"def {function.name}({ast.unparse(function.args)}){returns}:"


def _docstring(text: str, first_test: str) -> str:
    """HumanEval's layout: the text, then the first test `assert call == value` as `>>> call` / `value`."""
    test = _parse(first_test, "the first test").body[0]
    if not (isinstance(test, ast.Assert) and isinstance(test.test, ast.Compare)
            and len(test.test.ops) == 1 and isinstance(test.test.ops[0], ast.Eq)):
        raise Unrenderable("the first test is not `assert <call> == <expected>`")
    call, expected = (_source(first_test, node) for node in (test.test.left, test.test.comparators[0]))
    if "\n" in call + expected:
        raise Unrenderable("the first test spans several lines")
    lines = [line.rstrip() for line in text.strip().splitlines()] + [f">>> {call}", expected]
    content = "\n    ".join(lines)
    if '"""' in content:
        raise Unrenderable('the text or the first test holds """')
    quote = 'r"""' if "\\" in content else '"""'  # a backslash in a test's string literal shows as written
    return f'    {quote}{content}\n    """\n'


def _reindented_body(function_source: str) -> str:
    """The body of the one function in `function_source`, each block level indented by 4 spaces.
    Statement and comment lines get 4 spaces per level; continuation lines keep their offset from
    their statement (a tab counts 4); lines that start inside a multi-line string stay as they are."""
    lines = function_source.splitlines()
    indents: dict[int, str] = {}
    inside_string: set[int] = set()
    open_string: set[int] = set()
    seen: set[int] = set()
    pending_comments: list[int] = []
    depth = statement_depth = statement_width = 0
    header_end = 0
    at_statement_start = True
    for token in tokenize.generate_tokens(io.StringIO(function_source).readline):
        row, end_row = token.start[0], token.end[0]
        if token.type == tokenize.INDENT:
            depth += 1
        elif token.type == tokenize.DEDENT:
            depth -= 1
        elif token.type == tokenize.NEWLINE:
            at_statement_start, header_end = True, header_end or row
        elif token.type not in (tokenize.NL, tokenize.ENDMARKER):
            if row not in seen:
                if at_statement_start and token.type == tokenize.COMMENT:
                    pending_comments.append(row)  # indented like the statement that follows it
                elif at_statement_start:
                    statement_depth, statement_width = depth, _indent_width(lines[row - 1])
                    indents.update({r: "    " * depth for r in pending_comments + [row]})
                    pending_comments = []
                else:
                    offset = max(0, _indent_width(lines[row - 1]) - statement_width)
                    indents[row] = "    " * statement_depth + " " * offset
            at_statement_start = at_statement_start and token.type == tokenize.COMMENT
            seen.update(range(row, end_row + 1))
            inside_string.update(range(row + 1, end_row + 1))
            open_string.update(range(row, end_row))
    body = []
    for row, line in enumerate(lines[header_end:], start=header_end + 1):
        if row not in inside_string:
            line = indents.get(row, "") + line.lstrip(" \t\f")
        body.append(line if row in open_string else line.rstrip())
    return "\n".join(body) + "\n"


def _indent_width(line: str) -> int:
    """Columns of the leading whitespace, a tab counting 4."""
    return len(line[: len(line) - len(line.lstrip(" \t\f"))].expandtabs(4))
