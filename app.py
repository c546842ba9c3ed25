"""Open the RewardRanker Lab app: `python app.py [--lab-dir DIR] [--port 7860] [--auth USER:PASSWORD]`.

A thin entry point; the app itself is lab/app.py (also `python -m lab app`).
"""
import sys

from lab.app import main

if __name__ == "__main__":
    sys.exit(main())
