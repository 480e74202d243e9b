"""Running playbooks: the ansible-runner wrapper (runner), progress from its event stream (progress),
keeping secrets out of what a run leaves on disk (secrets), stopping Ansible cleanly on Ctrl-C
(interrupts)."""
