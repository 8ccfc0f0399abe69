"""The table the compatibility scripts report: one row per check, `library | check |
PASS`, `FAIL (reason)` or `SKIP (reason)`, on stderr as each is known and as one table on
stdout at the end (which tests/api/ecosystem.rs reads)."""

import sys
import traceback
from importlib.metadata import version

ROWS = []


def label(distribution, name=None):
    return f"{name or distribution} {version(distribution)}"


def check(library, name):
    """Runs the decorated function at once as one row of the table."""

    def run(fn):
        try:
            fn()
            row = (library, name, "PASS")
        except Skip as skip:
            row = (library, name, f"SKIP ({skip})")
        except Exception as error:  # noqa: BLE001 - every failure is a row
            reason = f"{type(error).__name__}: {error}".replace("\n", " ")
            row = (library, name, f"FAIL ({reason[:300]})")
            traceback.print_exc(file=sys.stderr)
        ROWS.append(row)
        print(" | ".join(row), file=sys.stderr, flush=True)
        return fn

    return run


class Skip(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise AssertionError(message)


def table():
    widths = [max([len(row[i]) for row in ROWS] + [len("library")]) for i in range(2)]
    lines = [f"{'library'.ljust(widths[0])} | {'check'.ljust(widths[1])} | result"]
    lines.append(f"{'-' * widths[0]}-|-{'-' * widths[1]}-|-------")
    lines += [f"{lib.ljust(widths[0])} | {name.ljust(widths[1])} | {result}" for lib, name, result in ROWS]
    return "\n".join(lines)


def main():
    """Prints the table; exits 1 unless every check passed."""
    print(table())
    sys.exit(0 if ROWS and all(row[2] == "PASS" for row in ROWS) else 1)
