"""CIFAR networks and small CPU networks (being written)."""
