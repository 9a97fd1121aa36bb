"""Front doors: the command line, the local web chat, and (soon) Telegram and Discord."""
