import sys

from decc.cli import main

sys.exit(main())
