"""Learners: one file per algorithm (PPO now; AlphaZero next)."""
