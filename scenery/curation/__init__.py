"""Curation: filters that judge a candidate image, and the decision they add up to."""
