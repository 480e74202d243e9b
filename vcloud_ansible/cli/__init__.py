"""The `vca` command line. One module per group of verbs; main.py assembles them."""
