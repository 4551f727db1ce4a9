"""The installed `imgsearch` command, run as a user runs it: a subprocess with its own environment."""
import subprocess
import sys
from pathlib import Path

IMGSEARCH = Path(sys.executable).parent / "imgsearch"


def imgsearch(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(IMGSEARCH), *args], env=env, capture_output=True, text=True, timeout=timeout)
