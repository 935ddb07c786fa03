"""Learners: one file per algorithm (`ppo.py`: PPO, also self-play for two-player games;
`alphazero.py`: AlphaZero), with the config checks they share (`config.py`)."""
