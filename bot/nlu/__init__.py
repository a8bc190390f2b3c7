"""Custom components of Sportello's NLU pipeline."""
