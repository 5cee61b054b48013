"""One module per service of the test bed; each defines a Service subclass (see ../service.py)."""
