"""Git facts recorded as job tags: the commit and whether the tree is dirty.

Never the remote URL, which may embed a token. A missing git or a folder outside a
repository simply yields no facts.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class GitInfo:
    commit: str = None
    dirty: bool = False


def read_git_info(folder: str, run=subprocess.run) -> GitInfo:
    def git(*args):
        return run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=10, check=False)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return GitInfo()
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return GitInfo()
    return GitInfo(head.stdout.strip(), bool(status.stdout.strip()))
