"""``python -m mcp_server``: see ``mcp_server.main``."""

import sys

from . import main

sys.exit(main())
