"""vca: named clusters of machines that run your code, built on Ansible."""

__version__ = "0.1.0"
