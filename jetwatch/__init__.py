"""jetwatch: a hot-folder daemon that delivers complete files through the Signiant Jet API."""

__version__ = "0.1.0"
