"""Audio files under the data dir, one folder per user so their deletion is one rmtree."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path


class AudioBlobs:
    def __init__(self, root: Path) -> None:
        self.root = root

    def user_dir(self, user_key: str) -> Path:
        # Hashed so that no platform id ever becomes a path component.
        return self.root / hashlib.sha256(user_key.encode()).hexdigest()[:24]

    def save(self, user_key: str, data: bytes, suffix: str, folder: str = "") -> Path:
        folder = self.user_dir(user_key) / folder
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{uuid.uuid4().hex}{suffix}"
        partial = path.with_suffix(".partial")
        partial.write_bytes(data)
        partial.rename(path)
        return path

    def delete_user(self, user_key: str) -> None:
        shutil.rmtree(self.user_dir(user_key), ignore_errors=True)

    def delete_except(self, user_key: str, keep: tuple[str, ...]) -> None:
        """Delete the user's files, except the named folders."""
        folder = self.user_dir(user_key)
        for child in folder.iterdir() if folder.is_dir() else ():
            if child.is_dir() and child.name in keep:
                continue
            shutil.rmtree(child) if child.is_dir() else child.unlink()

    def delete_folder(self, user_key: str, folder: str) -> None:
        shutil.rmtree(self.user_dir(user_key) / folder, ignore_errors=True)

    def delete_files(self, paths: list[str] | None) -> None:
        for path in paths or ():
            resolved = Path(path).resolve()
            if resolved.is_relative_to(self.root.resolve()):
                resolved.unlink(missing_ok=True)

    def resolve(self, relative: str) -> Path | None:
        """A stored file by its path relative to the root, or None if it is not one of ours."""
        path = (self.root / relative).resolve()
        if path.is_file() and path.is_relative_to(self.root.resolve()):
            return path
        return None
