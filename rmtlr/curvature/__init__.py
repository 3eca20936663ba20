"""Network curvature as linear operators (being written)."""
