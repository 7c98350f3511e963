import sys

from tailor_catalog.cli import main

sys.exit(main())
