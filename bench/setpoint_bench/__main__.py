import sys

from setpoint_bench.cli import main

sys.exit(main())
