"""The trainer service: clips in, jobs run, artifacts out, over the ``stridetwin.v1`` gRPC contract.

Layers, each importing only the ones above it:

- domain (no gRPC): :mod:`.errors`, :mod:`.config`, :mod:`.clipcheck` (streaming clip validation), the stores
  (:mod:`.clips`, :mod:`.jobs`, :mod:`.artifacts`: interfaces and their file/SQLite implementations), :mod:`.audit`
  (hash-chained log), :mod:`.auth` (clinic tokens), :mod:`.executor` / :mod:`.ray_executor`, and
  :mod:`.service` (:class:`TrainerService`, the scheduler and every use case);
- transport: :mod:`.grpc_api` (servicers, auth interceptor), :mod:`.server` (``create_server``), :mod:`.pki` (TLS).

Import the submodules directly; this package imports nothing so that the domain stays free of gRPC.
"""
