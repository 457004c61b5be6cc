"""Version of the package and of the files it writes."""

__version__ = "0.1.0"

#: Version of what refinewidgets records under the ``refinewidgets`` key of the files it writes.
#: Readers accept files up to this version and refuse newer ones with a clear message.
FORMAT_VERSION = 1
