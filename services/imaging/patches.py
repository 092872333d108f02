"""Every patch the listener makes to pynetdicom's insides, fenced: all of them or none.

Three speed-ups replace names pynetdicom keeps to itself: `reactor` (the `time` its reactor
loops sleep with), `responses` (how a C-STORE response is encoded) and `spool` (the temporary
file a received dataset is streamed into). Each is listed below with every private name it
replaces or relies on, and the shape that name must have for the patch to be right: a function
with these parameters that reads these names, a class with these attributes, a module-level
name holding this kind of thing. `apply()` checks them all against the pynetdicom installed;
only when every one fits is every patch applied. When one does not, none is: the listener runs
on stock pynetdicom (objects are stored the same, only slower) and logs one warning per patch
that does not fit, naming it and what was found. `python -m services.imaging.patches` prints
the verdict of each patch without applying anything.

Not patches, so not fenced: pynetdicom's documented configuration options
(`pynetdicom._config.STORE_RECV_CHUNKED_DATASET`, `LOG_HANDLER_LEVEL`; the module's name has an
underscore, but pynetdicom documents it as its configuration API) and pydicom's
`config.settings` validation modes. The listener sets those as any user would (listener.py).
"""

from __future__ import annotations

import importlib
import inspect
import sys
import tempfile
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import structlog

from services.imaging.spool import Spool

log = structlog.get_logger("imaging")


# --- shapes ----------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """What a value is, in a few words, for a warning."""
    if isinstance(value, types.ModuleType):
        return f"the module {value.__name__!r}"
    if inspect.isfunction(value):
        return f"a function ({', '.join(inspect.signature(value).parameters)})"
    if isinstance(value, type):
        return f"the class {value.__qualname__}"
    if isinstance(value, property):
        return "a property"
    return f"a {type(value).__name__}"


@dataclass(frozen=True)
class Function:
    """A plain function whose parameters start with `params` and whose code reads `reads`
    (attribute and global names: what it calls or sets)."""

    params: tuple[str, ...]
    reads: tuple[str, ...] = ()

    def __str__(self) -> str:
        reads = f" reading {', '.join(self.reads)}" if self.reads else ""
        return f"a function ({', '.join(self.params)}){reads}"

    def misfit(self, value: Any) -> str | None:
        function = inspect.unwrap(value) if callable(value) else value
        if not inspect.isfunction(function):
            return _kind(value)
        params = tuple(inspect.signature(function).parameters)
        if params[: len(self.params)] != self.params:
            return _kind(function)
        missing = [n for n in self.reads if n not in function.__code__.co_names]
        if missing:
            return f"{_kind(function)} that never reads {', '.join(missing)}"
        return None


@dataclass(frozen=True)
class Class:
    """A class (a subclass of `base`, when given) with the attributes `has`, and whose
    constructor sets the instance attributes `sets`."""

    has: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()
    base: type | None = None

    def __str__(self) -> str:
        words = ["a class"]
        if self.base:
            words.append(f"subclassing {self.base.__name__}")
        if self.has:
            words.append(f"with {', '.join(self.has)}")
        if self.sets:
            words.append(f"whose constructor sets {', '.join(self.sets)}")
        return " ".join(words)

    def misfit(self, value: Any) -> str | None:
        if not isinstance(value, type) or (self.base and not issubclass(value, self.base)):
            return _kind(value)
        missing = [n for n in self.has if not hasattr(value, n)]
        if missing:
            return f"{_kind(value)} without {', '.join(missing)}"
        init = getattr(inspect.getattr_static(value, "__init__"), "__code__", None)
        unset = [n for n in self.sets if init is None or n not in init.co_names]
        if unset:
            return f"{_kind(value)} whose constructor never sets {', '.join(unset)}"
        return None


@dataclass(frozen=True)
class Property:
    def __str__(self) -> str:
        return "a property"

    def misfit(self, value: Any) -> str | None:
        return None if isinstance(value, property) else _kind(value)


@dataclass(frozen=True)
class Module:
    """A module named `name` (a module-level import the patch replaces)."""

    name: str

    def __str__(self) -> str:
        return f"the module {self.name!r}"

    def misfit(self, value: Any) -> str | None:
        if isinstance(value, types.ModuleType) and value.__name__ == self.name:
            return None
        return _kind(value)


@dataclass(frozen=True)
class OneOf:
    """The very object `stock`, or what the patch put there (`is_patched`)."""

    what: str
    stock: Callable[[], Any]
    is_patched: Callable[[Any], bool] = lambda _value: False

    def __str__(self) -> str:
        return self.what

    def misfit(self, value: Any) -> str | None:
        return None if value is self.stock() or self.is_patched(value) else _kind(value)


@dataclass(frozen=True)
class Present:
    def __str__(self) -> str:
        return "defined"

    def misfit(self, value: Any) -> str | None:
        return None


Shape = Function | Class | Property | Module | OneOf | Present


_MISSING = object()


# --- the patches -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """`target` ("module:attribute.path") exists and has `shape`."""

    target: str
    shape: Shape

    def misfit(self) -> str | None:
        module_name, _, path = self.target.partition(":")
        try:
            value: Any = importlib.import_module(module_name)
        except ImportError as exc:
            return f"cannot import {module_name} ({exc})"
        where = module_name
        for name in path.split("."):
            try:  # as defined (a property, not its value), or as looked up (a module's getattr)
                value = inspect.getattr_static(value, name)
            except AttributeError:
                value = getattr(value, name, _MISSING)
            if value is _MISSING:
                return f"{where} has no {name}"
            where = f"{where}.{name}"
        misfit = self.shape.misfit(value)
        return None if misfit is None else f"{self.target} is {misfit}, not {self.shape}"


@dataclass(frozen=True)
class Patch:
    name: str
    module: str  # where it lives (imported only once its expectations fit: it uses them)
    install: Callable[[Spool], None]
    replaces: tuple[str, ...]  # the targets it assigns: put back if applying fails
    expects: tuple[Expect, ...]


def _install_reactor(_spool: Spool) -> None:
    importlib.import_module("services.imaging.reactor").install()


def _install_responses(_spool: Spool) -> None:
    importlib.import_module("services.imaging.responses").install()


def _install_spool(spool: Spool) -> None:
    spool.install()
    spool.start()


def _patched_take(value: Any) -> bool:
    return getattr(value, "__func__", None) is Spool.take


PATCHES: tuple[Patch, ...] = (
    Patch(
        "reactor",
        "services.imaging.reactor",
        _install_reactor,
        ("pynetdicom.dul:time", "pynetdicom.association:time"),
        (
            Expect("pynetdicom.dul:time", Module("time")),
            Expect("pynetdicom.association:time", Module("time")),
            Expect("pynetdicom.dul:DULServiceProvider.run_reactor",
                   Function(("self",), reads=("time", "sleep"))),
            Expect("pynetdicom.association:Association._run_reactor",
                   Function(("self",), reads=("time", "sleep"))),
            Expect("pynetdicom.dul:DULServiceProvider",
                   Class(base=threading.Thread,
                         sets=("socket", "to_provider_queue", "to_user_queue"))),
            Expect("pynetdicom.association:Association",
                   Class(base=threading.Thread, sets=("dimse", "dul"))),
            Expect("pynetdicom.dimse:DIMSEServiceProvider", Class(sets=("msg_queue",))),
            Expect("pynetdicom.transport:AssociationSocket", Class(sets=("socket",))),
        ),
    ),
    Patch(
        "responses",
        "services.imaging.responses",
        _install_responses,
        ("pynetdicom.dimse:DIMSEServiceProvider.send_msg",),
        (
            Expect("pynetdicom.dimse:DIMSEServiceProvider.send_msg",
                   Function(("self", "primitive", "context_id"))),
            Expect("pynetdicom.dimse:DIMSEServiceProvider",
                   Class(has=("maximum_pdu_size", "assoc", "dul"))),
            Expect("pynetdicom.dimse:DIMSEServiceProvider.maximum_pdu_size", Property()),
            Expect("pynetdicom.dul:DULServiceProvider.send_pdu",
                   Function(("self", "primitive"))),
            Expect("pynetdicom.association:Association.get_handlers",
                   Function(("self", "event"))),
            Expect("pynetdicom.dimse_primitives:C_STORE",
                   Class(has=("MessageIDBeingRespondedTo", "Status", "AffectedSOPClassUID",
                              "AffectedSOPInstanceUID"),
                         sets=("ErrorComment", "OffendingElement"))),
            Expect("pynetdicom.pdu_primitives:P_DATA",
                   Class(has=("presentation_data_value_list",))),
            Expect("pynetdicom:evt.EVT_DIMSE_SENT", Present()),
        ),
    ),
    Patch(
        "spool",
        "services.imaging.spool",
        _install_spool,
        ("pynetdicom.dimse_messages:NamedTemporaryFile",),
        (
            Expect("pynetdicom.dimse_messages:NamedTemporaryFile",
                   OneOf("tempfile.NamedTemporaryFile (or a spool's take, once patched)",
                         lambda: tempfile.NamedTemporaryFile, _patched_take)),
            Expect("pynetdicom.dimse_messages:DIMSEMessage.decode_msg",
                   Function(("self", "primitive"),
                            reads=("NamedTemporaryFile", "name", "write", "file", "flush"))),
            Expect("pynetdicom.service_class:StorageServiceClass.SCP",
                   Function(("self", "req"), reads=("_dataset_file", "close", "name"))),
        ),
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    patch: str
    misfits: tuple[str, ...]  # what was found where an expectation does not hold

    @property
    def fits(self) -> bool:
        return not self.misfits


def check(patches: tuple[Patch, ...] | None = None) -> list[Verdict]:
    """Each patch's verdict against the pynetdicom installed; nothing is changed."""
    out = []
    for patch in PATCHES if patches is None else patches:
        misfits = [m for e in patch.expects if (m := e.misfit()) is not None]
        if not misfits:
            try:
                importlib.import_module(patch.module)
            except Exception as exc:  # noqa: BLE001 - any failure means: do not patch
                misfits.append(f"{patch.module} cannot be imported ({type(exc).__name__}: {exc})")
        out.append(Verdict(patch.name, tuple(misfits)))
    return out


def apply(spool: Spool) -> bool:
    """Apply every patch if every one fits pynetdicom, else none; whether they were applied.

    `spool` is started only when the patches are applied (unpatched, pynetdicom makes its own
    temporary files)."""
    verdicts = check()
    misfitting = [v for v in verdicts if not v.fits]
    for verdict in misfitting:
        log.warning("pynetdicom patch does not fit; the listener runs without any patch",
                    patch=verdict.patch, found="; ".join(verdict.misfits))  # fmt: skip
    if misfitting:
        return False
    with _undone_on_failure():
        for patch in PATCHES:
            patch.install(spool)
    log.info("pynetdicom patches applied", patches=[v.patch for v in verdicts])
    return True


def _target(target: str) -> tuple[Any, str]:
    module_name, _, path = target.partition(":")
    owner: Any = importlib.import_module(module_name)
    *outer, name = path.split(".")
    for part in outer:
        owner = getattr(owner, part)
    return owner, name


def snapshot(patches: tuple[Patch, ...] | None = None) -> dict[str, Any]:
    """What each target the patches replace holds now, by target (as its owner defines it)."""
    out = {}
    for patch in PATCHES if patches is None else patches:
        for target in patch.replaces:
            owner, name = _target(target)
            out[target] = inspect.getattr_static(owner, name)
    return out


def restore(saved: dict[str, Any]) -> None:
    """Put back what `snapshot()` saw."""
    for target, value in saved.items():
        owner, name = _target(target)
        setattr(owner, name, value)


@contextmanager
def _undone_on_failure() -> Iterator[None]:
    """Never half-patched: if applying one patch fails, the ones before it are undone."""
    saved = snapshot()
    try:
        yield
    except BaseException:
        restore(saved)
        responses = sys.modules.get("services.imaging.responses")
        if responses is not None:
            responses.uninstall()  # it also forgets the stock send_msg it kept
        raise


def main() -> int:
    """Print each patch's verdict against the pynetdicom installed; 1 if any does not fit."""
    import pynetdicom

    print(f"pynetdicom {pynetdicom.__version__}")
    verdicts = check()
    for verdict in verdicts:
        print(f"{verdict.patch}: {'fits' if verdict.fits else 'does not fit'}")
        for misfit in verdict.misfits:
            print(f"  {misfit}")
    all_fit = all(v.fits for v in verdicts)
    print("all patches would be applied" if all_fit else "no patch would be applied")
    return 0 if all_fit else 1


if __name__ == "__main__":
    sys.exit(main())
