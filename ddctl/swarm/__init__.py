"""Batches across a Docker Swarm: the registry (registry.py), the batch (batch.py) and the
two programs that run inside the dream image (exchange_server.py, task_runner.py)."""
