#!/usr/bin/env python3
"""Regenerate the option tables of every documentation page that has them (--check: only compare)."""

import argparse
import pathlib
import sys

from gkbroad.config.docgen import pages_with_option_tables, render_option_tables

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a page's tables are out of date")
    args = parser.parse_args()
    pages = pages_with_option_tables(ROOT)
    if not pages:
        print("no documentation page holds an option table (<!-- options:NAME --> markers)")
        return 1
    stale = []
    for page in pages:
        current = page.read_text()
        fresh = render_option_tables(current)
        if fresh == current:
            continue
        stale.append(page.relative_to(ROOT))
        if not args.check:
            page.write_text(fresh)
    if args.check and stale:
        names = ", ".join(str(name) for name in stale)
        print(f"option tables out of date in {names}: run .venv/bin/python scripts/gen_docs.py")
        return 1
    for name in stale:
        print(f"rewrote the option tables of {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
