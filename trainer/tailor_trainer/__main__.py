import sys

from tailor_trainer.cli import main

sys.exit(main())
