"""Checking image data with oslo.utils' format inspector before glint stores or converts it.

An :class:`Inspection` eats the bytes as they stream past (the copy into the store reads them
once; the inspector sees the same chunks), runs every inspector the library has, and keeps
only the ones still in the running once the format is decided (a few hundred KiB in), so a
large image costs next to nothing more. :meth:`Inspection.verdict` then applies the rules:

- The data must be in one format. Several matches mean one header may hide another and are
  refused, except an ISO that is also a GPT disk (bootable installer media) declared ``iso``.
- The detected format must be the declared one. ``gpt`` counts as ``raw``; formats the
  inspector does not know (``ami``, ``ari``, ``aki``, ``ploop``) must look ``raw``; data
  declared ``raw`` that turns out to be qcow2, VMDK... is refused (qemu would read it as such).
  The match is required only for ``container_format`` ``bare`` (or none), as in Glance: other
  containers (ova, docker, compressed...) wrap the disk.
- The detected format must pass the library's safety checks whatever was declared: no qcow2
  backing file, external data file or unknown features; no VMDK extents in other files or
  create-types other than ``vmdk_allowed_types``; no QED; no LUKS but version 1; no odd MBR
  in a GPT disk.

Every refusal is a :class:`glint.errors.ScriptError` that names the problem.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Iterable, Iterator

from oslo_utils.imageutils import format_inspector

from glint import errors

UNINSPECTABLE = frozenset({"ami", "ari", "aki", "ploop"})  # no inspector; the bytes look raw
RAW_ALIKE = frozenset({"raw", "gpt"})
_READ_SIZE = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the inspector found: the format (glint's name) and the disk's virtual size."""

    disk_format: str
    virtual_size: int | None


class Inspection:
    """Format inspection fed one chunk at a time (see the module docstring)."""

    def __init__(self) -> None:
        self._inspectors = [cls() for cls in format_inspector.ALL_FORMATS.values()]
        self._errors: dict[str, Exception] = {}
        self._decided = False

    def wrap(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Yield ``chunks`` unchanged, inspecting each on the way."""
        for chunk in chunks:
            self.feed(chunk)
            yield chunk

    def feed(self, chunk: bytes) -> None:
        for inspector in list(self._inspectors):
            try:
                inspector.eat_chunk(chunk)
            except Exception as exc:  # the data is not in this format (or is broken in it)
                self._inspectors.remove(inspector)
                self._errors[inspector.NAME] = exc
        if not self._decided and all(i.complete for i in self._inspectors if i.NAME != "raw"):
            # Complete inspectors never change their mind: keep only the matches (and raw).
            self._decided = True
            self._inspectors = [i for i in self._inspectors if i.NAME == "raw" or i.format_match]

    def verdict(self, declared: str | None, *, container_format: str | None = None,
                what: str = "disk_format",
                vmdk_allowed_types: Iterable[str] = ("streamOptimized", "monolithicSparse"),
                ) -> Verdict:
        """Finish the inspection and apply the rules; ScriptError if the data is refused.

        ``declared`` is the disk format the data is supposed to be in (None: not said);
        ``what`` names where it was said, for messages.
        """
        for inspector in self._inspectors:
            inspector.finish()
        found = self._matches()
        names = sorted(i.NAME for i in found)
        if len(found) > 1 and not (names == ["gpt", "iso"] and declared == "iso"):
            raise errors.ScriptError(f"Image data refused: it matches several formats "
                                     f"({', '.join(names)}); one header may hide another")
        chosen = next(i for i in found if i.NAME != "gpt") if len(found) > 1 else found[0]
        if container_format in (None, "bare") and declared is not None:
            _check_match(chosen.NAME, declared, what, self._errors.get(declared))
        for inspector in found:
            _check_safety(inspector, vmdk_allowed_types)
        virtual_size = chosen.virtual_size
        return Verdict(disk_format=chosen.NAME, virtual_size=virtual_size or None)

    def _matches(self) -> list[format_inspector.FileInspector]:
        rich = [i for i in self._inspectors if i.NAME != "raw" and i.format_match]
        return rich or [i for i in self._inspectors if i.NAME == "raw"]


def inspect_file(path: pathlib.Path, declared: str, *, what: str,
                 vmdk_allowed_types: Iterable[str]) -> Verdict:
    """Inspect a whole file (a conversion's output, say) as :class:`Inspection` does."""
    inspection = Inspection()
    with path.open("rb") as stream:
        while chunk := stream.read(_READ_SIZE):
            inspection.feed(chunk)
    return inspection.verdict(declared, what=what, vmdk_allowed_types=vmdk_allowed_types)


def _check_match(detected: str, declared: str, what: str, error: Exception | None) -> None:
    if detected == declared or (detected in RAW_ALIKE and declared in UNINSPECTABLE | {"raw"}):
        return
    if detected == "gpt":
        detected = "raw (a GPT disk)"
    why = f" (not valid {declared}: {error})" if error is not None else ""
    raise errors.ScriptError(f"Image data refused: {what} is {declared!r} but the data is "
                             f"{detected}{why}")


def _check_safety(inspector: format_inspector.FileInspector,
                  vmdk_allowed_types: Iterable[str]) -> None:
    try:
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as exc:
        problems = "; ".join(f"{name}: {failure}" for name, failure in exc.failures.items())
        raise errors.ScriptError(f"Image data refused: the {inspector.NAME} image failed "
                                 f"safety checks ({problems})") from exc
    except format_inspector.ImageFormatError as exc:
        raise errors.ScriptError(f"Image data refused: the {inspector.NAME} image cannot be "
                                 f"checked: {exc}") from exc
    vmdk_type = getattr(inspector, "vmdktype", None)
    if inspector.NAME == "vmdk" and vmdk_type is not None:
        allowed = {t.lower() for t in vmdk_allowed_types}
        if str(vmdk_type).lower() not in allowed:
            raise errors.ScriptError(f"Image data refused: VMDK create-type {vmdk_type!r} is "
                                     f"not in vmdk_allowed_types "
                                     f"({', '.join(sorted(vmdk_allowed_types))})")
