import sys

from sfrdask.cli import main

sys.exit(main())
