"""``python -m msplugin`` runs the command line."""

import sys

from msplugin.cli import main

sys.exit(main())
