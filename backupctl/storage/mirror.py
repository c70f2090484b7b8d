"""Read one policy's backups from several repositories that hold the same objects (its
first repository and its copies): the best one first, an object missing, unreadable or
corrupt in one read from the next.

Every object has the same bytes in every repository (a copy stores what it read, each
repository encrypting with its own key), so its size and sha256 from the manifest tell
a good copy from a bad one wherever it is read:

- missing (or not at its recorded size in the listing): the next repository serves it;
- a read error part-way (a dropped connection, a chunk whose authentication tag fails in
  an encrypted repository): the next repository continues from the same offset;
- a whole object whose sha256 does not match, found at the end of its stream: the bytes
  already went to the reader, so ``ObjectCorrupt`` is raised and the object is marked:
  the restore runs again (``operations.restore``) and the object comes from the next
  repository. A reader that stopped part-way because it failed on the bytes (a
  decompression error) leaves its object *suspect*: ``learn()`` checks it after the
  failure.

Every such event is recorded (``events``), for the restore report.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import structlog

from backupctl.errors import ObjectNotFound, RepositoryError, VerificationFailed
from backupctl.storage.base import ObjectInfo, ObjectWriter, Repository

log = structlog.get_logger()


class ObjectCorrupt(VerificationFailed):
    """An object read from one repository did not match its manifest; it is marked, and
    read from another repository next time."""


@dataclass(frozen=True)
class Expected:
    """An object as its manifest records it."""

    size: int
    sha256: str


@dataclass
class SourceEvent:
    """One object a repository could not serve, and which one did."""

    key: str
    repository: str
    problem: str
    served_by: str | None = None

    def describe(self) -> str:
        served = f"read from {self.served_by}" if self.served_by else "not read elsewhere yet"
        return f"{self.key}: {self.problem} in {self.repository}; {served}"


@dataclass(frozen=True)
class Source:
    name: str
    repo: Repository


@dataclass(frozen=True)
class Probe:
    """How one repository answered before a restore: of the objects to read, how many it
    holds at their size and how many it lacks; seconds to list them; an error."""

    name: str
    held: int
    missing: int
    seconds: float
    error: str | None = None

    @property
    def rank(self) -> tuple[bool, bool, float]:
        """Reachable first, then one that holds some of the objects (what it lacks is read
        from the next), then the fastest."""
        return (self.error is not None, self.held == 0, self.seconds)


def probe(
    source: Source,
    expected: dict[str, Expected],
    prefixes: Iterable[str],
    markers: Iterable[str] = (),
) -> Probe:
    """List ``prefixes`` in ``source``: how many ``expected`` objects under them, and of
    ``markers`` (keys under them that must be there, such as the backups' manifests: a
    backup whose objects live elsewhere, model blobs, has no other), it holds at their
    size and how many it lacks, and how long the listings took (one per prefix)."""
    prefixes = list(prefixes)
    started = time.monotonic()
    sizes: dict[str, int] = {}
    try:
        for prefix in prefixes:
            sizes.update((info.key, info.size) for info in source.repo.list(prefix))
    except RepositoryError as exc:
        return Probe(source.name, 0, 0, time.monotonic() - started, _first_line(exc))
    listed = tuple(prefixes)
    wanted = [(key, want) for key, want in expected.items() if key.startswith(listed)]
    held = sum(1 for key, want in wanted if sizes.get(key) == want.size)
    marks = list(markers)
    held += sum(1 for key in marks if key in sizes)
    return Probe(source.name, held, len(wanted) + len(marks) - held, time.monotonic() - started)


class MirroredRepository(Repository):
    """The repositories of one policy as one, read-only for backups (writes go to the first).

    ``sources``: in the order to read from; ``expected``: the objects' sizes and sha256 by
    key (from the manifests of what will be read); an object not in it is served by the
    first repository that has it, unchecked.
    """

    def __init__(self, sources: list[Source], expected: dict[str, Expected] | None = None):
        if not sources:
            raise ValueError("a mirrored repository needs at least one repository")
        self.sources = sources
        self.expected = dict(expected or {})
        self.url = sources[0].repo.url
        self.events: list[SourceEvent] = []
        self._bad: dict[str, set[str]] = {}  # key → repositories that must not serve it
        self._suspect: dict[str, str] = {}  # key → the repository a reader gave up on
        self._learned = 0  # events already considered by learn()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.sources]

    @classmethod
    def ranked(
        cls,
        sources: list[Source],
        expected: dict[str, Expected],
        prefixes: Iterable[str],
        markers: Iterable[str] = (),
    ) -> tuple[MirroredRepository, list[Probe]]:
        """The sources ordered best first (``Probe.rank``): the fastest to list (a local
        disk before a bucket across the world) of those reachable and holding the backup.
        Returns the probes too."""
        wanted, marks = sorted(set(prefixes)), sorted(set(markers))
        probes = {s.name: probe(s, expected, wanted, marks) for s in sources}
        order = sorted(sources, key=lambda s: probes[s.name].rank)
        return cls(order, expected), [probes[s.name] for s in order]

    # -- what went wrong --------------------------------------------------------------

    def _note(self, key: str, source: str, problem: str) -> SourceEvent:
        event = SourceEvent(key, source, problem)
        self.events.append(event)
        self._bad.setdefault(key, set()).add(source)
        log.warning("object not served", key=key, repository=source, problem=problem)
        return event

    def _served(self, key: str, source: str) -> None:
        for event in self.events:
            if event.key == key and event.served_by is None and event.repository != source:
                event.served_by = source

    def learn(self) -> bool:
        """After a failed attempt: check every object a reader gave up on part-way against
        its manifest (reading it whole, from the repository that served it). Return True
        when an object was marked bad since the last call and no other repository has
        served it yet: running again reads it elsewhere."""
        for key, name in list(self._suspect.items()):
            del self._suspect[key]
            want = self.expected.get(key)
            repo = self._repo(name)
            if want is None or repo is None:
                continue
            try:
                size, digest = _measure(repo.iter_read(key))
            except RepositoryError as exc:
                self._note(key, name, f"unreadable ({_first_line(exc)})")
                continue
            if (size, digest) != (want.size, want.sha256):
                self._note(key, name, "corrupt (sha256 does not match its manifest)")
        new, self._learned = self.events[self._learned :], len(self.events)
        return any(event.served_by is None for event in new)

    def healable(self) -> bool:
        """True when every object marked bad still has a repository left to serve it."""
        return all(
            len(bad) < len(self.sources) for key, bad in self._bad.items() if key in self.expected
        )

    def _repo(self, name: str) -> Repository | None:
        return next((s.repo for s in self.sources if s.name == name), None)

    def _candidates(self, key: str) -> list[Source]:
        bad = self._bad.get(key, set())
        return [s for s in self.sources if s.name not in bad]

    # -- reading ----------------------------------------------------------------------

    def iter_read(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        want = self.expected.get(key)
        digest, offset, served = hashlib.sha256(), 0, list[str]()
        finished = False
        try:
            for source in self._candidates(key):
                if want is not None and served and offset == want.size:
                    finished = True  # all of it came before the error
                    self._served(key, served[-1])
                    break
                # from where an earlier repository broke off (a seek, a ranged GET)
                reader = (
                    source.repo.iter_read_from(key, offset, chunk_size)
                    if offset
                    else source.repo.iter_read(key, chunk_size)
                )
                try:
                    for chunk in reader:
                        if not served or served[-1] != source.name:
                            served.append(source.name)
                        offset += len(chunk)
                        digest.update(chunk)
                        yield chunk
                except ObjectNotFound:
                    self._note(key, source.name, "missing")
                    continue
                except RepositoryError as exc:
                    self._note(key, source.name, f"unreadable ({_first_line(exc)})")
                    continue
                finished = True
                self._served(key, source.name)
                break
            if not finished:
                raise ObjectNotFound(
                    f"{key}: no repository could serve it ({', '.join(self.names)}): "
                    + "; ".join(e.describe() for e in self.events if e.key == key)
                )
            if want is not None and (offset, digest.hexdigest()) != (want.size, want.sha256):
                for name in served:
                    self._note(key, name, "corrupt (sha256 does not match its manifest)")
                raise ObjectCorrupt(
                    f"{self.url}/{key} does not match its manifest (sha256/size) as read from "
                    f"{', '.join(served)}: corrupt object"
                )
        finally:
            if not finished and served and want is not None:
                self._suspect[key] = served[-1]

    def get_bytes(self, key: str) -> bytes:
        want = self.expected.get(key)
        for source in self._candidates(key):
            try:
                data = source.repo.get_bytes(key)
            except ObjectNotFound:
                continue  # a small object (a manifest) missing is not worth a report line
            except RepositoryError as exc:
                self._note(key, source.name, f"unreadable ({_first_line(exc)})")
                continue
            if want is not None and hashlib.sha256(data).hexdigest() != want.sha256:
                self._note(key, source.name, "corrupt (sha256 does not match its manifest)")
                continue
            self._served(key, source.name)
            return data
        raise ObjectNotFound(f"{key}: in none of the repositories {', '.join(self.names)}")

    def exists(self, key: str) -> bool:
        return any(s.repo.exists(key) for s in self._candidates(key))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every key any repository holds under ``prefix``, each with the size of the
        first repository where it is at its recorded size (or the first that has it)."""
        found: dict[str, ObjectInfo] = {}
        for source in self.sources:
            try:
                infos = list(source.repo.list(prefix))
            except RepositoryError as exc:
                log.warning("repository not listed", repository=source.name, error=str(exc))
                continue
            for info in infos:
                want = self.expected.get(info.key)
                known = found.get(info.key)
                if known is None or (want is not None and known.size != want.size):
                    found[info.key] = info
        yield from (found[key] for key in sorted(found))

    # -- writing: the first repository, as a plain one ------------------------------------

    def open_write(self, key: str, size_hint: int | None = None) -> ObjectWriter:
        return self.sources[0].repo.open_write(key, size_hint)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.sources[0].repo.put_bytes(key, data)

    def delete(self, key: str) -> None:
        self.sources[0].repo.delete(key)

    @contextmanager
    def lock(self, policy: str, purpose: str, lane: str = "") -> Iterator[None]:
        with self.sources[0].repo.lock(policy, purpose, lane):
            yield


def _measure(chunks: Iterable[bytes]) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0]
