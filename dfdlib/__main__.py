import sys

from dfdlib.cli import main

sys.exit(main())
