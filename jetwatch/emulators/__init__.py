"""Emulators of the APIs jetwatch talks to, over real HTTP with real copies and faults.

Apart from the product's own code paths: they import nothing of jetwatch but its errors."""
