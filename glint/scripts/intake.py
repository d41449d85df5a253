"""What the importing scripts do with the bytes they take in, between the source and the store.

In order: decompress them if asked (:mod:`glint.decompression`), pass them through the safety
gate (``ctx.image_gate``, :mod:`glint.gate`), convert them with qemu-img if asked (through the
gate too), and write them to the store with md5 and the multihash (:mod:`glint.datapath`).
Without conversion all of it happens in the one pass that writes the store: the gate sees each
chunk on its way, and its verdict comes before the caller commits, so refused data never
becomes an image.

Conversion needs files: the source is written to ``<work_dir>/<task id>.source`` (inspected on
the way), the gate converts it to ``<work_dir>/<task id>.<format>`` (``qemu-img info`` first,
bounded by ``image_size_cap`` and the free space, the output inspected in turn), and that is
what goes to the store: the image's size, checksums, ``disk_format`` and ``virtual_size``
describe the converted bytes. Data in a container other than ``bare`` is never converted.
Both files are removed on every path; :func:`remove_work_files` removes what a crashed run
left.
"""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
from collections.abc import Callable, Iterable, Iterator

from glint import datapath, decompression, errors, gate, inspection, qemu_img
from glint.scripts import contract
from glint.scripts.contract import ScriptSettings, StoreWriter

# Kept as they are even when a conversion is configured: installer media, and formats that
# are raw bytes under another name (converting would lose the name).
NOT_CONVERTED = frozenset({"iso"}) | inspection.UNINSPECTABLE
_READ_SIZE = 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the data should be and what to do with it."""

    declared: str | None  # the disk format it is said to be in
    what: str  # where that was said, for messages: "import_from_format", "disk_format"
    container_format: str | None = None
    decompress: bool = False
    conversion_format: str | None = None

    @property
    def converts(self) -> bool:
        return (self.conversion_format is not None and self.declared is not None
                and self.conversion_format != self.declared
                and self.declared not in NOT_CONVERTED
                and not gate.is_opaque(self.container_format))


@dataclasses.dataclass(frozen=True)
class Outcome:
    digest: datapath.Digest
    disk_format: str | None  # of the stored bytes
    virtual_size: int | None


def take(ctx: contract.ScriptContext, plan: Plan, chunks: Iterable[bytes],
         expected_size: int | None, writer: StoreWriter, store: str | None = None) -> Outcome:
    """Put ``chunks`` into ``writer`` (not committed) as ``plan`` says; ScriptError if refused.

    ``store`` names the writer's store in ``glint_image_data_bytes`` (None: the default)."""
    settings = ctx.settings
    meter = ctx.stores.meter(store)
    if plan.decompress:
        chunks = decompression.decompress(_capped(chunks, settings.image_size_cap, expected_size),
                                          settings.effective_decompressed_size_cap)
        expected_size = None  # the announced size was the compressed one, checked above
    if plan.converts:
        return _converted(ctx, plan, chunks, writer, meter)
    checked = ctx.image_gate.stream(chunks, plan.declared, plan.container_format, what=plan.what)
    digest = _store(ctx, checked, writer, expected_size, meter)
    assert checked.verdict is not None
    return Outcome(digest=digest, disk_format=plan.declared,
                   virtual_size=checked.verdict.virtual_size)


def work_files(settings: ScriptSettings, task_id: str) -> list[pathlib.Path]:
    """The scratch files a task's conversion uses (they may not exist)."""
    work = settings.effective_work_dir
    return [work / f"{task_id}.source"] + [work / f"{task_id}.{fmt}"
                                           for fmt in qemu_img.OUTPUT_FORMATS]


def remove_work_files(settings: ScriptSettings, task_id: str) -> None:
    """The task's work files, and the scratch directories of conversions it did not finish."""
    for path in work_files(settings, task_id):
        path.unlink(missing_ok=True)
        for scratch in path.parent.glob(f"{path.name}{gate.SCRATCH_SUFFIX}*"):
            shutil.rmtree(scratch, ignore_errors=True)


def _converted(ctx: contract.ScriptContext, plan: Plan, chunks: Iterable[bytes],
               writer: StoreWriter, meter: Callable[[int], None]) -> Outcome:
    assert plan.declared is not None and plan.conversion_format is not None
    settings = ctx.settings
    source, target = work_files(settings, ctx.task_id)[0], (
        settings.effective_work_dir / f"{ctx.task_id}.{plan.conversion_format}")
    try:
        _write_file(ctx, ctx.image_gate.stream(chunks, plan.declared, what=plan.what), source)
        verdict = ctx.image_gate.convert(source, plan.declared, plan.conversion_format, target,
                                         should_cancel=ctx.should_cancel)
        source.unlink()
        digest = _store(ctx, _read_file(target), writer, target.stat().st_size, meter)
    finally:
        source.unlink(missing_ok=True)
        target.unlink(missing_ok=True)
    return Outcome(digest=digest, disk_format=plan.conversion_format,
                   virtual_size=verdict.virtual_size)


def _store(ctx: contract.ScriptContext, chunks: Iterable[bytes], writer: StoreWriter,
           expected_size: int | None, meter: Callable[[int], None]) -> datapath.Digest:
    return datapath.copy(chunks, writer, size_cap=ctx.settings.image_size_cap,
                         hash_algo=ctx.settings.hashing_algorithm, expected_size=expected_size,
                         progress=lambda done: ctx.report_progress(done, expected_size),
                         should_cancel=ctx.should_cancel, meter=meter)


def _capped(chunks: Iterable[bytes], cap: int, expected_size: int | None) -> Iterator[bytes]:
    """The compressed input, held to the size cap and to its announced size."""
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > cap:
            raise errors.TooLarge(f"Image data exceeds the size cap of {cap} bytes")
        yield chunk
    if expected_size is not None and size != expected_size:
        raise errors.BadRequest(f"Image data size mismatch: expected {expected_size} bytes, "
                                f"got {size}")


def _write_file(ctx: contract.ScriptContext, chunks: Iterable[bytes],
                path: pathlib.Path) -> None:
    cap = ctx.settings.image_size_cap
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    with path.open("wb") as out:
        for chunk in chunks:
            size += len(chunk)
            if size > cap:
                raise errors.TooLarge(f"Image data exceeds the size cap of {cap} bytes")
            if ctx.should_cancel():
                raise errors.ScriptError("Data copy cancelled")
            out.write(chunk)
            ctx.report_progress(size, None)


def _read_file(path: pathlib.Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(_READ_SIZE):
            yield chunk
