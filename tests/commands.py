"""The installed `imgsearch` command, run as a user runs it: a subprocess with its own environment."""
import subprocess
import sys
from pathlib import Path

IMGSEARCH = Path(sys.executable).parent / "imgsearch"


def imgsearch(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(IMGSEARCH), *args], env=env, capture_output=True, text=True, timeout=timeout)


def in_mount_namespace(script: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    """`sh -c script` in a mount namespace of its own: its mounts are real (a read-only bind, a
    small tmpfs) and vanish with it, whatever happens to the test."""
    return subprocess.run(["unshare", "--mount", "--map-root-user", "sh", "-ec", script, "sh", *args],
                          env=env, capture_output=True, text=True, timeout=300)
