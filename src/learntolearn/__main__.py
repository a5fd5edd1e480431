import sys

from learntolearn.cli import main

sys.exit(main())
