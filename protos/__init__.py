"""The contract between the bedside app and the trainer: the gRPC API ``stridetwin.v1`` and its generated code."""
