"""Print the markdown table of every `painterly` option with its default (kept in the README).

    python scripts/options_table.py      # tests/test_docs.py checks the README holds this table
"""

from __future__ import annotations

import argparse
import sys


def options_table() -> str:
    from painterly.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    stylize = sub.choices["stylize"]
    rows = ["| option | default | what it does |", "| --- | --- | --- |"]
    for group in stylize._action_groups:
        shown = [a for a in group._group_actions if a.option_strings and a.dest != "help"]
        if shown and group.title not in ("options", "optional arguments"):
            rows.append(f"| **{group.title}** | | |")
        for action in group._group_actions:
            if not action.option_strings or action.dest in ("help",):
                continue
            flag = max(action.option_strings, key=len)
            if isinstance(action, argparse.BooleanOptionalAction):
                flag = f"{action.option_strings[0]}` / `{action.option_strings[1]}"
            text = action.help or ""
            default = ""
            if "(default: " in text:
                text, default = text.rsplit(" (default: ", 1)
                default = default.rstrip(")")
            elif "; default: " in text:  # a default said in words
                text, default = text.split("; default: ", 1)
            if action.choices:
                text += f" ({'/'.join(map(str, action.choices))})"
            rows.append(f"| `{flag}` | {default} | {text.replace('|', '/')} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.stdout.write(options_table() + "\n")
