"""Parameter handlers, one module per family; `registry.py` collects them."""
