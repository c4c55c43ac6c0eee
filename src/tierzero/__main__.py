from tierzero.cli.main import run

run()
