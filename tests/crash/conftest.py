"""The crash suite: the server as a subprocess, killed with SIGKILL at random moments."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

