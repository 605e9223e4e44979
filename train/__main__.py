"""``python -m train {construct,sft,merge,bench} ...``"""

import sys

from .cli import main

sys.exit(main())
