from propstream.cli import app

app()
