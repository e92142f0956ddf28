"""What git knows: the repository root, a base revision and its files, and what changed since."""

from __future__ import annotations

import subprocess
import tarfile
import tempfile


class GitError(Exception):
    """A git command failed; the message carries git's own words."""


def git(repo: str, *args: str) -> str:
    done = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def toplevel(path: str) -> str:
    return git(path, "rev-parse", "--show-toplevel").strip()


def commit_of(repo: str, rev: str) -> str:
    """The commit a revision names (a branch, tag or sha); GitError if it names none, saying so
    (git itself says nothing under --quiet)."""
    try:
        return git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}").strip()
    except GitError as exc:
        raise GitError(f"{rev!r} names no commit in {repo}: give a branch, tag or commit that exists there "
                       "(git fetch first if only a remote has it)") from exc


def default_base(repo: str) -> str:
    """``origin/main`` when the clone has it (what a pull request merges into), else ``HEAD``."""
    try:
        commit_of(repo, "origin/main")
        return "origin/main"
    except GitError:
        return "HEAD"


def export(repo: str, commit: str, dest: str) -> None:
    """The tree of `commit` as plain files in `dest`: no worktree, so the shared .git is untouched."""
    with tempfile.TemporaryFile() as archive:
        done = subprocess.run(["git", "-C", repo, "archive", "--format=tar", commit],
                              stdout=archive, stderr=subprocess.PIPE, text=False)
        if done.returncode != 0:
            raise GitError(f"git archive {commit}: {done.stderr.decode(errors='replace').strip()}")
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            tar.extractall(dest, filter="data")


def changed_paths(repo: str, commit: str) -> list[str]:
    """Files that differ between `commit` and the working tree, untracked new files included."""
    tracked = git(repo, "diff", "--name-only", "--no-renames", commit, "--").splitlines()
    untracked = git(repo, "ls-files", "--others", "--exclude-standard").splitlines()
    return sorted(set(tracked) | set(untracked))
