"""Open the RewardRanker Lab app: `python app.py [--lab-dir DIR] [--port 7860] [--auth USER:PASSWORD]`.

A thin entry point; the app itself is the package lab/app/ (also `python -m lab app`).
"""
import sys

from lab.app.server import main

if __name__ == "__main__":
    sys.exit(main())
