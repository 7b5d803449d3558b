"""The Healthy Motion Atlas: a goal-conditioned healthy walking policy (Dai et al. 2025, Stage I)."""
