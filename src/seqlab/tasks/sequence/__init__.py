"""The sequence tasks, kth (seq2one) and binary_add (aligned seq2seq), and what they share (common.py)."""
