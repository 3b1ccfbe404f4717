"""Generative models of anatomy that the benchmark draws populations from (``cheart``: the beating heart
under clinical conditions) and their own evaluation."""
