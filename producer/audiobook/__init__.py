"""Assembly of an audiobook: levelling, encoders, the M4B, subtitles and covers, one small module each."""
