"""``python -m sfrdask``: the same command line as the ``sfrdask`` script."""

import sys

from sfrdask.cli import main

code = main()
# Under ``python -m`` CPython exits by SIGINT, whatever ``code`` says, when the last interrupt was
# raised inside a nested ``exec`` of a string (dataclasses and namedtuple build their methods that
# way while a module is imported) -- even though main() caught it, cleaned up and returned 130
# (Modules/main.c marks it "unhandled"; measured here: 5 of 11 interrupted runs). Every string eval
# clears that mark first, so one empty eval leaves the exit status to main().
exec("")
sys.exit(code)
