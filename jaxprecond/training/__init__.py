"""Training recipes shared by several experiments: a student, its optimizer and its records."""
