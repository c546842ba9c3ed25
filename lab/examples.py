"""A problem's visible examples: the calls and expected results its prompt shows a user (HumanEval's
`>>>` doctests, MBPP in HumanEval form with its first test as a doctest, and MultiPL-E's translations
of them as `// >>>` comments in C++, Java and JavaScript), and the program that checks a completion
against those examples alone. The examples filter (a ranker that first drops the samples failing the
visible examples, as AlphaCode, CodeT and LEVER build on) reads only the prompt, never the hidden tests.

Not covered here: running the program (execution.py), storing verdicts (the store), ranking with them
(measures.py). Languages other than EXAMPLE_LANGUAGES have no parsed examples (the filter keeps all).
"""
from __future__ import annotations

import ast
import doctest
import re
from dataclasses import dataclass

from lab.problems import Problem

EXAMPLE_LANGUAGES = ("py", "cpp", "java", "js")
COMMENT_EXAMPLE = re.compile(r"^\s*//\s?>>>\s?(?P<call>.+?)\s*$")
COMMENT_LINE = re.compile(r"^\s*//\s?(?P<text>.*?)\s*$")
JAVA_PRIMITIVES = ("long", "int", "short", "byte", "boolean", "float", "double", "char")


@dataclass(frozen=True)
class Example:
    call: str
    """Source of the call (an expression in the problem's language)."""
    expected: str
    """Its expected result as the prompt writes it (a literal in the problem's language)."""


def visible_examples(problem: Problem) -> list[Example]:
    """The prompt's examples that have an expected result ([] when the language is not parsed)."""
    if problem.language == "py":
        return _python_examples(problem.prompt)
    if problem.language in EXAMPLE_LANGUAGES:
        return _comment_examples(problem.prompt)
    return []


def _python_examples(prompt: str) -> list[Example]:
    try:
        parsed = doctest.DocTestParser().get_examples(prompt)
    except ValueError:  # inconsistent indentation inside the docstring: no usable examples
        return []
    examples = []
    for example in parsed:
        expected = _python_expected(re.sub(r"\s*(\"\"\"|''')\s*$", "", example.want.strip()))
        if expected:
            examples.append(Example(example.source.strip(), expected))
    return examples


def _python_expected(want: str) -> str:
    """The expected result: all of doctest's `want` when it is one literal, else its first line (prompts
    often go on with an explanation or the next example's heading without a blank line between)."""
    try:
        ast.literal_eval(want)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return want.splitlines()[0].strip() if want else want
    return want


def _comment_examples(prompt: str) -> list[Example]:
    """`// >>> call` followed by one or more `// result` lines, up to the next example or non-comment line."""
    examples, call, expected = [], None, []
    for line in prompt.splitlines() + [""]:
        match = COMMENT_EXAMPLE.match(line)
        comment = COMMENT_LINE.match(line)
        if call is not None and (match or not comment):
            if expected:
                examples.append(Example(call, " ".join(expected)))
            call, expected = None, []
        if match:
            call = match.group("call")
        elif call is not None and comment and comment.group("text"):
            expected.append(comment.group("text"))
    return examples


def examples_program(problem: Problem, completion: str) -> str | None:
    """prompt + completion + a test of the visible examples only, in MultiPL-E's harness shape for the
    language; None when the problem shows no example."""
    examples = visible_examples(problem)
    if not examples:
        return None
    body = problem.prompt + completion
    if problem.language == "py":
        checks = "".join(f"    ({example.call!r}, {example.expected!r}),\n" for example in examples)
        return (f"{body}\n\n\ndef _check_visible_examples():\n    for call, expected in [\n{checks}    ]:\n"
                "        try:\n            code = compile(call, '<example>', 'eval')\n"
                "        except SyntaxError:\n            exec(call, globals())\n            continue\n"
                "        got = eval(code, globals())\n"
                "        try:\n            want = eval(expected, globals())\n"
                "        except Exception:\n            assert repr(got) == expected, (call, got, expected)\n"
                "        else:\n            assert got == want, (call, got, want)\n\n\n_check_visible_examples()\n")
    if problem.language == "cpp":
        asserts = "".join(f"    assert({e.call} == {e.expected});\n" for e in examples)
        return f"{body}\n}}\nint main() {{\n{asserts}}}\n"
    if problem.language == "java":
        equals = "==" if _java_return_type(problem.prompt) in JAVA_PRIMITIVES else None
        asserts = "".join(f"    assert({e.call} {equals} {e.expected});\n" if equals else
                          f"    assert({e.call}.equals({e.expected}));\n" for e in examples)
        return f"{body}\n    }}\n    public static void main(String[] args) {{\n{asserts}    }}\n\n}}\n"
    asserts = "".join(f"  assert.deepEqual({e.call}, {e.expected});\n" for e in examples)
    return f"{body}\n}}\n\nconst assert = require('node:assert');\n\nfunction test() {{\n{asserts}}}\n\ntest();\n"


def _java_return_type(prompt: str) -> str | None:
    """The return type of the last method the prompt declares ('public static long f(...) {')."""
    declarations = re.findall(r"public\s+static\s+([\w<>\[\], .]+?)\s+\w+\s*\(", prompt)
    return declarations[-1].strip() if declarations else None
