"""Media probing with FFmpeg's libraries (PyAV): facts, validation, posters and thumbnails.

Only the media function imports this package: PyAV comes from the media layer, which no other function
carries, so their cold starts never load FFmpeg.
"""
