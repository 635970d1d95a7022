"""`python -m gradtrace ...`: the same as the `gradtrace` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
