"""Running playbooks: the ansible-runner wrapper and progress from its event stream."""
