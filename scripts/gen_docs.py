#!/usr/bin/env python3
"""Regenerate the option tables in README.md from the schemas (--check: only compare)."""

import argparse
import pathlib
import sys

from gkbroad.config.docgen import render_readme

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = parser.parse_args()
    current = README.read_text()
    fresh = render_readme(current)
    if args.check:
        if fresh != current:
            print("README.md option tables are out of date: run .venv/bin/python scripts/gen_docs.py")
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
