"""The library's exception types. The CLI prints them as one line; the API maps them to HTTP statuses."""


class QAError(Exception):
    """Base class of every error the library raises on purpose."""


class InvalidInput(QAError):
    """A request or argument is unusable (empty question, bad filter, ...)."""


class DocumentError(QAError):
    """A document cannot be loaded: bad encoding, malformed record, missing text, ..."""


class IndexMissing(QAError):
    """No committed index exists at the given location."""


class IndexMismatch(QAError):
    """The index was built with another model, dimension or format: it must be rebuilt."""


class IndexCorrupt(QAError):
    """The committed index is unreadable or inconsistent."""


class IndexBusy(QAError):
    """Another process is writing the index."""


class IndexWriteFailed(QAError):
    """Writing the index failed (I/O error); the committed index is unchanged."""


class IndexFull(IndexWriteFailed):
    """No space is left on the device (or in the quota) that holds the index."""


class IndexReadOnly(IndexWriteFailed):
    """The index directory cannot be written: a read-only file system or no permission."""


class BackendUnavailable(QAError):
    """The search backend's server cannot be reached, or did not answer in time."""


class UnknownDocument(QAError):
    """A document id that the index does not hold."""


class ReaderUnavailable(QAError):
    """The reader model cannot be loaded (missing weights or model directory)."""


class EmbedWorkersUnavailable(QAError):
    """The Ray workers that embed cannot be started: no Ray, no cluster at the address, no model there."""


class CitationMismatch(RuntimeError):
    """A citation's offsets do not resolve to its quote: a bug, never patched over at run time."""
