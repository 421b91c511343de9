import sys

from corft_ros.cli import main

sys.exit(main())
