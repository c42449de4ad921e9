"""The ``contactpipe`` command (and ``python -m contactpipe``).

Before the CLI imports anything, ``re``'s cache is filled with the regular expressions that
earlier runs' imports compiled (:mod:`contactpipe.recache`: ~110 patterns of phonenumbers,
click, jinja2, the standard library and contactpipe, 19 ms of a one-row validate, rebuilt
from their stored code in under 1 ms).  Nothing else differs from
:func:`contactpipe.cli.main`."""

from __future__ import annotations


def main() -> None:
    from contactpipe import recache

    recache.prime()
    from contactpipe.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
