"""A tiny test harness for the Python tests.

check(name, cond, detail) records one result and prints failures (with the detail) as they happen;
summary() prints "N passed, N failed" as the last line and exits non-zero when anything failed.
"""
import sys
import traceback

_passed = 0
_failed = 0


def check(name, cond, detail=""):
    """Records one check; a failing check prints its name and detail."""
    global _passed, _failed
    if cond:
        _passed += 1
    else:
        _failed += 1
        print(f"  FAIL {name}" + (f": {detail}" if detail else ""), flush=True)
    return bool(cond)


def run(fn):
    """Runs one test function; an exception counts as a failure of that test and the run goes on."""
    print(f"[{fn.__name__}]", flush=True)
    try:
        fn()
    except Exception:  # a crash in one test must not hide the others
        check(fn.__name__, False, "raised:\n" + traceback.format_exc())


def summary():
    """Prints the closing line and exits with the status the test runner reads."""
    print(f"{_passed} passed, {_failed} failed", flush=True)
    sys.exit(1 if _failed or not _passed else 0)
