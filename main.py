#!/usr/bin/env python3
"""Start the Neurolysis Trainer (no arguments) or run a headless command (see --help)."""
import sys

from simulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
