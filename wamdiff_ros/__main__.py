"""``python -m wamdiff_ros`` is the ``wamdiff`` command."""

import sys

from wamdiff_ros.cli import main

sys.exit(main())
