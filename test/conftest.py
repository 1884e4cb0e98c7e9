"""Test isolation: headless SDL, and a random ROS 2 domain with localhost-only discovery per run so
parallel runs (and other machines) never see each other's nodes."""

import os
import random

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 101))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # Jazzy and newer
os.environ.pop("ROS_LOCALHOST_ONLY", None)  # Humble's switch; deprecated (and warned about) since Jazzy
