"""What the book shows: tables, figures, published numbers, chapter execution and helpers."""
