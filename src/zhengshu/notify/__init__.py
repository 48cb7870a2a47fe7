"""In-page notifications and the hook for other channels (e-mail, SMS)."""
