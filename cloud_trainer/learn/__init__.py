"""Reinforcement learning: PPO and its training loop."""
