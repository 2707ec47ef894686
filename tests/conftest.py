import os

from hypothesis import settings

# CI replays the same examples on every run (a red run must mean a real change); local runs
# draw new ones each time and keep failures in .hypothesis/.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
