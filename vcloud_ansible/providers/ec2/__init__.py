"""The EC2 provider: provider operations, the EC2 API, its settings, host keys over SSH."""
