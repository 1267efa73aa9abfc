"""The Docker-free local cloud: moto, Redis, sandboxed functions, API Gateway and SQS pollers.

Run it with ``python -m localcloud up`` (``make up``); see ``python -m localcloud --help``.
"""
