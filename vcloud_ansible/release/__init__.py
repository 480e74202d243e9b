"""Inject: packages, the node contract, the install script, its SSH transport, the node agent's client."""
