"""Built-in processors: live transcription per speaker and video analytics."""
