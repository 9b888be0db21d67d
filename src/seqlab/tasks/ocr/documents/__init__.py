"""Real documents: a user's own transcribed lines (ground truth), scoring engines on them, and page images."""
