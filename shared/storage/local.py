"""file:///dir storage: one machine, or a shared POSIX mount."""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from shared.errors import NotFoundError, StorageError
from shared.storage.base import Storage, check_path


def _find_syncfs() -> Callable[[int], int] | None:
    """Linux's syncfs(2), which Python's os module lacks; None elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return syncfs


_SYNCFS = _find_syncfs()


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that a name just made in it is on disk (where folders can be opened: not Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse to fsync a folder; the file itself is synced
    finally:
        os.close(fd)


class LocalStorage(Storage):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.url = self.root.as_uri()

    def _resolve(self, path: str) -> Path:
        return self.root / check_path(path)

    def put_bytes(self, path: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        target = self._resolve(path)
        try:
            tmp = self._write_temporary(target, data)
            try:
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _sync_folder(target.parent)  # the new name, not only the bytes, survives a crash
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc

    def put_many(self, items: Sequence[tuple[str, bytes]], content_type: str = "application/octet-stream") -> None:
        """Write every file, flush the filesystem (syncfs), rename each into place, and flush it again.

        The same promise as ``put_bytes`` (a file is on disk before its name
        appears, and its name is on disk when this returns) for a fraction of
        the kernel's work on a batch of segments: two journal commits instead
        of two per file. Without syncfs (not Linux), each file is written on
        its own.
        """
        if _SYNCFS is None or len(items) <= 1:
            super().put_many(items, content_type)
            return
        written: list[tuple[str, Path]] = []
        renamed = 0
        target = self.root
        try:
            try:
                for path, data in items:
                    target = self._resolve(path)
                    written.append((self._write_temporary(target, data, sync=False), target))
                self._syncfs()  # every file's bytes are on disk before any name points at them
                for tmp, target in written:
                    os.replace(tmp, target)
                    renamed += 1
                self._syncfs()  # and the names too (new folders' included), before the caller marks them done
            finally:
                for tmp, _target in written[renamed:]:
                    Path(tmp).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc

    def _write_temporary(self, target: Path, data: bytes, *, sync: bool = True) -> str:
        """``data`` in a new file beside ``target``, fsynced unless the caller flushes the filesystem itself."""
        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        except FileNotFoundError:  # the folder's first file: a mkdir per write would contend with the renames
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return tmp

    def _syncfs(self) -> None:
        assert _SYNCFS is not None
        fd = os.open(self.root, os.O_RDONLY)
        try:
            if _SYNCFS(fd) != 0:
                error = ctypes.get_errno()
                raise OSError(error, os.strerror(error))
        finally:
            os.close(fd)

    def put_file(self, path: str, source: Path, content_type: str = "application/octet-stream") -> None:
        target = self._resolve(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
            try:
                with os.fdopen(fd, "wb") as out, source.open("rb") as data:
                    shutil.copyfileobj(data, out, 1024 * 1024)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _sync_folder(target.parent)
        except OSError as exc:
            raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from exc

    def get_bytes(self, path: str) -> bytes:
        target = self._resolve(path)
        try:
            return target.read_bytes()
        except FileNotFoundError as exc:
            raise NotFoundError(f"{path} is not in storage {self.url}") from exc
        except OSError as exc:
            raise StorageError(f"cannot read {target}: {exc.strerror or exc}") from exc

    def get_file(self, path: str, target: Path) -> None:
        source = self._resolve(path)
        if not source.exists():
            raise NotFoundError(f"{path} is not in storage {self.url}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def exists(self, path: str) -> bool:
        return self._resolve(path).is_file()

    def size(self, path: str) -> int:
        target = self._resolve(path)
        if not target.is_file():
            raise NotFoundError(f"{path} is not in storage {self.url}")
        return target.stat().st_size

    def read_range(self, path: str, start: int, end: int, chunk_bytes: int = 256 * 1024) -> Iterator[bytes]:
        target = self._resolve(path)
        try:
            handle = target.open("rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"{path} is not in storage {self.url}") from exc
        with handle:
            handle.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = handle.read(min(chunk_bytes, left))
                if not chunk:
                    return
                left -= len(chunk)
                yield chunk

    def list(self, prefix: str) -> Iterator[str]:
        base = self.root / check_path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if not base.is_dir():
            return
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".tmp-"):
                    continue
                yield (Path(dirpath) / name).relative_to(self.root).as_posix()

    def delete(self, path: str) -> None:
        self._resolve(path).unlink(missing_ok=True)

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create storage folder {self.root}: {exc.strerror or exc}") from exc
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"storage folder {self.root} is not writable")
