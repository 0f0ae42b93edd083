"""`python -m edgetwin.hil.agent`: the device side of an attached device."""

import sys

from edgetwin.hil.agent.server import main

sys.exit(main())
