"""mysqlnd_ms's connection-state pitfall, reproduced with msplugin, and its fixes.

    python examples/state_pitfall.py                    # starts and stops a sandbox topology
    python examples/state_pitfall.py CONFIG [GROUP]     # uses your own group

The scenes live in msplugin/demo.py so that ``msplugin demo`` runs the same code.
"""

import sys

from msplugin.demo import main

if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
