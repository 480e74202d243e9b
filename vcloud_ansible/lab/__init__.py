"""The local node lab: systemd-nspawn machines booted from a frozen Debian image, each with its own
network namespace on a private bridge. Needs root on Linux. See ../shared/notes/lab.md."""
