"""The Gauss–Newton matrix (Thm 7): spiked-Wishart outliers (being written)."""

__all__: list[str] = []
