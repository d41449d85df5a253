"""The image safety gate: the one place glint decides whether image bytes can be trusted.

Every path that stores, copies, exports or converts image data goes through an
:class:`ImageGate`: uploads, every import method, ``copy-image``, ``clone``, ``export`` and any
script (it is lent to scripts as ``ctx.image_gate``). It has three doors:

:meth:`ImageGate.stream`
    Wraps a stream of chunks on its way somewhere (a store, an export target). The bytes are
    inspected as they pass (:mod:`glint.inspection`: the verdict depends on the bytes, never on
    how they were cut) and the verdict is given when the stream ends, before the consumer can
    commit: a refused stream raises :class:`glint.errors.ImageRefused` from its last step.
:meth:`ImageGate.check_file`
    Judges a whole file: the same inspection, then ``qemu-img info`` with the format given,
    under CPU, memory and time limits, whose report must agree (:mod:`glint.qemu_img`).
:meth:`ImageGate.convert`
    The only way glint runs ``qemu-img convert``: the source is checked as above, refused when
    its virtual size is over ``image_size_cap`` or the free space of the work directory (less
    a margin), opened from a private directory with backing files disabled, and converted under
    ``RLIMIT_FSIZE`` at that same bound; the output is inspected in turn.

Containers other than ``bare`` (ova, ovf, docker, compressed...) wrap the disk: their bytes need
not be in the ``disk_format``, so the gate keeps them opaque. They are still refused if their
bytes are an unsafe disk image, and they are never converted or handed to qemu-img.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator

from glint import errors, inspection, qemu_img
from glint.settings import Settings

BARE = "bare"
# A conversion's private directory is named "<target name><this><random>", beside the target:
# whoever cleans up after the target's owner (a crashed run, say) finds it by that name.
SCRATCH_SUFFIX = ".gate-"
_READ_SIZE = 1024 * 1024
# Free space a conversion leaves on the work directory's filesystem: the smaller of these.
FREE_SPACE_MARGIN = 1024**3
FREE_SPACE_MARGIN_SHARE = 0.1


def is_opaque(container_format: str | None) -> bool:
    """True when the bytes wrap a disk (ova, docker...) rather than being it."""
    return container_format not in (None, BARE)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The gate's word on data it let through."""

    disk_format: str | None  # the format the data was checked as (None: opaque, not said)
    virtual_size: int | None


class Checked:
    """Chunks passing the gate: iterate it instead of the source (see :meth:`ImageGate.stream`)."""

    def __init__(self, chunks: Iterable[bytes], gate: ImageGate, disk_format: str | None,
                 container_format: str | None, what: str) -> None:
        self._chunks = chunks
        self._gate = gate
        self._declared = disk_format
        self._container_format = container_format
        self._what = what
        self._inspection = inspection.Inspection()
        self.verdict: Verdict | None = None  # set once the stream has ended and passed

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._inspection.feed(chunk)
            yield chunk
        self.verdict = self._gate.judge(self._inspection, self._declared,
                                        self._container_format, self._what)


class ImageGate:
    """The safety gate (see the module docstring), configured from the settings it uses."""

    def __init__(self, *, vmdk_allowed_types: Iterable[str], size_cap: int,
                 work_dir: pathlib.Path) -> None:
        self.vmdk_allowed_types = tuple(vmdk_allowed_types)
        self.size_cap = size_cap
        self.work_dir = work_dir

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageGate:
        return cls(vmdk_allowed_types=settings.vmdk_allowed_types,
                   size_cap=settings.image_size_cap, work_dir=settings.effective_work_dir)

    def stream(self, chunks: Iterable[bytes], disk_format: str | None,
               container_format: str | None = None, *, what: str = "disk_format") -> Checked:
        """``chunks`` unchanged, judged when they end; ``what`` names where the format was said."""
        return Checked(chunks, self, disk_format, container_format, what)

    def judge(self, checked: inspection.Inspection, disk_format: str | None,
              container_format: str | None, what: str) -> Verdict:
        """The verdict on bytes an :class:`inspection.Inspection` has seen; ImageRefused if not."""
        try:
            verdict = checked.verdict(disk_format, container_format=container_format or BARE,
                                      what=what, vmdk_allowed_types=self.vmdk_allowed_types)
        except errors.ScriptError as exc:
            raise errors.ImageRefused(exc.message) from None
        opaque = is_opaque(container_format)
        return Verdict(disk_format=None if opaque else disk_format,
                       virtual_size=None if opaque else verdict.virtual_size)

    def check_file(self, path: pathlib.Path, disk_format: str, *,
                   what: str = "disk_format") -> Verdict:
        """Inspect a whole file as ``disk_format`` and have ``qemu-img info`` agree."""
        checked = self.stream(_file_chunks(path), disk_format, BARE, what=what)
        for _ in checked:
            pass
        assert checked.verdict is not None
        if qemu_img.INPUT_FORMATS.get(disk_format, "raw") == "raw":
            return checked.verdict  # qemu-img reads it as plain bytes: nothing to follow
        try:
            report = qemu_img.info(path, disk_format, self.vmdk_allowed_types)
        except errors.ScriptError as exc:
            raise errors.ImageRefused(exc.message) from None
        return Verdict(disk_format=disk_format, virtual_size=int(report["virtual-size"]))

    def convert(self, source: pathlib.Path, source_format: str, target_format: str,
                target: pathlib.Path, *, container_format: str | None = None,
                should_cancel: Callable[[], bool] = lambda: False) -> Verdict:
        """Convert ``source`` into ``target`` (a path in a directory the caller owns).

        Returns the output's verdict; ImageRefused (or ScriptError from qemu-img) otherwise.
        """
        if is_opaque(container_format):
            raise errors.ImageRefused(f"Image refused: container_format {container_format!r} "
                                      "is stored as it is and never converted")
        qemu_img.output_format(target_format)  # BadRequest for a format qemu-img cannot write
        with tempfile.TemporaryDirectory(prefix=f"{target.name}{SCRATCH_SUFFIX}",
                                         dir=target.parent) as private:
            # Names inside the image resolve here, next to nothing, not next to other images.
            linked = _private_copy(source, pathlib.Path(private))
            source_verdict = self.check_file(linked, source_format)
            bound = self.output_bound(target.parent)
            size = source_verdict.virtual_size or linked.stat().st_size
            if size > bound:
                raise errors.ImageRefused(
                    f"Image refused: its virtual size ({size} bytes) is more than glint will "
                    f"write converting it ({bound} bytes, {self._bound_reason(bound)})")
            qemu_img.convert(linked, source_format, target, target_format, max_size=bound,
                             should_cancel=should_cancel)
        return self.check_file(target, target_format, what="the conversion format")

    def output_bound(self, directory: pathlib.Path) -> int:
        """Most bytes a conversion may write into ``directory``: the cap, or free space less a
        margin, whichever is smaller."""
        usage = shutil.disk_usage(directory)
        margin = min(FREE_SPACE_MARGIN, int(usage.total * FREE_SPACE_MARGIN_SHARE))
        return max(0, min(self.size_cap, usage.free - margin))

    def _bound_reason(self, bound: int) -> str:
        return "image_size_cap" if bound == self.size_cap else "the free space of work_dir"


def _private_copy(source: pathlib.Path, directory: pathlib.Path) -> pathlib.Path:
    """``source`` as a file in ``directory``: a hard link when possible, else a copy."""
    linked = directory / "source"
    try:
        os.link(source, linked)
    except OSError:
        shutil.copyfile(source, linked)
    return linked


def _file_chunks(path: pathlib.Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(_READ_SIZE):
            yield chunk
