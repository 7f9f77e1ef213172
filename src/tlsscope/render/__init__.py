"""Output edges: terminal text (rich), JSON Lines, notebook HTML/SVG."""
