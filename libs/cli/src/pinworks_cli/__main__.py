from pinworks_cli.main import app

app()
